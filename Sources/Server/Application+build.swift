import Embedding
import ImageCollections
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Builds the HTTP application: Azure routes, health, readiness, metrics and the OpenAPI document,
/// behind error mapping, request logging, authentication and rate limiting (outermost first).
public func buildApplication(
    configuration: ServerConfiguration, versions: [ModelVersion], store: CollectionStore? = nil, metrics: ServerMetrics = ServerMetrics(),
    logger: Logger = Logger(label: "loupe.server"),
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    guard !versions.isEmpty else { throw ServerSetupError("no model is configured") }
    let byName = Dictionary(versions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    guard byName[configuration.defaultModelVersion] != nil else {
        throw ServerSetupError("the default model version \(configuration.defaultModelVersion) is not one of \(byName.keys.sorted())")
    }
    if configuration.keys.isEmpty && !configuration.isLoopback {
        logger.warning("authentication is OFF while listening on \(configuration.host): anyone who can reach this port can use it")
    } else if configuration.keys.isEmpty {
        logger.warning("authentication is off (no keys configured); listening on loopback only")
    }

    let router = try makeRouter(configuration: configuration, versions: versions, byName: byName, store: store, metrics: metrics)
    let idle = TimeAmount.nanoseconds(Int64(configuration.idleTimeout / .nanoseconds(1)))
    return Application(
        router: router,
        server: HTTPServerBuilder { responder in
            GuardedHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idle)),
                                requestTimeout: configuration.requestTimeout, minimumRate: configuration.minimumRequestRate, metrics: metrics)
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "loupe",
                             availableConnectionsDelegate: .maximum(configuration.maximumConnections, logger: logger)),
        onServerRunning: onServerRunning, logger: logger)
}

/// Every route behind its middleware (the tests compare the routes with the OpenAPI document).
func makeRouter(configuration: ServerConfiguration, versions: [ModelVersion], byName: [String: ModelVersion], store: CollectionStore?,
                metrics: ServerMetrics) throws -> Router<ServerRequestContext> {
    let router = Router(context: ServerRequestContext.self, options: .autoGenerateHeadEndpoints)
    let allowedMethods = AllowedMethods<ServerRequestContext>()
    router.add(middleware: AzureErrorsAndMetricsMiddleware(metrics: metrics, allowedMethods: allowedMethods))
    router.add(middleware: SubscriptionKeyMiddleware(keys: configuration.keys))
    if let rate = configuration.rateLimit {
        router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(perSecond: rate, burst: configuration.rateBurst ?? max(1, Int(rate)))))
    }
    let routes = MethodRecordingRouter(router)
    let inputs = RequestInputs(configuration: configuration)
    AzureController(versions: byName, defaultVersion: configuration.defaultModelVersion, configuration: configuration, inputs: inputs)
        .add(to: routes)
    ClassifyController(versions: byName, defaultVersion: configuration.defaultModelVersion, configuration: configuration, inputs: inputs)
        .add(to: routes)
    if let store {
        CollectionsController(store: store, versions: byName, defaultVersion: configuration.defaultModelVersion,
                              configuration: configuration, uploads: configuration.uploadsFolder, inputs: inputs)
            .add(to: routes)
        try WebPage().add(to: routes)
    }
    routes.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
    routes.get("/ready") { _, _ in
        jsonResponse(["status": "ready", "models": versions.map { ["modelVersion": $0.name, "model": $0.source, "dimension": $0.embedder.dimension] }])
    }
    routes.get("/metrics") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }
    routes.get("/openapi.json") { _, _ in jsonResponse(OpenAPIDocument.make(versions: versions.map(\.name))) }

    allowedMethods.install(routes)
    return router
}

public struct ServerSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

func jsonResponse(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
