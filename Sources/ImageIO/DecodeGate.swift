import Foundation

/// Where images are decoded and preprocessed (by the server and by ingestion): on Dispatch's threads,
/// never Swift's cooperative ones (so health checks, texts and other requests keep answering while a
/// large image decodes), at
/// most `slots` at once, and within a budget of decoded bytes in flight that each decode reserves from
/// its header's size before it allocates anything. Waiters go in arrival order; an image larger than the
/// whole budget waits until nothing else is decoding, then runs alone.
public final class DecodeGate: @unchecked Sendable {
    public let slots: Int
    public let budget: Int
    private let lock = NSLock()
    private var running = 0
    private var reserved = 0
    private var waiting: [(bytes: Int, resume: CheckedContinuation<Void, Never>)] = []

    /// Bytes a decode may hold at its peak per pixel of the header's size: the decoded samples (up to
    /// four a pixel), their RGB copy, and slack for the codec's own buffers.
    public static let bytesPerPixel = 10

    public init(slots: Int, budgetBytes: Int) {
        self.slots = max(1, slots)
        self.budget = max(1, budgetBytes)
    }

    /// Decodes `bytes` once the share its header announces is free, and hands the image to `use` on the
    /// same thread (preprocessing belongs inside the bound too).
    public func decode<T: Sendable>(_ bytes: [UInt8], with decoder: ImageDecoder, _ use: @escaping @Sendable (RGBImage) throws -> T) async throws -> T {
        let size = try decoder.decodedDimensions(of: bytes)
        return try await run(reserving: size.width * size.height * Self.bytesPerPixel) { try use(try decoder.decode(bytes).rgb()) }
    }

    public func run<T: Sendable>(reserving bytes: Int, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        let share = min(max(0, bytes), budget)
        await acquire(share)
        defer { release(share) }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Decodes running and bytes reserved now (for tests and metrics).
    public var load: (running: Int, reservedBytes: Int) { lock.withLock { (running, reserved) } }

    private func fits(_ bytes: Int) -> Bool { running < slots && reserved + bytes <= budget }

    private func acquire(_ bytes: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if waiting.isEmpty && fits(bytes) {
                running += 1
                reserved += bytes
                lock.unlock()
                continuation.resume()
            } else {
                waiting.append((bytes, continuation))
                lock.unlock()
            }
        }
    }

    private func release(_ bytes: Int) {
        lock.lock()
        running -= 1
        reserved -= bytes
        var ready = [CheckedContinuation<Void, Never>]()
        while let next = waiting.first, fits(next.bytes) {
            waiting.removeFirst()
            running += 1
            reserved += next.bytes
            ready.append(next.resume)
        }
        lock.unlock()
        ready.forEach { $0.resume() }
    }
}
