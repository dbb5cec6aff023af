import CLIP
import Foundation
import ImageIO
import Testing

@testable import Embedding

/// The batching rule: a request that finds the engine idle runs at once; requests that queue while it is
/// busy run together when it frees.
@Suite struct BatchingEmbedderTests {
    /// The real fixture model with a gate in front of its first text batch, so that a test can keep the
    /// engine busy for as long as it needs to queue requests behind it.
    final class GatedModel: ImageTextModel, @unchecked Sendable {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let gate = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var gated = true
        /// The engine is inside the first batch, held at the gate.
        var held: Bool { lock.withLock { !gated } }

        var family: ModelFamily { model.family }
        var dimension: Int { model.dimension }
        var textWeightBytes: Int { model.textWeightBytes }
        var scoring: LabelScoring { model.scoring }
        func tokens(for text: String) throws -> [Int] { try model.tokens(for: text) }
        func pixelValues(for image: RGBImage) -> [Float] { model.pixelValues(for: image) }
        func embed(pixelValues: [[Float]]) -> [[Float]] { model.embed(pixelValues: pixelValues) }
        func imageDecoder(exact: Bool) -> ImageDecoder { model.imageDecoder(exact: exact) }
        var imageSide: Int { model.imageSide }
        func embed(tokenBatch: [[Int]]) throws -> [[Float]] {
            let wait = lock.withLock { defer { gated = false }; return gated }
            if wait { gate.wait() }
            return try model.embed(tokenBatch: tokenBatch)
        }
    }

    final class Sizes: @unchecked Sendable {
        private let lock = NSLock()
        private var sizes: [Int] = []
        func append(_ size: Int) { lock.withLock { sizes.append(size) } }
        var all: [Int] { lock.withLock { sizes } }
    }

    /// With a two-minute window, a lone request still comes back long before it: it does not wait for
    /// company (before, every lone request waited out the window).
    @Test func aLoneRequestDoesNotWaitForTheWindow() async throws {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let embedder = BatchingEmbedder(model: model, window: .seconds(120))
        defer { embedder.stop() }
        let first = try await withThrowingTaskGroup(of: [Float]?.self) { group in
            group.addTask { try await embedder.embed(text: "a blue house") }
            group.addTask { try await Task.sleep(for: .seconds(30)); return nil }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        #expect(try first == model.embed(text: "a blue house"))
    }

    /// Three requests queued while the engine runs a first one are run as one batch after it, each with its
    /// own vector.
    @Test func requestsQueuedWhileTheEngineIsBusyShareTheNextBatch() async throws {
        let model = GatedModel()
        let sizes = Sizes()
        let embedder = BatchingEmbedder(model: model, window: .milliseconds(50)) { sizes.append($0) }
        defer { embedder.stop() }
        let texts = ["first", "a blue house", "a red car", "the sea"]
        try await withThrowingTaskGroup(of: (String, [Float]).self) { group in
            group.addTask { (texts[0], try await embedder.embed(text: texts[0])) }
            while !model.held { try await Task.sleep(for: .milliseconds(1)) }  // the engine runs it, at the gate
            for text in texts.dropFirst() { group.addTask { (text, try await embedder.embed(text: text)) } }
            while embedder.queued < 3 { try await Task.sleep(for: .milliseconds(1)) }
            model.gate.signal()
            for try await (text, vector) in group { #expect(try vector == model.model.embed(text: text)) }
        }
        #expect(sizes.all == [1, 3])
    }
}
