import ArgumentParser
import Embedding
import Foundation
import ImageCollections
import StoreEmbedded

/// What `--model` names: a local model (a folder or a Hub id), Azure AI Vision (`azure:URL`) or Vertex
/// AI (`vertex:PROJECT/LOCATION`).
enum EmbedderSpec: Equatable {
    case local(String)
    case azure(URL)
    case vertex(project: String, location: String)

    init(parsing text: String) throws {
        if text.hasPrefix("azure:") {
            let address = String(text.dropFirst("azure:".count))
            guard let url = URL(string: address), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false,
                  url.query == nil, url.user == nil else {
                throw ValidationError("--model azure: takes the resource's endpoint, such as azure:https://NAME.cognitiveservices.azure.com")
            }
            self = .azure(url)
        } else if text.hasPrefix("vertex:") {
            let parts = text.dropFirst("vertex:".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            let name = /[A-Za-z0-9-]+/
            guard parts.count == 2, parts.allSatisfy({ $0.wholeMatch(of: name) != nil }) else {
                throw ValidationError("--model vertex: takes PROJECT/LOCATION, such as vertex:my-project/us-central1")
            }
            self = .vertex(project: parts[0], location: parts[1])
        } else {
            self = .local(text)
        }
    }
}

/// The options of cloud embedders (ignored by local models).
struct RemoteOptions: ParsableArguments {
    @Option(name: .customLong("model-version"), help: "Azure: the model-version to ask for.") var azureModelVersion = "2023-04-15"
    @Option(help: "Vector length: Vertex AI 128, 256, 512 or 1408 (default 1408); Azure 1024 (its models' only one).")
    var dimension: Int?
    @Option(help: "Vertex AI: the API's root URL, for proxies and tests (default https://LOCATION-aiplatform.googleapis.com).")
    var vertexEndpoint: String?
    @Option(help: "Cloud embedders: tries per request for failures that may pass (5xx, resets, timeouts).") var retries = 6

    func validate() throws {
        if let dimension { guard dimension > 0 else { throw ValidationError("--dimension must be positive") } }
        guard retries >= 1 else { throw ValidationError("--retries must be at least 1") }
    }
}

/// Opening the embedder `--model` names, with the progress of a download or the key a provider needs.
enum Embedders {
    struct Settings {
        var precision: Precision = .float32
        var exactDecode = false
        var maxBatch = 32
        var batchWindow: Duration = .milliseconds(4)
        var onBatch: @Sendable (Int) -> Void = { _ in }
        /// Requests in flight to a cloud embedder.
        var concurrency = 4
        /// Where a cloud embedder's vectors are cached (`DATA/remote-vectors.sqlite`); nil for no cache.
        var dataFolder: URL?
    }

    /// `remote`: the command's cloud options; the defaults when the command has none.
    static func open(_ name: String, remote: RemoteOptions? = nil, settings: Settings) async throws -> any Embedder {
        let spec = try EmbedderSpec(parsing: name)
        let remote = try remote ?? RemoteOptions.parse([])
        var policy = RetryPolicy()
        policy.attempts = remote.retries
        switch spec {
        case .local(let name):
            let (model, identity) = try await CollectionModel.load(name, precision: settings.precision)
            return LocalEmbedder(model: model, identity: identity, exactDecode: settings.exactDecode, maxBatch: settings.maxBatch,
                                 window: settings.batchWindow, onBatch: settings.onBatch)
        case .azure(let endpoint):
            let key = try secret("AZURE_AI_VISION_KEY", for: "Azure AI Vision (the resource's key from the Azure portal)")
            return RemoteEmbedder.azure(endpoint: endpoint, modelVersion: remote.azureModelVersion, key: key, dimension: remote.dimension ?? 1024,
                                        concurrency: settings.concurrency, policy: policy, cache: try cache(settings))
        case .vertex(let project, let location):
            let token = try secret("GOOGLE_ACCESS_TOKEN", for: "Vertex AI (from `gcloud auth print-access-token`)")
            let dimension = try vertexDimension(remote)
            var endpoint: URL?
            if let address = remote.vertexEndpoint {
                guard let url = URL(string: address), ["http", "https"].contains(url.scheme ?? "") else {
                    throw ValidationError("--vertex-endpoint takes an http(s) URL")
                }
                endpoint = url
            }
            return RemoteEmbedder.vertex(project: project, location: location, token: token, dimension: dimension, endpoint: endpoint,
                                         concurrency: settings.concurrency, policy: policy, cache: try cache(settings))
        }
    }

    /// What collections made with `name` record, without credentials for a cloud embedder (import of
    /// vectors computed elsewhere).
    static func identity(of name: String, remote: RemoteOptions) async throws -> ModelIdentity {
        switch try EmbedderSpec(parsing: name) {
        case .local(let name): return try await CollectionModel.load(name).1
        case .azure(let endpoint):
            return RemoteEmbedder.azureIdentity(endpoint: endpoint, modelVersion: remote.azureModelVersion, dimension: remote.dimension ?? 1024)
        case .vertex: return RemoteEmbedder.vertexIdentity(dimension: try vertexDimension(remote))
        }
    }

    private static func vertexDimension(_ remote: RemoteOptions) throws -> Int {
        let dimension = remote.dimension ?? 1408
        guard [128, 256, 512, 1408].contains(dimension) else { throw ValidationError("--dimension for Vertex AI is 128, 256, 512 or 1408") }
        return dimension
    }

    /// Keys come from the environment only: never from the command line, where `ps` shows them.
    private static func secret(_ variable: String, for provider: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            throw CommandFailure("set \(variable) to use \(provider)")
        }
        return value
    }

    private static func cache(_ settings: Settings) throws -> VectorCache? {
        guard let folder = settings.dataFolder else { return nil }
        do {
            return try VectorCache(file: folder.appendingPathComponent("remote-vectors.sqlite"))
        } catch let error as StoreError {
            throw CommandFailure("cannot open the vector cache in \(folder.path): \(error)")
        }
    }

    /// Ends a local model's engine thread.
    static func close(_ embedder: any Embedder) {
        (embedder as? LocalEmbedder)?.stop()
    }
}
