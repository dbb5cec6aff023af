import Embedding
import Foundation
import HTTPBodies
import HTTPTypes
import Hummingbird
import ImageIO

/// Reading what a request carries, the same way for every route: the media type, a size-capped body,
/// a JSON object, an image (from bytes or a URL). Failures are Azure-shaped 400s.
struct RequestInputs: Sendable {
    let configuration: ServerConfiguration
    /// Shared by every route, so the bound on decodes holds for the whole server.
    let decodes: DecodeGate

    init(configuration: ServerConfiguration) {
        self.configuration = configuration
        decodes = DecodeGate(slots: configuration.decodeSlots, budgetBytes: configuration.decodeBudgetBytes)
    }

    static let jsonLimit = 256 * 1024

    func mediaType(_ request: Request) -> String {
        (request.headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    func isImageBody(_ request: Request) -> Bool {
        let type = mediaType(request)
        return type == "application/octet-stream" || type.hasPrefix("image/")
    }

    /// The body, up to `limit` bytes; a larger one is refused with `tooLarge` as the error code (an image's
    /// size error for images, a body error for JSON).
    func body(_ request: Request, limit: Int, tooLarge: String = "InvalidImageSize") async throws -> [UInt8] {
        try await Self.body(request, limit: limit, tooLarge: tooLarge)
    }

    static func body(_ request: Request, limit: Int, tooLarge: String) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw AzureError.invalidRequest(tooLarge, "The request body is \(length) bytes; the limit is \(limit).")
        }
        do {
            return Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AzureError.invalidRequest(tooLarge, "The request body is larger than \(limit) bytes.")
        }
    }

    func imageBody(_ request: Request) async throws -> [UInt8] { try await body(request, limit: configuration.maximumBodyBytes) }

    func jsonObject(_ request: Request) async throws -> [String: Any] {
        let bytes = try await body(request, limit: Self.jsonLimit, tooLarge: "InvalidRequestBody")
        return try field { try JSONBody.object(bytes) }
    }

    func string(_ name: String, in object: [String: Any]) throws -> String {
        try field { try JSONBody.string(name, in: object) }
    }

    /// Reads a body or one of its fields with `JSONBody`; a problem is Azure's InvalidRequestBody.
    func field<T>(_ read: () throws -> T) throws -> T {
        do {
            return try read()
        } catch let problem as JSONBody.Problem {
            throw AzureError.invalidRequest("InvalidRequestBody", problem.description)
        }
    }

    func fetch(_ url: String) async throws -> [UInt8] {
        do {
            return try await URLFetcher(allowPrivateAddresses: configuration.allowPrivateURLs, timeout: configuration.urlTimeout).fetch(url)
        } catch let failure as URLFetcher.Failure {
            if case .tooLarge = failure { throw AzureError.invalidRequest("InvalidImageSize", failure.description) }
            throw AzureError.invalidRequest("InvalidImageUrl", failure.description)
        }
    }

    /// An image prepared by `embedder` (decoded and preprocessed for a local model, and its thumbnail when
    /// asked for) through the decode gate; refusals are Azure's 400s.
    func prepared(_ bytes: [UInt8], for embedder: any Embedder, thumbnail: Bool = false) async throws -> PreparedImage {
        do {
            return try await embedder.prepare(image: bytes, decodes: decodes, thumbnail: thumbnail)
        } catch {
            throw AzureError.embedding(error)
        }
    }

    func vector(of bytes: [UInt8], with embedder: any Embedder) async throws -> [Float] {
        try await vector(.image(prepared(bytes, for: embedder)), with: embedder)
    }

    func vector(of text: String, with embedder: any Embedder) async throws -> [Float] { try await vector(.text(text), with: embedder) }

    func vector(_ input: EmbeddingInput, with embedder: any Embedder) async throws -> [Float] {
        guard let result = await embedder.embed([input]).first else { throw AzureError.embedding(.init(.badResponse, code: "NoVector", message: "no vector came back")) }
        do {
            return try result.get()
        } catch {
            throw AzureError.embedding(error)
        }
    }

    static func azureCode(_ error: ImageError) -> String {
        switch error {
        case .empty, .tooLarge: "InvalidImageSize"
        case .dimensionsOutOfRange: "InvalidImageDimension"
        default: "InvalidImageFormat"
        }
    }

    static func azureMessage(_ error: ImageError) -> String {
        switch error {
        case .unknownFormat, .corrupt, .unsupported: "Input data is not a valid image: \(error.description)."
        default: error.description.prefix(1).uppercased() + error.description.dropFirst() + "."
        }
    }
}

/// JSON text for vectors: Swift's shortest float spellings, in a fixed key order.
public enum JSONText {
    /// A JSON string literal, escaped.
    public static func string(_ value: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    public static func vector(_ values: [Float]) -> String { "[" + values.map { "\($0)" }.joined(separator: ",") + "]" }
}
