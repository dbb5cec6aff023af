import Foundation
import ImageIO
import ImageCollections
import StoreEmbedded

/// Azure AI Vision's multimodal embeddings (`retrieval:vectorizeImage` with the image's bytes,
/// `retrieval:vectorizeText` with `{"text"}`), authenticated by `Ocp-Apim-Subscription-Key`. Any server
/// that answers these routes works, `loupe serve` included.
struct AzureVision: RemoteProvider {
    /// `https://RESOURCE.cognitiveservices.azure.com` (or http:// for proxies and tests), without a trailing slash.
    let endpoint: String
    let modelVersion: String
    let key: String
    let identity: ModelIdentity
    /// Azure AI Vision takes JPEG, PNG, GIF, BMP, WebP, ICO and TIFF (and MPO, a JPEG).
    var acceptedFormats: Set<ImageFormat> { [.jpeg, .png, .gif, .bmp, .webp, .ico, .tiff] }

    static let apiVersion = "2024-02-01"
    /// RFC 3986's unreserved characters: a query value made of them needs no escaping.
    static let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    init(endpoint: URL, modelVersion: String, key: String, dimension: Int) {
        var base = endpoint.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.endpoint = base
        self.modelVersion = modelVersion
        self.key = key
        let host = endpoint.host.map { host in endpoint.port.map { "\(host):\($0)" } ?? host } ?? base
        identity = ModelIdentity(id: "azure:\(host)/\(modelVersion)", revision: modelVersion, dimension: dimension)
    }

    func request(for input: RemoteInput) -> (url: String, headers: [(String, String)], body: [UInt8]) {
        let query = "api-version=\(Self.apiVersion)&model-version=\(modelVersion.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? modelVersion)"
        switch input {
        case .image(let bytes):
            return ("\(endpoint)/computervision/retrieval:vectorizeImage?\(query)",
                    [("Ocp-Apim-Subscription-Key", key), ("Content-Type", "application/octet-stream")], bytes)
        case .text(let text):
            let body = (try? JSONSerialization.data(withJSONObject: ["text": text])) ?? Data()
            return ("\(endpoint)/computervision/retrieval:vectorizeText?\(query)",
                    [("Ocp-Apim-Subscription-Key", key), ("Content-Type", "application/json")], Array(body))
        }
    }

    private struct Answer: Decodable { let vector: [Float] }

    private struct Failure: Decodable {
        struct Body: Decodable {
            let code: String?
            let message: String?
            let innererror: Inner?
        }
        struct Inner: Decodable {
            let code: String?
            let message: String?
        }
        let error: Body
    }

    func vector(from reply: RemoteClient.Reply) -> Result<[Float], EmbeddingError> {
        if (200..<300).contains(reply.status) { return ProviderJSON.decode(Answer.self, reply).map(\.vector) }
        // {"error": {"code", "message", "innererror": {"code", "message"}}}: the inner code names the problem.
        let failure = try? ProviderJSON.decode(Failure.self, reply).get().error
        let code = failure?.innererror?.code ?? failure?.code ?? "HTTP\(reply.status)"
        let message = failure?.innererror?.message ?? failure?.message ?? "HTTP \(reply.status)"
        // 400, 413 and 415 refuse this input; 401, 403, 404 and the rest refuse every request alike.
        let kind: EmbeddingError.Kind = [400, 413, 415].contains(reply.status) ? .invalidInput : .rejected
        return .failure(EmbeddingError(kind, code: code, message: "Azure AI Vision: \(message)"))
    }
}

extension RemoteEmbedder {
    /// How collections record Azure's vectors, without a key (for vectors computed elsewhere).
    public static func azureIdentity(endpoint: URL, modelVersion: String = "2023-04-15", dimension: Int = 1024) -> ModelIdentity {
        AzureVision(endpoint: endpoint, modelVersion: modelVersion, key: "", dimension: dimension).identity
    }

    /// Azure AI Vision at `endpoint`; collections record it as `azure:HOST/MODEL-VERSION`.
    public static func azure(endpoint: URL, modelVersion: String = "2023-04-15", key: String, dimension: Int = 1024,
                             concurrency: Int = 4, policy: RetryPolicy = RetryPolicy(), cache: VectorCache? = nil) -> RemoteEmbedder {
        RemoteEmbedder(provider: AzureVision(endpoint: endpoint, modelVersion: modelVersion, key: key, dimension: dimension),
                       concurrency: concurrency, policy: policy, cache: cache)
    }
}
