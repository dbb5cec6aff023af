import CLIP
import Foundation
import ImageCollections
import ImageIO

/// Everything that turns texts and images into vectors of one space: a local model, or a remote API.
/// An embedder owns its preparation (a local model decodes and preprocesses an image; a remote one
/// sends its bytes), names itself the way collections record it, and embeds batches with an error per
/// input, so that one bad input never costs the others.
public protocol Embedder: AnyObject, Sendable {
    /// What collections made with this embedder record; its dimension is every vector's length.
    var identity: ModelIdentity { get }
    /// How label probabilities come from similarities, for embedders whose family defines it (nil: no
    /// zero-shot classification).
    var scoring: LabelScoring? { get }

    /// Checks an encoded image and turns it into what `embed` takes, through `decodes` (the bound on
    /// decodes in flight), with a JPEG preview when `thumbnail` is set.
    func prepare(image bytes: [UInt8], decodes: DecodeGate, thumbnail: Bool) async throws(EmbeddingError) -> PreparedImage
    /// The shorter side video frames are decoded at for this embedder.
    var frameSide: Int { get }
    /// A decoded video frame made ready like an image (on the caller's thread: frames are decoded off the pool).
    func prepare(frame: RGBImage, thumbnail: Bool) throws(EmbeddingError) -> PreparedImage
    /// One vector or one error per input, in order.
    func embed(_ inputs: [EmbeddingInput]) async -> [Result<[Float], EmbeddingError>]
}

public enum EmbeddingInput: Sendable {
    case text(String)
    case image(PreparedImage)
}

/// An image as an embedder takes it, and its preview.
public struct PreparedImage: Sendable {
    public enum Content: Sendable {
        /// A local model's input (`ImageTextModel.pixelValues(for:)`).
        case pixels([Float])
        /// The file's bytes, for a remote API.
        case encoded([UInt8])
    }

    public let content: Content
    public let thumbnail: Data?

    public init(_ content: Content, thumbnail: Data? = nil) {
        self.content = content
        self.thumbnail = thumbnail
    }
}

/// Why one input got no vector. `code` follows Azure AI Vision's error codes where one fits
/// (`InvalidImageFormat`, `InvalidTextLength`, …), so every route and report speaks one language.
public struct EmbeddingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input itself is refused (bad image, empty or too long text): retrying cannot help.
        case invalidInput
        /// The provider refused the request (authentication, quota, a shape it does not take).
        case rejected
        /// The provider could not be reached or kept failing through every retry.
        case unavailable
        /// The provider answered with something that is not a vector of the right dimension.
        case badResponse
    }

    public let kind: Kind
    public let code: String
    public let message: String

    public init(_ kind: Kind, code: String, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
        imageError = nil
    }

    public var description: String { "\(code): \(message)" }

    /// The decoder's refusal, when the input was an image that could not be read.
    public private(set) var imageError: ImageError?

    static func from(_ error: ImageError) -> EmbeddingError {
        var refusal = EmbeddingError(.invalidInput, code: error.code, message: error.description)
        refusal.imageError = error
        return refusal
    }

    static let emptyText = EmbeddingError(.invalidInput, code: "EmptyText", message: "the text has nothing to embed")
}

extension Embedder {
    public var dimension: Int { identity.dimension }

    public func embed(text: String) async throws(EmbeddingError) -> [Float] { try await embedOne(.text(text)) }
    public func embed(image: PreparedImage) async throws(EmbeddingError) -> [Float] { try await embedOne(.image(image)) }

    public func embed(texts: [String]) async throws(EmbeddingError) -> [[Float]] {
        var vectors = [[Float]]()
        for result in await embed(texts.map(EmbeddingInput.text)) { vectors.append(try result.get()) }
        return vectors
    }

    /// Prepares and embeds one encoded image.
    public func embed(imageBytes bytes: [UInt8], decodes: DecodeGate) async throws(EmbeddingError) -> [Float] {
        try await embed(image: prepare(image: bytes, decodes: decodes, thumbnail: false))
    }

    private func embedOne(_ input: EmbeddingInput) async throws(EmbeddingError) -> [Float] {
        guard let result = await embed([input]).first else {
            throw EmbeddingError(.badResponse, code: "NoVector", message: "the embedder returned nothing")
        }
        return try result.get()
    }
}
