import Foundation

/// Where the server decodes and preprocesses images: on Dispatch's threads, never Swift's cooperative
/// ones (so health checks, texts and other requests keep answering while a large image decodes), at
/// most `slots` at once, and within a budget of decoded bytes in flight that each decode reserves from
/// its header's size before it allocates anything. Waiters go in arrival order; an image larger than the
/// whole budget waits until nothing else is decoding, then runs alone.
final class DecodeGate: @unchecked Sendable {
    let slots: Int
    let budget: Int
    private let lock = NSLock()
    private var running = 0
    private var reserved = 0
    private var waiting: [(bytes: Int, resume: CheckedContinuation<Void, Never>)] = []

    init(slots: Int, budgetBytes: Int) {
        self.slots = max(1, slots)
        self.budget = max(1, budgetBytes)
    }

    func run<T: Sendable>(reserving bytes: Int, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        let share = min(max(0, bytes), budget)
        await acquire(share)
        defer { release(share) }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Decodes running and bytes reserved now (for tests and metrics).
    var load: (running: Int, reservedBytes: Int) { lock.withLock { (running, reserved) } }

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
