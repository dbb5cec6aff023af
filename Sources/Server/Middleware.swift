import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Outermost: turns every error into Azure's body (unknown routes included), logs one structured
/// line per request and records metrics.
struct AzureErrorsAndMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let allowedMethods: AllowedMethods<Context>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let route = context.endpointPath ?? "unmatched"
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as AzureError {
            response = try error.response(from: request, context: context)
            metrics.recordError(code: error.innerCode ?? error.code)
        } catch let error as HTTPError where error.status == .notFound {
            if let allow = await allowedMethods.allowed(for: request, context: context) {
                response = try AzureError.methodNotAllowed(request.method, allow: allow).response(from: request, context: context)
                metrics.recordError(code: "405")
            } else {
                response = try AzureError.notFound.response(from: request, context: context)
                metrics.recordError(code: "404")
            }
        } catch let error as HTTPError {
            let azure = AzureError(error.status, code: String(error.status.code), message: error.body ?? error.status.reasonPhrase)
            response = try azure.response(from: request, context: context)
            metrics.recordError(code: azure.code)
        } catch where Self.isClientGone(error) {
            // The client hung up before its request was read: nothing went wrong here, and no one is
            // left to answer. Counted as nginx counts it, 499, and logged below error level.
            context.logger.notice("client closed the connection mid-request", metadata: ["error": "\(error)"])
            response = Response(status: .init(code: 499, reasonPhrase: "Client Closed Request"))
            metrics.recordError(code: "ClientClosedRequest")
        } catch {
            context.logger.error("internal error", metadata: ["error": "\(error)"])
            let azure = AzureError(.internalServerError, code: "InternalServerError", message: "An internal error occurred.")
            response = try azure.response(from: request, context: context)
            metrics.recordError(code: azure.code)
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        metrics.recordRequest(route: context.endpointPath ?? route, status: Int(response.status.code), seconds: seconds)
        context.logger.info("request", metadata: [
            "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
            "ms": "\(String(format: "%.1f", seconds * 1000))",
        ])
        return response
    }
}

extension AzureErrorsAndMetricsMiddleware {
    /// Errors that mean the connection ended under a request: the body stream cut short (the HTTP
    /// parser's end-of-file), a reset socket, or the request's task cancelled because its channel closed.
    static func isClientGone(_ error: any Error) -> Bool {
        switch error {
        case is HTTPParserError, is CancellationError, is IOError: true
        case let channel as ChannelError: [.ioOnClosedChannel, .eof, .outputClosed, .inputClosed, .alreadyClosed].contains(channel)
        default: false
        }
    }
}

/// Checks `Ocp-Apim-Subscription-Key` against the configured keys in constant time. Health, readiness,
/// metrics and the OpenAPI document stay open.
struct SubscriptionKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keyDigests: [[UInt8]]
    /// Open without a key: probes, metrics, the API description, and the page itself (which asks for the key).
    static var openPaths: Set<String> { ["/health", "/ready", "/metrics", "/openapi.json", "/", "/app.js", "/app.css"] }

    init(keys: [String]) { keyDigests = keys.map { Array(SHA256.hash(data: Data($0.utf8))) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if keyDigests.isEmpty || Self.openPaths.contains(request.uri.path) { return try await next(request, context) }
        guard let key = request.headers[.subscriptionKey], matches(key) else { throw AzureError.unauthorized }
        return try await next(request, context)
    }

    /// Compares digests (fixed length) without an early exit, against every key.
    func matches(_ key: String) -> Bool {
        let candidate = Array(SHA256.hash(data: Data(key.utf8)))
        var found = false
        for digest in keyDigests {
            var difference: UInt8 = 0
            for (a, b) in zip(digest, candidate) { difference |= a ^ b }
            found = found || difference == 0
        }
        return found
    }
}

/// A token bucket per subscription key (per client address when keys are off).
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limiter: RateLimiter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if SubscriptionKeyMiddleware<Context>.openPaths.contains(request.uri.path) { return try await next(request, context) }
        let client = request.headers[.subscriptionKey] ?? "anonymous"
        if let wait = limiter.take(client) { throw AzureError.rateLimited(retryAfter: max(1, Int(wait.rounded(.up)))) }
        return try await next(request, context)
    }
}

public final class RateLimiter: @unchecked Sendable {
    let rate: Double
    let burst: Double
    private let lock = NSLock()
    private var buckets: [String: (tokens: Double, updated: ContinuousClock.Instant)] = [:]

    public init(perSecond rate: Double, burst: Int) {
        self.rate = rate
        self.burst = Double(max(1, burst))
    }

    /// nil when the request may go ahead, else the seconds until a token is free.
    func take(_ client: String, now: ContinuousClock.Instant = .now) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        var bucket = buckets[client] ?? (burst, now)
        let elapsed = now - bucket.updated
        bucket.tokens = min(burst, bucket.tokens + rate * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
        bucket.updated = now
        defer { buckets[client] = bucket }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        return (1 - bucket.tokens) / rate
    }
}
