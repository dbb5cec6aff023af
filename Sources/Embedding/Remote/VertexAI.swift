import Foundation
import ImageIO
import ImageCollections
import StoreEmbedded

/// Vertex AI's `multimodalembedding@001` through `:predict`: one instance per request (`{"text"}` or
/// `{"image": {"bytesBase64Encoded"}}`) with `parameters.dimension`, answered with `textEmbedding` or
/// `imageEmbedding`; a bearer token authenticates (`gcloud auth print-access-token`).
struct VertexAI: RemoteProvider {
    let url: String
    let token: String
    let identity: ModelIdentity
    /// Vertex AI's multimodal embeddings take BMP, GIF, JPEG and PNG.
    var acceptedFormats: Set<ImageFormat> { [.bmp, .gif, .jpeg, .png] }

    static let model = "multimodalembedding@001"
    static let dimensions = [128, 256, 512, 1408]

    /// `endpoint`: the API's root, `https://LOCATION-aiplatform.googleapis.com` unless given (tests, proxies).
    init(project: String, location: String, token: String, dimension: Int, endpoint: URL?) {
        var base = endpoint?.absoluteString ?? "https://\(location)-aiplatform.googleapis.com"
        while base.hasSuffix("/") { base.removeLast() }
        url = "\(base)/v1/projects/\(project)/locations/\(location)/publishers/google/models/\(Self.model):predict"
        self.token = token
        // The model, not the project or region, makes the vectors: collections record only it.
        identity = ModelIdentity(id: "vertex:\(Self.model)", revision: Self.model, dimension: dimension)
    }

    func request(for input: RemoteInput) -> (url: String, headers: [(String, String)], body: [UInt8]) {
        let instance: [String: Any] = switch input {
        case .text(let text): ["text": text]
        case .image(let bytes): ["image": ["bytesBase64Encoded": Data(bytes).base64EncodedString()]]
        }
        let body = (try? JSONSerialization.data(withJSONObject: ["instances": [instance], "parameters": ["dimension": identity.dimension]])) ?? Data()
        return (url, [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json; charset=utf-8")], Array(body))
    }

    private struct Answer: Decodable {
        struct Prediction: Decodable {
            let textEmbedding: [Float]?
            let imageEmbedding: [Float]?
        }
        let predictions: [Prediction]
    }

    private struct Failure: Decodable {
        struct Body: Decodable {
            let code: Int?
            let message: String?
            let status: String?
        }
        let error: Body
    }

    func vector(from reply: RemoteClient.Reply) -> Result<[Float], EmbeddingError> {
        if (200..<300).contains(reply.status) {
            return ProviderJSON.decode(Answer.self, reply).flatMap { answer in
                guard answer.predictions.count == 1, let vector = answer.predictions[0].textEmbedding ?? answer.predictions[0].imageEmbedding else {
                    return .failure(EmbeddingError(.badResponse, code: "MalformedResponse", message: "the answer holds no single embedding"))
                }
                return .success(vector)
            }
        }
        // {"error": {"code": 400, "message", "status": "INVALID_ARGUMENT"}}
        let failure = try? ProviderJSON.decode(Failure.self, reply).get().error
        let kind: EmbeddingError.Kind = reply.status == 400 ? .invalidInput : .rejected
        return .failure(EmbeddingError(kind, code: failure?.status ?? "HTTP\(reply.status)",
                                       message: "Vertex AI: \(failure?.message ?? "HTTP \(reply.status)")"))
    }
}

extension RemoteEmbedder {
    /// How collections record Vertex AI's vectors, without a token (for vectors computed elsewhere).
    public static func vertexIdentity(dimension: Int = 1408) -> ModelIdentity {
        VertexAI(project: "", location: "", token: "", dimension: dimension, endpoint: nil).identity
    }

    /// Vertex AI's multimodal embeddings in `project` and `location`; collections record
    /// `vertex:multimodalembedding@001` and the dimension.
    public static func vertex(project: String, location: String, token: String, dimension: Int = 1408, endpoint: URL? = nil,
                              concurrency: Int = 4, policy: RetryPolicy = RetryPolicy(), cache: VectorCache? = nil) -> RemoteEmbedder {
        RemoteEmbedder(provider: VertexAI(project: project, location: location, token: token, dimension: dimension, endpoint: endpoint),
                       concurrency: concurrency, policy: policy, cache: cache)
    }
}
