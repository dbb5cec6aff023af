import Embedding
import Foundation
import HTTPTypes
import HTTPBodies
import Hummingbird
import ImageCollections
import ImageIO
import NIOCore

/// One model answering under an Azure `model-version` name.
public struct ModelVersion: Sendable {
    public let name: String
    public let source: String
    public let embedder: any Embedder
    /// How collections record this model.
    public var identity: ModelIdentity { embedder.identity }

    public init(name: String, source: String, embedder: any Embedder) {
        self.name = name
        self.source = source
        self.embedder = embedder
    }
}

extension ModelVersion {
    /// The version a request names (none, empty or `latest`: the default); an unknown name is Azure's InvalidModel.
    static func named(_ name: String?, in versions: [String: ModelVersion], default defaultVersion: String) throws -> ModelVersion {
        let name = name.flatMap { $0 == "latest" || $0.isEmpty ? nil : $0 } ?? defaultVersion
        guard let version = versions[name] else {
            throw AzureError.invalidRequest(
                "InvalidModel", "Model version \(name) is not available; this server has \(versions.keys.sorted().joined(separator: ", ")).")
        }
        return version
    }
}

/// `POST /computervision/retrieval:vectorizeImage` and `:vectorizeText`, as Azure AI Vision answers them.
struct AzureController<Context: RequestContext> {
    let versions: [String: ModelVersion]
    let defaultVersion: String
    let configuration: ServerConfiguration
    let inputs: RequestInputs

    static var wordLimit: Int { 70 }
    static var characterLimit: Int { 10_000 }

    func add(to router: some RouterMethods<Context>) {
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
        return try ModelVersion.named((query["model-version"] ?? query["modelVersion"]).map(String.init), in: versions, default: defaultVersion)
    }

    func vectorizeImage(_ request: Request, context: Context) async throws -> Response {
        let version = try modelVersion(for: request)
        let mediaType = inputs.mediaType(request)
        let imageBytes: [UInt8]
        switch mediaType {
        case "application/json":
            imageBytes = try await inputs.fetch(try inputs.string("url", in: try await inputs.jsonObject(request)))
        case _ where inputs.isImageBody(request):
            imageBytes = try await inputs.imageBody(request)
        case "multipart/form-data":
            // The boundary is case-sensitive: taken from the header as sent.
            guard let boundary = Multipart.boundary(contentType: request.headers[.contentType] ?? "") else {
                throw AzureError.invalidRequest("InvalidRequestBody", "The multipart body has no boundary.")
            }
            let body = try await inputs.body(request, limit: configuration.maximumBodyBytes + 64 * 1024)
            guard let part = Multipart.file(body, boundary: boundary) else {
                throw AzureError.invalidRequest("InvalidImageSize", "The multipart body holds no image.")
            }
            imageBytes = part
        default:
            throw AzureError.invalidRequest(
                "UnsupportedMediaType",
                "Content type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported; send application/octet-stream, image/*, multipart/form-data or application/json with a url.")
        }
        return vectorResponse(version: version.name, vector: try await inputs.vector(of: imageBytes, with: version.embedder))
    }

    func vectorizeText(_ request: Request, context: Context) async throws -> Response {
        let version = try modelVersion(for: request)
        guard inputs.mediaType(request) == "application/json" else {
            throw AzureError.invalidRequest("UnsupportedMediaType", "Send the text as application/json: {\"text\": \"…\"}.")
        }
        let text = try inputs.string("text", in: try await inputs.jsonObject(request))
        guard text.count <= Self.characterLimit else {
            throw AzureError.invalidRequest("InvalidTextLength", "The text must have at most \(Self.characterLimit) characters; it has \(text.count).")
        }
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        guard (1...Self.wordLimit).contains(words) else {
            throw AzureError.invalidRequest("InvalidTextLength", "The text must have between 1 and \(Self.wordLimit) words; it has \(words).")
        }
        return vectorResponse(version: version.name, vector: try await inputs.vector(of: text, with: version.embedder))
    }

    private func vectorResponse(version: String, vector: [Float]) -> Response {
        let json = "{\"modelVersion\":\(JSONText.string(version)),\"vector\":\(JSONText.vector(vector))}"
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
