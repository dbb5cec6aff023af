import CLIP
import Foundation
import ImageCollections
import ImageIO

/// A model on this machine as an embedder: images decoded with the model's decoder and preprocessed by
/// its family, then every caller's inputs batched in front of the engine (`BatchingEmbedder`).
public final class LocalEmbedder: Embedder {
    public let model: any ImageTextModel
    public let identity: ModelIdentity
    public let decoder: ImageDecoder
    private let engine: BatchingEmbedder

    /// `exactDecode`: every pixel of large JPEGs (the reference's pixels) instead of DCT-scaled decoding.
    public init(model: any ImageTextModel, identity: ModelIdentity, exactDecode: Bool = false, maxBatch: Int = 32,
                window: Duration = .milliseconds(4), onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.model = model
        self.identity = identity
        decoder = model.imageDecoder(exact: exactDecode)
        engine = BatchingEmbedder(model: model, maxBatch: maxBatch, window: window, onBatch: onBatch)
    }

    deinit { engine.stop() }

    public var scoring: LabelScoring? { model.scoring }

    public func prepare(image bytes: [UInt8], decodes: DecodeGate, thumbnail: Bool) async throws(EmbeddingError) -> PreparedImage {
        let model = self.model
        do {
            return try await decodes.decode(bytes, with: decoder) { image in
                PreparedImage(.pixels(model.pixelValues(for: image)), thumbnail: thumbnail ? try? Thumbnail.jpeg(from: image) : nil)
            }
        } catch let error as ImageError {
            throw .from(error)
        } catch {
            throw EmbeddingError(.invalidInput, code: "InvalidImageFormat", message: "\(error)")
        }
    }

    public var frameSide: Int { model.imageSide }

    public func prepare(frame: RGBImage, thumbnail: Bool) throws(EmbeddingError) -> PreparedImage {
        PreparedImage(.pixels(model.pixelValues(for: frame)), thumbnail: thumbnail ? try? Thumbnail.jpeg(from: frame) : nil)
    }

    public func embed(_ inputs: [EmbeddingInput]) async -> [Result<[Float], EmbeddingError>] {
        // Tokenising refuses texts with nothing to embed before anything is queued.
        var jobs = [BatchingEmbedder.Input?]()
        var results = [Result<[Float], EmbeddingError>?](repeating: nil, count: inputs.count)
        for (index, input) in inputs.enumerated() {
            switch input {
            case .text(let text):
                do {
                    jobs.append(.tokens(try model.tokens(for: text)))
                } catch {
                    jobs.append(nil)
                    results[index] = .failure(error as? CLIPError == .emptyText
                        ? .emptyText : EmbeddingError(.invalidInput, code: "InvalidTextLength", message: "\(error)"))
                }
            case .image(let image):
                guard case .pixels(let pixels) = image.content else {
                    jobs.append(nil)
                    results[index] = .failure(EmbeddingError(.invalidInput, code: "InvalidImageFormat",
                                                             message: "the image was prepared for another embedder"))
                    continue
                }
                jobs.append(.pixels(pixels))
            }
        }
        let queued = jobs.compactMap { $0 }
        let produced = queued.isEmpty ? [] : await engine.embed(queued)
        var vectors = produced.makeIterator()
        return zip(jobs, results).map { job, result in
            if let result { return result }
            guard job != nil, let vector = vectors.next() else {
                return .failure(EmbeddingError(.unavailable, code: "EngineStopped", message: "the model has stopped"))
            }
            return vector.mapError { error in
                (error as? CLIPError) == .emptyText ? .emptyText : EmbeddingError(.unavailable, code: "EngineFailed", message: "\(error)")
            }
        }
    }

    /// Finishes queued work and ends the engine's thread.
    public func stop() { engine.stop() }
}
