import CLIP
import Foundation
import ImageIO

/// Puts many concurrent callers in front of one model, on a thread of its own so that inference never
/// occupies the Swift concurrency pool or the server's event loops. A request that finds the engine idle
/// runs at once; requests that queue while it is busy are run together when it frees (up to `maxBatch`),
/// after gathering for at most `window` more, so that under load batches fill and a lone request never
/// waits for company that is not coming.
public final class BatchingEmbedder: @unchecked Sendable {
    public let model: any ImageTextModel
    public let maxBatch: Int
    public let window: TimeInterval
    /// Called after each batch with the number of inputs it held (for metrics).
    private let onBatch: @Sendable (Int) -> Void

    private enum Job {
        case image(pixels: [Float], CheckedContinuation<[Float], Error>)
        case text(tokens: [Int], CheckedContinuation<[Float], Error>)
    }

    private let condition = NSCondition()
    private var pending: [Job] = []
    /// A batch is running; requests that arrive meanwhile set `queuedWhileBusy`.
    private var running = false
    private var queuedWhileBusy = false
    private var stopped = false
    private var thread: Thread?

    public init(model: any ImageTextModel, maxBatch: Int = 32, window: Duration = .milliseconds(4),
                onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.model = model
        self.maxBatch = max(1, maxBatch)
        self.window = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        self.onBatch = onBatch
        let thread = Thread { [unowned self] in self.runLoop() }
        thread.name = "loupe-inference"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    deinit { stop() }

    /// Finishes the queued work, then ends the worker thread. Later calls fail.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    public func embed(image: RGBImage) async throws -> [Float] {
        try await embed(pixelValues: model.pixelValues(for: image))  // preprocessing runs on the caller's thread
    }

    /// Embeds an image already preprocessed for this model (`model.pixelValues(for:)`).
    public func embed(pixelValues pixels: [Float]) async throws -> [Float] {
        try await withCheckedThrowingContinuation { submit(.image(pixels: pixels, $0)) }
    }

    public func embed(text: String) async throws -> [Float] {
        let tokens = try model.tokens(for: text)
        return try await withCheckedThrowingContinuation { submit(.text(tokens: tokens, $0)) }
    }

    private func submit(_ job: Job) {
        condition.lock()
        if stopped {
            condition.unlock()
            fail(job, EmbedderStopped())
            return
        }
        pending.append(job)
        if running { queuedWhileBusy = true }
        condition.signal()
        condition.unlock()
    }

    public struct EmbedderStopped: Error {}

    /// Requests waiting for the engine.
    var queued: Int { condition.withLock { pending.count } }

    private func fail(_ job: Job, _ error: Error) {
        switch job {
        case .image(_, let continuation), .text(_, let continuation): continuation.resume(throwing: error)
        }
    }

    private func runLoop() {
        while let batch = nextBatch() {
            run(batch)
            condition.withLock { running = false }
        }
    }

    /// Waits for work; when some of it queued while the last batch ran (the engine is busy), gathers more
    /// for `window` seconds or until the batch is full.
    private func nextBatch() -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !stopped { condition.wait() }
        if pending.isEmpty { return nil }
        if queuedWhileBusy {
            let deadline = Date(timeIntervalSinceNow: window)
            while pending.count < maxBatch && !stopped && condition.wait(until: deadline) {}
        }
        let count = min(pending.count, maxBatch)
        let batch = Array(pending.prefix(count))
        pending.removeFirst(count)
        running = true
        queuedWhileBusy = !pending.isEmpty  // what is left over waited through a batch
        return batch
    }

    private func run(_ batch: [Job]) {
        var images: [(pixels: [Float], continuation: CheckedContinuation<[Float], Error>)] = []
        var texts: [(tokens: [Int], continuation: CheckedContinuation<[Float], Error>)] = []
        for job in batch {
            switch job {
            case .image(let pixels, let continuation): images.append((pixels, continuation))
            case .text(let tokens, let continuation): texts.append((tokens, continuation))
            }
        }
        // Texts run together (the weights are read once for all of them); the model refused texts with
        // nothing to embed in `tokens(for:)`, before they were queued.
        if !texts.isEmpty {
            do {
                let vectors = try model.embed(tokenBatch: texts.map(\.tokens))
                for (text, vector) in zip(texts, vectors) { text.continuation.resume(returning: vector) }
            } catch {
                for text in texts { text.continuation.resume(throwing: error) }
            }
        }
        if !images.isEmpty {
            let vectors = model.embed(pixelValues: images.map(\.pixels))
            for (image, vector) in zip(images, vectors) { image.continuation.resume(returning: vector) }
        }
        onBatch(batch.count)
    }
}
