import CLIP
import Embedding
import Foundation
import HTTPTypes
import Hummingbird
import ImageCollections
import ImageIO
import NIOCore

/// One model answering under an Azure `model-version` name.
public struct ModelVersion: Sendable {
    public let name: String
    public let source: String
    public let embedder: BatchingEmbedder
    /// How collections record this model.
    public let identity: ModelIdentity

    public init(name: String, source: String, embedder: BatchingEmbedder, identity: ModelIdentity) {
        self.name = name
        self.source = source
        self.embedder = embedder
        self.identity = identity
    }
}

/// `POST /computervision/retrieval:vectorizeImage` and `:vectorizeText`, as Azure AI Vision answers them.
struct AzureController<Context: RequestContext> {
    let versions: [String: ModelVersion]
    let defaultVersion: String
    let configuration: ServerConfiguration
    let decoder = ImageDecoder()

    static var wordLimit: Int { 70 }

    func add(to router: Router<Context>) {
        router.post("/computervision/retrieval:vectorizeImage") { request, context in
            try await vectorizeImage(request, context: context)
        }
        router.post("/computervision/retrieval:vectorizeText") { request, context in
            try await vectorizeText(request, context: context)
        }
    }

    /// `api-version` must be one Azure knows; Azure answers others with 404 Resource not found.
    func modelVersion(for request: Request) throws -> ModelVersion {
        let query = request.uri.queryParameters
        guard let apiVersion = query["api-version"] else {
            throw AzureError.invalidRequest("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
        }
        guard ServerConfiguration.apiVersions.contains(String(apiVersion)) else { throw AzureError.notFound }
        let requested = query["model-version"] ?? query["modelVersion"]
        let name = requested.map(String.init).flatMap { $0 == "latest" || $0.isEmpty ? nil : $0 } ?? defaultVersion
        guard let version = versions[name] else {
            throw AzureError.invalidRequest(
                "InvalidModel", "Model version \(name) is not available; this server has \(versions.keys.sorted().joined(separator: ", ")).")
        }
        return version
    }

    func vectorizeImage(_ request: Request, context: Context) async throws -> Response {
        let version = try modelVersion(for: request)
        let contentType = request.headers[.contentType] ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let imageBytes: [UInt8]
        switch mediaType {
        case "application/json":
            let url = try jsonField("url", from: try await body(of: request, limit: 64 * 1024))
            do {
                imageBytes = try await URLFetcher(allowPrivateAddresses: configuration.allowPrivateURLs,
                                                  timeout: configuration.urlTimeout).fetch(url)
            } catch let failure as URLFetcher.Failure {
                if case .tooLarge = failure { throw AzureError.invalidRequest("InvalidImageSize", failure.description) }
                throw AzureError.invalidRequest("InvalidImageUrl", failure.description)
            }
        case "application/octet-stream":
            imageBytes = try await body(of: request, limit: configuration.maximumBodyBytes)
        case _ where mediaType.hasPrefix("image/"):
            imageBytes = try await body(of: request, limit: configuration.maximumBodyBytes)
        case "multipart/form-data":
            // The boundary is case-sensitive: taken from the header as sent.
            guard let boundary = Multipart.boundary(contentType: contentType) else {
                throw AzureError.invalidRequest("InvalidRequestBody", "The multipart body has no boundary.")
            }
            let body = try await body(of: request, limit: configuration.maximumBodyBytes + 64 * 1024)
            guard let part = Multipart.firstPart(body, boundary: boundary) else {
                throw AzureError.invalidRequest("InvalidImageSize", "The multipart body holds no image.")
            }
            imageBytes = part
        default:
            throw AzureError.invalidRequest(
                "UnsupportedMediaType",
                "Content type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported; send application/octet-stream, image/*, multipart/form-data or application/json with a url.")
        }
        let image: RGBImage
        do {
            image = try decoder.decode(imageBytes).rgb()
        } catch let error as ImageError {
            throw AzureError.invalidRequest(Self.azureCode(error), Self.azureMessage(error))
        }
        return vectorResponse(version: version.name, vector: try await version.embedder.embed(image: image))
    }

    func vectorizeText(_ request: Request, context: Context) async throws -> Response {
        let version = try modelVersion(for: request)
        let mediaType = (request.headers[.contentType] ?? "").lowercased().split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard mediaType == "application/json" else {
            throw AzureError.invalidRequest("UnsupportedMediaType", "Send the text as application/json: {\"text\": \"…\"}.")
        }
        let text = try jsonField("text", from: try await body(of: request, limit: 64 * 1024))
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        guard (1...Self.wordLimit).contains(words) else {
            throw AzureError.invalidRequest("InvalidTextLength", "The text must have between 1 and \(Self.wordLimit) words; it has \(words).")
        }
        do {
            return vectorResponse(version: version.name, vector: try await version.embedder.embed(text: text))
        } catch CLIPError.emptyText {
            throw AzureError.invalidRequest("InvalidTextLength", "The text has nothing to embed.")
        }
    }

    private func body(of request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw AzureError.invalidRequest("InvalidImageSize", "The request body is \(length) bytes; the limit is \(limit).")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AzureError.invalidRequest("InvalidImageSize", "The request body is larger than \(limit) bytes.")
        }
    }

    private func jsonField(_ name: String, from body: [UInt8]) throws -> String {
        guard !body.isEmpty else { throw AzureError.invalidRequest("InvalidRequestBody", "The request body is empty.") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw AzureError.invalidRequest("InvalidRequestBody", "The request body is not a JSON object.")
        }
        guard let value = object[name] as? String else {
            throw AzureError.invalidRequest("InvalidRequestBody", "The JSON body needs a string field \"\(name)\".")
        }
        return value
    }

    private func vectorResponse(version: String, vector: [Float]) -> Response {
        let json = "{\"modelVersion\":\(JSONText.string(version)),\"vector\":[\(vector.map { "\($0)" }.joined(separator: ","))]}"
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: json)))
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

enum JSONText {
    /// A JSON string literal, escaped.
    static func string(_ value: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
