import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Server

extension Loupe {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve embeddings over HTTP with Azure AI Vision's multimodal embeddings API.",
            discussion: """
                Routes: POST /computervision/retrieval:vectorizeImage and :vectorizeText (?api-version=2024-02-01); \
                collections in the --data folder or the --store PostgreSQL: GET/POST /collections, DELETE /collections/NAME, \
                POST /collections/NAME/items, GET|DELETE /collections/NAME/items/ID, GET …/items/ID/image, \
                POST /collections/NAME/search; GET /health, /ready, /metrics, /openapi.json. Keys come from --key or LOUPE_KEYS (comma-separated); \
                without keys the server only listens on loopback unless --no-auth is given.
                """)

        @OptionGroup var options: ModelOptions
        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port to listen on.") var port = 5000
        @Option(name: .customLong("model-version"), help: "NAME=MODEL: answer model-version NAME with MODEL (repeatable).")
        var modelVersions: [String] = []
        @Option(help: "The model version used when a request names none.") var defaultModelVersion: String?
        @Option(name: .customLong("key"), help: "A subscription key clients must send (repeatable).") var keys: [String] = []
        @Flag(help: "Serve without keys even when listening beyond loopback.") var noAuth = false
        @Option(help: "Requests per second allowed per key.") var rateLimit: Double?
        @Option(help: "Requests a key may send at once before the rate applies.") var rateBurst: Int?
        @Flag(help: "Let URL inputs point to private, loopback and link-local addresses.") var allowPrivateUrls = false
        @Option(help: "Seconds allowed to fetch an image URL.") var urlTimeout = 10
        @Option(help: "Most inputs per engine batch.") var maxBatch = 32
        @Option(help: "Milliseconds to gather concurrent requests into one batch.") var batchWindowMs = 4
        @Option(help: "Seconds a connection may stay silent (idle, or mid-request) before it is closed.") var idleTimeout = 30
        @Option(help: "Seconds a request may take to arrive, headers and body, plus one per 500 bytes received.") var requestTimeout = 30
        @Option(help: "Most connections open at once; more wait to be accepted.") var maxConnections = 1024
        @Option(help: "Log format: text or json.") var logFormat = "text"
        // A cloud model behind the server (--model azure:URL or vertex:PROJECT/LOCATION): ingest's options,
        // with the Azure model version under another name, since --model-version names the served versions.
        @Option(help: "Cloud models: the Azure model-version to ask for.") var azureModelVersion = "2023-04-15"
        @Option(help: "Cloud models: the vector length (as `loupe ingest --dimension`).") var dimension: Int?
        @Option(help: "Cloud models: Vertex AI's root URL (as `loupe ingest --vertex-endpoint`).") var vertexEndpoint: String?
        @OptionGroup var store: StoreOptions

        func validate() throws {
            guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be 0...65535") }
            guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json") }
            for entry in modelVersions where entry.split(separator: "=", maxSplits: 1).count != 2 {
                throw ValidationError("--model-version takes NAME=MODEL, got \(entry)")
            }
            if let rateLimit, rateLimit <= 0 { throw ValidationError("--rate-limit must be positive") }
            guard maxBatch >= 1, batchWindowMs >= 0, urlTimeout >= 1 else {
                throw ValidationError("--max-batch, --batch-window-ms and --url-timeout must be positive")
            }
        }

        func remoteOptions() throws -> RemoteOptions {
            try RemoteOptions.parse(["--model-version", azureModelVersion] + (dimension.map { ["--dimension", "\($0)"] } ?? [])
                + (vertexEndpoint.map { ["--vertex-endpoint", $0] } ?? []))
        }

        func run() async throws {
            LoggingSystem.bootstrap { label in
                logFormat == "json" ? JSONLogHandler(label: label) as LogHandler : StreamLogHandler.standardError(label: label)
            }
            let logger = Logger(label: "loupe")
            var configuration = ServerConfiguration()
            configuration.host = host
            configuration.port = port
            configuration.keys = keys + (ProcessInfo.processInfo.environment["LOUPE_KEYS"] ?? "")
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if configuration.keys.isEmpty && !configuration.isLoopback && !noAuth {
                throw CommandFailure("refusing to listen on \(host) without keys: pass --key (or LOUPE_KEYS), or --no-auth to serve anyone")
            }
            configuration.rateLimit = rateLimit
            configuration.rateBurst = rateBurst
            configuration.allowPrivateURLs = allowPrivateUrls
            configuration.urlTimeout = .seconds(urlTimeout)
            configuration.maxBatch = maxBatch
            configuration.batchWindow = .milliseconds(batchWindowMs)
            configuration.idleTimeout = .seconds(max(1, idleTimeout))
            configuration.requestTimeout = .seconds(max(1, requestTimeout))
            configuration.maximumConnections = max(1, maxConnections)

            let pairs: [(String, String)] = modelVersions.isEmpty
                ? [(configuration.defaultModelVersion, options.model)]
                : modelVersions.map { entry in
                    let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                    return (parts[0], parts[1])
                }
            configuration.defaultModelVersion = defaultModelVersion ?? pairs[0].0

            // Models load before the server listens: no first-request stall, and a clear failure here.
            let metrics = ServerMetrics()
            var versions = [ModelVersion]()
            for (name, source) in pairs {
                var settings = Embedders.Settings(precision: options.precision, exactDecode: options.exactDecode, maxBatch: maxBatch,
                                                  batchWindow: configuration.batchWindow, onBatch: { metrics.recordBatch(size: $0) })
                settings.dataFolder = store.dataFolder
                let embedder = try await Embedders.open(source, remote: try remoteOptions(), settings: settings)
                logger.info("model loaded", metadata: ["modelVersion": "\(name)", "model": "\(source)", "dimension": "\(embedder.dimension)"])
                versions.append(ModelVersion(name: name, source: source, embedder: embedder))
            }
            do {
                let collections = try await store.open()
                logger.info("collections", metadata: ["store": "\(store.description)"])
                configuration.uploadsFolder = store.dataFolder.appendingPathComponent("uploads")
                let app = try buildApplication(
                    configuration: configuration, versions: versions, store: collections, metrics: metrics, logger: logger)
                // Ends on SIGINT / SIGTERM after in-flight requests finish.
                try await app.runService()
                try await collections.flush()
            } catch let error as ServerSetupError {
                throw CommandFailure(error.description)
            }
            for version in versions { Embedders.close(version.embedder) }
        }
    }
}

/// One JSON object per log line on stderr.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var fields: [String: String] = ["time": ISO8601DateFormatter().string(from: Date()), "level": level.rawValue,
                                        "logger": label, "message": message.description]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) { fields[key] = value.description }
        if let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) {
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
    }
}
