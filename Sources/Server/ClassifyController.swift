import CLIP
import Embedding
import Foundation
import HTTPBodies
import Hummingbird
import NIOCore

/// `POST /classify`: zero-shot classification of one image against labels, with the model family's
/// probabilities (CLIP: a softmax across the labels). JSON `{"labels": [...], "url": "…"}`, or an image
/// body with `?label=…&label=…`; `?model-version=` (or `"modelVersion"`) picks the model.
struct ClassifyController<Context: RequestContext> {
    let versions: [String: ModelVersion]
    let defaultVersion: String
    let configuration: ServerConfiguration
    let inputs: RequestInputs

    static var labelLimit: ClosedRange<Int> { 1...64 }

    func add(to router: some RouterMethods<Context>) {
        router.post("/classify") { request, _ in try await classify(request) }
    }

    func classify(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        // Everything is checked before the image is fetched or decoded.
        let labels: [String], url: String?, versionNames: [String?]
        if inputs.mediaType(request) == "application/json" {
            let body = try await inputs.jsonObject(request)
            labels = try inputs.field { try JSONBody.strings("labels", in: body) } ?? []
            versionNames = [try inputs.field { try JSONBody.optionalString("modelVersion", in: body) }, query["model-version"].map(String.init)]
            url = try inputs.string("url", in: body)
        } else if inputs.isImageBody(request) {
            labels = query.getAll("label").map { String($0) }
            versionNames = [query["model-version"].map(String.init)]
            url = nil
        } else {
            throw AzureError.invalidRequest("UnsupportedMediaType", "Send application/json with labels and a url, or an image body with ?label=….")
        }
        guard Self.labelLimit.contains(labels.count) else {
            throw AzureError.invalidRequest("InvalidRequestBody", "Give 1 to \(Self.labelLimit.upperBound) labels; there are \(labels.count).")
        }
        if let long = labels.first(where: { $0.count > AzureController<Context>.characterLimit }) {
            throw AzureError.invalidRequest("InvalidTextLength", "A label has \(long.count) characters; the limit is \(AzureController<Context>.characterLimit).")
        }
        // Named in the body and the query, the two must be the same model.
        let named = try versionNames.compactMap { $0 }.map { try ModelVersion.named($0, in: versions, default: defaultVersion) }
        guard Set(named.map(\.name)).count <= 1 else {
            throw AzureError.invalidRequest("InvalidModel", "The body and the query name different model versions; give one.")
        }
        let version = try named.first ?? ModelVersion.named(nil, in: versions, default: defaultVersion)
        guard let scoring = version.embedder.scoring else {
            throw AzureError.invalidRequest("ClassificationNotSupported", "Model version \(version.name) has no zero-shot classification.")
        }
        let bytes = if let url { try await inputs.fetch(url) } else { try await inputs.imageBody(request) }
        let embedder = version.embedder
        async let imageVector = inputs.vector(of: bytes, with: embedder)
        var labelVectors = [[Float]]()
        for result in await embedder.embed(labels.map(EmbeddingInput.text)) {
            switch result {
            case .success(let vector): labelVectors.append(vector)
            case .failure(let error) where error.code == "EmptyText":
                throw AzureError.invalidRequest("InvalidTextLength", "A label has nothing to embed.")
            case .failure(let error): throw AzureError.embedding(error)
            }
        }
        let scores = scoring.probabilities(image: try await imageVector, labels: labelVectors)
        let entries = zip(labels, scores).map { "{\"label\":\(JSONText.string($0)),\"score\":\($1)}" }
        let json = "{\"modelVersion\":\(JSONText.string(version.name)),\"labels\":[\(entries.joined(separator: ","))]}"
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
