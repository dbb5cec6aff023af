import HTTPTypes
import Hummingbird
import Synchronization

/// Adds routes to a router and remembers which methods each path answers, so that a request for a known
/// path with another method gets 405 and an `Allow` header (RFC 9110 §15.5.6) instead of 404.
final class MethodRecordingRouter<Context: RequestContext>: RouterMethods {
    let router: Router<Context>
    private(set) var methodsByPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]

    init(_ router: Router<Context>) { self.router = router }

    @discardableResult
    func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        router.on(path, method: method, responder: responder)
        methodsByPath[path.description, default: (path, [])].methods.insert(method)
        return self
    }

    @discardableResult
    func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}

/// Answers "which methods does this path allow?" with the router's own path matching: a second router
/// holds every recorded path under GET and answers with the path's methods.
final class AllowedMethods<Context: RequestContext>: Sendable {
    private let lookup = Mutex<RouterResponder<Context>?>(nil)

    /// Takes the recorded routes; `GET` routes answer `HEAD` too (the router generates those).
    func install(_ routes: MethodRecordingRouter<Context>) {
        let paths = Router(context: Context.self)
        for (path, methods) in routes.methodsByPath.values {
            var allowed = methods
            if allowed.contains(.get) { allowed.insert(.head) }
            let header = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            paths.get(path) { _, _ in Response(status: .ok, headers: [.allow: header]) }
        }
        let responder = paths.buildResponder()
        lookup.withLock { $0 = responder }
    }

    /// The `Allow` value for the request's path, nil when no route has that path.
    func allowed(for request: Request, context: Context) async -> String? {
        guard let responder = lookup.withLock({ $0 }) else { return nil }
        var head = request.head
        head.method = .get
        let probe = Request(head: head, body: .init(buffer: .init()))
        guard let response = try? await responder.respond(to: probe, context: context), response.status == .ok else { return nil }
        return response.headers[.allow]
    }
}
