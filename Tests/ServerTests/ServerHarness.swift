import AsyncHTTPClient
import CLIP
import Embedding
import Foundation
import Hummingbird
import HummingbirdTesting
import ImageCollections
import Ingest
import Logging
import NIOCore
import NIOHTTP1
import Server

/// Starts the real application on a loopback port with the fixture models and sends real requests.
enum ServerHarness {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    static func image(_ name: String) throws -> Data { try Data(contentsOf: fixtures.appendingPathComponent("images/\(name)")) }

    static let models: [String: any ImageTextModel] = {
        var models = [String: any ImageTextModel]()
        for name in ["tiny-quickgelu", "tiny-gelu", "tiny-siglip"] {
            models[name] = try? ModelFamily.load(folder: fixtures.appendingPathComponent("models/\(name)"))
        }
        return models
    }()

    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var innerCode: String? { ((json["error"] as? [String: Any])?["innererror"] as? [String: Any])?["code"] as? String }
        var vector: [Float]? { (json["vector"] as? [Double])?.map(Float.init) }
    }

    /// A live server; `body` gets its base URL and a sender.
    static func identity(_ name: String) -> ModelIdentity {
        ModelFingerprint.identity(of: fixtures.appendingPathComponent("models/\(name)"), name: name, dimension: models[name]!.dimension)
    }

    static func withServer(
        configure: (inout ServerConfiguration) -> Void = { _ in }, store: (CollectionStore)? = nil,
        _ body: @escaping @Sendable (_ base: String, _ send: Sender) async throws -> Void
    ) async throws {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configure(&configuration)
        let metrics = ServerMetrics()
        let versions = [
            ModelVersion(name: "2023-04-15", source: "tiny-quickgelu", embedder: LocalEmbedder(
                model: models["tiny-quickgelu"]!, identity: identity("tiny-quickgelu"), maxBatch: configuration.maxBatch,
                window: configuration.batchWindow) { metrics.recordBatch(size: $0) }),
            ModelVersion(name: "tiny-gelu", source: "tiny-gelu", embedder: LocalEmbedder(model: models["tiny-gelu"]!, identity: identity("tiny-gelu"))),
            ModelVersion(name: "tiny-siglip", source: "tiny-siglip",
                         embedder: LocalEmbedder(model: models["tiny-siglip"]!, identity: identity("tiny-siglip"))),
        ]
        defer { for version in versions { (version.embedder as? LocalEmbedder)?.stop() } }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let app = try buildApplication(configuration: configuration, versions: versions, store: store, metrics: metrics, logger: logger)
        try await app.test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            let sender = Sender()
            do {
                try await body(base, sender)
                try await sender.client.shutdown()
            } catch {
                try? await sender.client.shutdown()
                throw error
            }
        }
    }

    final class Sender: Sendable {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)

        func send(_ url: String, headers: [String: String] = [:], body: Data? = nil) async throws -> Reply {
            try await send(.POST, url, headers: headers, body: body)
        }

        func send(_ method: HTTPMethod, _ url: String, headers: [String: String] = [:], body: Data? = nil) async throws -> Reply {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await client.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 24)
            var headerMap = [String: String]()
            for header in response.headers { headerMap[header.name.lowercased()] = header.value }
            return Reply(status: Int(response.status.code), headers: headerMap, body: Data(bytes.readableBytesView))
        }
    }
}
