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

    /// One input as the engine takes it.
    public enum Input: Sendable {
        case pixels([Float])
        case tokens([Int])
    }

    private struct Job {
        let input: Input
        let finish: @Sendable (Result<[Float], Error>) -> Void
    }

    private let condition = NSCondition()
    private var pending: [Job] = []
    /// A batch is running; requests that arrive meanwhile set `queuedWhileBusy`.
    private var running = false
    private var queuedWhileBusy = false
    private var stopped = false

    public init(model: any ImageTextModel, maxBatch: Int = 32, window: Duration = .milliseconds(4),
                onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.model = model
        self.maxBatch = max(1, maxBatch)
        self.window = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        self.onBatch = onBatch
        // The thread keeps the embedder alive until `stop()` ends its loop (an unowned reference let the
        // loop wake up in an embedder already freed); whoever owns the embedder must stop it.
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "loupe-inference"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Finishes the queued work, then ends the worker thread. Later calls fail.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Embeds inputs queued together (a batch that arrives whole is not split by the idle rule), a result
    /// each, in order.
    public func embed(_ inputs: [Input]) async -> [Result<[Float], Error>] {
        guard !inputs.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            let results = Results(count: inputs.count) { continuation.resume(returning: $0) }
            submit(inputs.enumerated().map { index, input in Job(input: input) { results.set(index, $0) } })
        }
    }

    public func embed(pixelValues pixels: [Float]) async throws -> [Float] { try await embed([.pixels(pixels)])[0].get() }

    public func embed(text: String) async throws -> [Float] { try await embed([.tokens(try model.tokens(for: text))])[0].get() }

    private func submit(_ jobs: [Job]) {
        condition.lock()
        if stopped {
            condition.unlock()
            for job in jobs { job.finish(.failure(EmbedderStopped())) }
            return
        }
        pending.append(contentsOf: jobs)
        if running { queuedWhileBusy = true }
        condition.signal()
        condition.unlock()
    }

    /// Gathers a submission's results and hands them over once all have come.
    private final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Result<[Float], Error>?]
        private var missing: Int
        private let done: ([Result<[Float], Error>]) -> Void

        init(count: Int, done: @escaping ([Result<[Float], Error>]) -> Void) {
            values = Array(repeating: nil, count: count)
            missing = count
            self.done = done
        }

        func set(_ index: Int, _ result: Result<[Float], Error>) {
            let complete: [Result<[Float], Error>]? = lock.withLock {
                values[index] = result
                missing -= 1
                return missing == 0 ? values.map { $0! } : nil
            }
            if let complete { done(complete) }
        }
    }

    public struct EmbedderStopped: Error {}

    /// Requests waiting for the engine.
    var queued: Int { condition.withLock { pending.count } }

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
        var images: [(pixels: [Float], job: Job)] = []
        var texts: [(tokens: [Int], job: Job)] = []
        for job in batch {
            switch job.input {
            case .pixels(let pixels): images.append((pixels, job))
            case .tokens(let tokens): texts.append((tokens, job))
            }
        }
        // Texts run together (the weights are read once for all of them); the model refused texts with
        // nothing to embed in `tokens(for:)`, before they were queued.
        if !texts.isEmpty {
            do {
                let vectors = try model.embed(tokenBatch: texts.map(\.tokens))
                for (text, vector) in zip(texts, vectors) { text.job.finish(.success(vector)) }
            } catch {
                for text in texts { text.job.finish(.failure(error)) }
            }
        }
        if !images.isEmpty {
            let vectors = model.embed(pixelValues: images.map(\.pixels))
            for (image, vector) in zip(images, vectors) { image.job.finish(.success(vector)) }
        }
        onBatch(batch.count)
    }
}
