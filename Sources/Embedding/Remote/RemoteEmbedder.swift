import CLIP
import Crypto
import Foundation
import ImageCollections
import StoreEmbedded
import ImageIO

/// A provider's HTTP API, as a remote embedder calls it: one request per input, and what its answer means.
protocol RemoteProvider: Sendable {
    var identity: ModelIdentity { get }
    /// The image formats the service takes as they are; others are sent as JPEG.
    var acceptedFormats: Set<ImageFormat> { get }
    func request(for input: RemoteInput) -> (url: String, headers: [(String, String)], body: [UInt8])
    /// The vector in a final answer (2xx), or the input's error (4xx).
    func vector(from reply: RemoteClient.Reply) -> Result<[Float], EmbeddingError>
}

enum RemoteInput {
    case text(String)
    case image([UInt8])
}

/// A cloud model as an embedder (Azure AI Vision, Vertex AI): images are checked here (format, size,
/// dimensions) and sent as their bytes; up to `concurrency` requests are in flight, retried as
/// `RetryPolicy` says; every vector is checked for its dimension and finite numbers before anyone sees
/// it; vectors already paid for come from the cache.
public final class RemoteEmbedder: Embedder {
    private let provider: any RemoteProvider
    private let client: RemoteClient
    private let cache: VectorCache?

    init(provider: any RemoteProvider, concurrency: Int, policy: RetryPolicy, cache: VectorCache?) {
        self.provider = provider
        client = RemoteClient(concurrency: concurrency, policy: policy)
        self.cache = cache
    }

    public var identity: ModelIdentity { provider.identity }
    /// Cloud embeddings come with no calibrated scale for label probabilities.
    public var scoring: LabelScoring? { nil }
    public var counters: RemoteCounters { client.snapshot }

    public func prepare(image bytes: [UInt8], decodes: DecodeGate, thumbnail: Bool) async throws(EmbeddingError) -> PreparedImage {
        // The provider's own limits (Azure's: 20 MB, sides of 10 to 16,000) are checked before anything is sent.
        let decoder = ImageDecoder(limits: .azure, minimumDecodedSide: 2 * Thumbnail.defaultMaximumSide)
        do {
            try decoder.checkByteCount(bytes.count)
            if let format = ImageFormat(signature: bytes), !provider.acceptedFormats.contains(format) {
                // HEIC, say, which the services refuse: decoded here and sent as a JPEG.
                let (sent, preview) = try await decodes.decode(bytes, with: ImageDecoder(limits: .azure)) { image in
                    (try Thumbnail.jpeg(from: image, maximumSide: Self.transcodedSide, quality: 90), thumbnail ? try Thumbnail.jpeg(from: image) : nil)
                }
                return PreparedImage(.encoded([UInt8](sent)), thumbnail: preview)
            }
            guard thumbnail else {
                _ = try decoder.dimensions(of: bytes)
                return PreparedImage(.encoded(bytes))
            }
            let preview = try await decodes.decode(bytes, with: decoder) { try Thumbnail.jpeg(from: $0) }
            return PreparedImage(.encoded(bytes), thumbnail: preview)
        } catch let error as ImageError {
            throw .from(error)
        } catch {
            throw EmbeddingError(.invalidInput, code: "InvalidImageFormat", message: "\(error)")
        }
    }

    /// The longest side of an image sent as JPEG because the provider does not take its format: well
    /// above what the providers' models look at, and small to send.
    static let transcodedSide = 1024

    /// Frames go to the provider as JPEG; 512 pixels keep them small to send and well above what the
    /// providers' models look at.
    public var frameSide: Int { 512 }

    public func prepare(frame: RGBImage, thumbnail: Bool) throws(EmbeddingError) -> PreparedImage {
        do {
            let bytes = [UInt8](try Thumbnail.jpeg(from: frame, maximumSide: max(frame.width, frame.height), quality: 90))
            return PreparedImage(.encoded(bytes), thumbnail: thumbnail ? try Thumbnail.jpeg(from: frame) : nil)
        } catch {
            throw EmbeddingError(.invalidInput, code: "InvalidImageFormat", message: "the frame could not be encoded: \(error)")
        }
    }

    public func embed(_ inputs: [EmbeddingInput]) async -> [Result<[Float], EmbeddingError>] {
        await withTaskGroup(of: (Int, Result<[Float], EmbeddingError>).self) { group in
            for (index, input) in inputs.enumerated() {
                group.addTask { (index, await self.embed(input)) }
            }
            var results = [Result<[Float], EmbeddingError>](repeating: .failure(.init(.badResponse, code: "NoVector", message: "")), count: inputs.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
    }

    private func embed(_ input: EmbeddingInput) async -> Result<[Float], EmbeddingError> {
        let remote: RemoteInput
        switch input {
        case .text(let text):
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return .failure(.emptyText) }
            remote = .text(text)
        case .image(let image):
            guard case .encoded(let bytes) = image.content else {
                return .failure(EmbeddingError(.invalidInput, code: "InvalidImageFormat", message: "the image was prepared for another embedder"))
            }
            remote = .image(bytes)
        }
        let key = cacheKey(remote)
        if let cached = await cache?.vector(for: key, dimension: identity.dimension) {
            client.countCached(1)
            return .success(cached)
        }
        let request = provider.request(for: remote)
        let result = await client.send(url: request.url, headers: request.headers, body: request.body).flatMap(provider.vector(from:))
        guard case .success(let vector) = result else { return result }
        guard vector.count == identity.dimension, vector.allSatisfy(\.isFinite) else {
            return .failure(EmbeddingError(.badResponse, code: "InvalidVector",
                                           message: "the provider returned \(vector.count) numbers, not \(identity.dimension) finite ones"))
        }
        try? await cache?.store(vector, for: key)
        return .success(vector)
    }

    /// The embedder's identity and the input's kind and content, hashed.
    private func cacheKey(_ input: RemoteInput) -> String {
        var hasher = SHA256()
        hasher.update(data: Data("\(identity.id)\n\(identity.revision)\n\(identity.dimension)\n".utf8))
        switch input {
        case .text(let text): hasher.update(data: Data(("text\n" + text).utf8))
        case .image(let bytes):
            hasher.update(data: Data("image\n".utf8))
            hasher.update(data: Data(bytes))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Reading providers' JSON answers.
enum ProviderJSON {
    /// The body decoded as `T`, or why it is not one (a vector holding anything but numbers is refused).
    static func decode<T: Decodable>(_ type: T.Type, _ reply: RemoteClient.Reply) -> Result<T, EmbeddingError> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(reply.body)))
        } catch {
            return .failure(EmbeddingError(.badResponse, code: "MalformedResponse",
                                           message: "HTTP \(reply.status) with a body that is not the expected JSON (\(reply.body.count) bytes)"))
        }
    }
}
