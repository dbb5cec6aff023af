import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Hummingbird's HTTP/1.1 channel with two guards of Loupe's own around it:
/// - a request must arrive (headers and body) within `requestTimeout`, extended by one second for every
///   `minimumRate` bytes received: what Apache's mod_reqtimeout does against clients that send a byte
///   just often enough to beat the idle timeout (slowloris), while slow uploads of real images go through;
/// - a request the HTTP parser refuses (a control byte in a header, a malformed request line) gets an
///   answer in Azure's error shape instead of an empty 400.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let requestTimeout: Duration
    let minimumRate: Int
    let metrics: ServerMetrics

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // The inner setup completes at once, on the channel's event loop, before anything is read.
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let arrival = RequestArrival(timeout: requestTimeout, minimumRate: minimumRate, logger: logger)
            let pipeline = channel.pipeline.syncOperations
            // First: it sees the bytes of headers that are still incomplete.
            try pipeline.addHandler(RequestBytesHandler(arrival: arrival), position: .first)
            // After the HTTP codec: it sees where requests end and answers parser errors.
            let parts = RequestPartsHandler(arrival: arrival, metrics: metrics, logger: logger)
            try pipeline.addHandler(parts, position: .before(try pipeline.handler(type: HTTPConnectionStateHandler.self)))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// One connection's request-arrival clock, shared by its two handlers (both on the channel's event loop).
final class RequestArrival {
    enum State {
        case waiting  // between requests: the idle timeout applies
        case arriving(since: NIODeadline, bytes: Int)
        case handling  // the request has arrived; answering it is the server's time, not the client's
    }

    let timeout: Duration
    let minimumRate: Int
    let logger: Logger
    var state = State.waiting
    var check: Scheduled<Void>?

    init(timeout: Duration, minimumRate: Int, logger: Logger) {
        self.timeout = timeout
        self.minimumRate = max(1, minimumRate)
        self.logger = logger
    }

    func received(_ count: Int, context: ChannelHandlerContext) {
        switch state {
        case .waiting:
            state = .arriving(since: .now(), bytes: count)
            schedule(context: context)
        case .arriving(let since, let bytes):
            state = .arriving(since: since, bytes: bytes + count)
        case .handling:
            break
        }
    }

    func requestArrived() {
        state = .handling
        check?.cancel()
        check = nil
    }

    func responseSent() { if case .handling = state { state = .waiting } }

    /// The request's deadline: the timeout plus a second per `minimumRate` bytes already received.
    private func deadline(since: NIODeadline, bytes: Int) -> NIODeadline {
        since + .nanoseconds(Int64(timeout / .nanoseconds(1))) + .seconds(Int64(bytes / minimumRate))
    }

    private func schedule(context: ChannelHandlerContext) {
        guard case .arriving(let since, let bytes) = state else { return }
        let channel = context.channel
        check = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline(since: since, bytes: bytes)) { [self] in
            guard case .arriving(let since, let bytes) = state else { return }
            if deadline(since: since, bytes: bytes) <= .now() {
                logger.notice("closing a connection whose request arrived too slowly", metadata: ["bytes": "\(bytes)"])
                channel.close(promise: nil)
            } else {
                schedule(context: context)
            }
        }
    }

    func stop() {
        check?.cancel()
        check = nil
    }
}

/// Counts the bytes that arrive for a request, before the HTTP parser.
final class RequestBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let arrival: RequestArrival

    init(arrival: RequestArrival) { self.arrival = arrival }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        arrival.received(unwrapInboundIn(data).readableBytes, context: context)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        arrival.stop()
        context.fireChannelInactive()
    }
}

/// Marks where each request ends and its response ends, and answers a request the parser refused
/// before its head was complete.
final class RequestPartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    let arrival: RequestArrival
    let metrics: ServerMetrics
    let logger: Logger
    private var requestOpen = false

    init(arrival: RequestArrival, metrics: ServerMetrics, logger: Logger) {
        self.arrival = arrival
        self.metrics = metrics
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: requestOpen = true
        case .body: break
        case .end: arrival.requestArrived()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            requestOpen = false
            arrival.responseSent()
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Inside a request the request's own handler sees the error (its body stream ends with it).
        guard let parserError = error as? HTTPParserError, !requestOpen else {
            context.fireErrorCaught(error)
            return
        }
        let refusal = Self.refusal(for: parserError)
        metrics.recordError(code: refusal.innerCode ?? refusal.code)
        metrics.recordRequest(route: "unparsed", status: Int(refusal.status.code), seconds: 0)
        logger.info("refused a request that is not valid HTTP", metadata: ["error": "\(parserError)"])
        var body = ByteBuffer()
        body.writeBytes((try? JSONSerialization.data(withJSONObject: refusal.body, options: [.sortedKeys])) ?? Data())
        let head = HTTPResponse(status: refusal.status, headerFields: [
            .contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes), .connection: "close",
            HTTPField.Name("x-ms-error-code")!: refusal.innerCode ?? refusal.code,
        ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    static func refusal(for error: HTTPParserError) -> AzureError {
        switch error {
        case .headerOverflow:
            AzureError(.init(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "431",
                       message: "The request's headers are too large.")
        default:
            AzureError.invalidRequest("InvalidHTTPRequest", "The request is not valid HTTP/1.1 (\(error)): a header or the request line holds a character HTTP does not allow.")
        }
    }
}
