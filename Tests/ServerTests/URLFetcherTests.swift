import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Server

/// URL inputs against a real image server on loopback.
@Suite struct URLFetcherTests {
    static let png = (try? ServerHarness.image("tiny_rgb_50x40.png")) ?? Data()

    static func withImageServer(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let router = Router()
        router.get("/image.png") { _, _ in Response(status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: png))) }
        router.get("/redirect/:target") { request, context -> Response in
            let target = context.parameters.get("target") ?? ""
            let port = request.uri.queryParameters["port"].map(String.init) ?? ""
            let location = target == "same" ? "/image.png" : "http://\(target):\(port)/image.png"
            return Response(status: .found, headers: [.location: location])
        }
        router.get("/loop") { _, _ in Response(status: .found, headers: [.location: "/loop"]) }
        router.get("/slow") { _, _ -> Response in
            try await Task.sleep(for: .milliseconds(1500))
            return Response(status: .ok)
        }
        router.get("/missing") { _, _ -> Response in Response(status: .notFound) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(client.port!) }
    }

    /// Allows exactly 127.0.0.1, as if it were a public address: redirects elsewhere must be re-checked.
    static func onlyThisHost() -> URLFetcher {
        var fetcher = URLFetcher()
        fetcher.isAllowed = { $0 == "127.0.0.1" }
        return fetcher
    }

    static func failure(_ fetcher: URLFetcher, _ url: String) async -> URLFetcher.Failure? {
        do {
            _ = try await fetcher.fetch(url)
            return nil
        } catch {
            return error as? URLFetcher.Failure
        }
    }

    @Test func fetchesAnImageAndFollowsCheckedRedirects() async throws {
        try await Self.withImageServer { port in
            let direct = try await Self.onlyThisHost().fetch("http://127.0.0.1:\(port)/image.png")
            #expect(direct == Array(Self.png))
            let redirected = try await Self.onlyThisHost().fetch("http://127.0.0.1:\(port)/redirect/same")
            #expect(redirected == Array(Self.png))
        }
    }

    @Test func loopbackIsRefusedByDefaultIncludingByNameAndAfterARedirect() async throws {
        try await Self.withImageServer { port in
            let strict = URLFetcher()
            #expect(await Self.failure(strict, "http://127.0.0.1:\(port)/image.png") == .refusedAddress(host: "127.0.0.1"))
            #expect(await Self.failure(strict, "http://localhost:\(port)/image.png") == .refusedAddress(host: "localhost"))
            // The first hop is allowed; the redirect's target is not.
            #expect(await Self.failure(Self.onlyThisHost(), "http://127.0.0.1:\(port)/redirect/127.0.0.2?port=\(port)")
                == .refusedAddress(host: "127.0.0.2"))
            // Allowed when the operator says so.
            let allowed = try await URLFetcher(allowPrivateAddresses: true).fetch("http://localhost:\(port)/image.png")
            #expect(allowed == Array(Self.png))
        }
    }

    @Test func sizeTimeoutStatusAndLoopsAreBounded() async throws {
        try await Self.withImageServer { port in
            var small = Self.onlyThisHost()
            small.maximumBytes = 100
            #expect(await Self.failure(small, "http://127.0.0.1:\(port)/image.png") == .tooLarge(limit: 100))
            var quick = Self.onlyThisHost()
            quick.timeout = .milliseconds(300)
            // Without the deadline this URL answers 200 after 1.5 s; with it, the fetch fails.
            if case .unreachable = await Self.failure(quick, "http://127.0.0.1:\(port)/slow") {} else { Issue.record("a slow URL did not time out") }
            #expect(await Self.failure(Self.onlyThisHost(), "http://127.0.0.1:\(port)/missing") == .status(404))
            #expect(await Self.failure(Self.onlyThisHost(), "http://127.0.0.1:\(port)/loop") == .tooManyRedirects)
        }
    }

    @Test(arguments: ["file:///etc/passwd", "gopher://x", "http://", "http://user:pass@example.com/a.png", "javascript:alert(1)", ""])
    func onlyPlainHTTPURLsAreAccepted(_ url: String) async {
        if case .invalidURL = await Self.failure(URLFetcher(), url) {} else { Issue.record("\(url) was not refused as invalid") }
    }

    @Test(arguments: [
        ("8.8.8.8", true), ("1.1.1.1", true), ("2606:4700:4700::1111", true),
        ("127.0.0.1", false), ("10.1.2.3", false), ("172.16.0.1", false), ("172.31.255.255", false), ("192.168.1.1", false),
        ("169.254.169.254", false), ("100.64.0.1", false), ("0.0.0.0", false), ("224.0.0.1", false), ("255.255.255.255", false),
        ("::1", false), ("::", false), ("fe80::1", false), ("fd00::1", false), ("::ffff:127.0.0.1", false), ("::ffff:8.8.8.8", true),
        ("64:ff9b::a9fe:a9fe", false), ("ff02::1", false), ("2001:db8::1", false), ("not an address", false),
    ])
    func addressClasses(_ address: String, _ isPublic: Bool) {
        #expect(AddressClass.isPublic(address) == isPublic)
    }
}
