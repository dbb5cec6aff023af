import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// HTTP itself: methods a path does not answer, requests that are not valid HTTP, and requests that
/// arrive too slowly.
@Suite struct HTTPProtocolTests {
    static let text = "/computervision/retrieval:vectorizeText?api-version=2024-02-01"

    @Test func aKnownPathAskedWithAnotherMethodGets405AndAllow() async throws {
        try await ServerHarness.withServer { base, send in
            let trace = try await send.send(.TRACE, base + "/health")
            #expect(trace.status == 405)
            #expect(trace.headers["allow"] == "GET, HEAD")
            #expect(trace.errorCode == "405")
            let delete = try await send.send(.DELETE, base + Self.text)
            #expect(delete.status == 405)
            #expect(delete.headers["allow"] == "POST")
            let put = try await send.send(.PUT, base + "/openapi.json")
            #expect(put.status == 405 && put.headers["allow"] == "GET, HEAD")
            // A method HTTP's parser does not know at all is not HTTP it can read.
            let invented = try await send.send(.RAW(value: "BREW"), base + "/openapi.json")
            #expect(invented.status == 400 && invented.innerCode == "InvalidHTTPRequest")
            // GET routes answer HEAD; unknown paths stay 404 whatever the method.
            #expect(try await send.send(.HEAD, base + "/health").status == 200)
            #expect(try await send.send(.GET, base + "/nowhere").status == 404)
            #expect(try await send.send(.TRACE, base + "/nowhere").status == 404)
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            #expect(metrics.contains(#"loupe_http_errors_total{code="405"} 3"#), "\(metrics)")
        }
    }

    /// What NIO's parser refuses (a DEL byte in a header value, headers over the limit) gets Azure's error
    /// body, not an empty 400, and the connection is closed.
    @Test func aRequestThatIsNotHTTPGetsAnAzureError() async throws {
        try await ServerHarness.withServer { base, send in
            let port = try #require(URLComponents(string: base)?.port)
            let control = try RawClient.exchange(port: port, Data("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/pl\u{7F}ain\r\n\r\n".utf8))
            #expect(control.status == 400, "\(control.head)")
            #expect(control.json?["error"].flatMap { ($0 as? [String: Any])?["innererror"] as? [String: Any] }?["code"] as? String == "InvalidHTTPRequest")
            #expect(control.head.lowercased().contains("connection: close"))
            #expect(control.closed)

            let huge = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: \(String(repeating: "a", count: 200_000))\r\n\r\n"
            let oversized = try RawClient.exchange(port: port, Data(huge.utf8))
            #expect(oversized.status == 431, "\(oversized.head)")
            #expect(oversized.json?["error"] != nil)

            let badLine = try RawClient.exchange(port: port, Data("GET /he alth\u{01} HTTP/1.1\r\n\r\n".utf8))
            #expect(badLine.status == 400 && badLine.json?["error"] != nil, "\(badLine.head)")
            // The server is unharmed and counted them.
            #expect(try await send.send(.GET, base + "/health").status == 200)
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            #expect(metrics.contains(#"loupe_http_errors_total{code="InvalidHTTPRequest"} 2"#), "\(metrics)")
        }
    }

    /// A client sending one byte of its headers at a time, well inside the idle timeout, is closed once its
    /// request is late; a slow upload that keeps up the minimum rate is answered.
    @Test func requestsThatArriveTooSlowlyAreClosed() async throws {
        try await ServerHarness.withServer(configure: {
            $0.idleTimeout = .seconds(30)
            $0.requestTimeout = .seconds(1)
            $0.minimumRequestRate = 500
        }) { base, send in
            let port = try #require(URLComponents(string: base)?.port)
            let closedAfter = try RawClient.trickle(port: port, head: Data("GET /health HTTP/1.1\r\nX-Slow: ".utf8), every: .milliseconds(200), upTo: 8)
            let seconds = try #require(closedAfter, "the trickling connection was still open after 8 s")
            #expect(seconds >= 0.9 && seconds < 4, "closed after \(seconds) s")

            // 5,000 bytes at 2,000 bytes a second: 2.5 s, over the 1 s timeout but inside 1 s + 5,000 / 500 s.
            let body = Data(#"{"text": "a blue house"#.utf8) + Data(repeating: 0x20, count: 4_974) + Data(#""}"#.utf8)
            let head = "POST \(Self.text) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
            let reply = try RawClient.exchange(port: port, Data(head.utf8) + body, chunk: 500, pause: .milliseconds(250))
            #expect(reply.status == 200, "\(reply.head)")
            #expect(try await send.send(.GET, base + "/health").status == 200)
        }
    }
}

extension RawClient {
    struct Exchange {
        let status: Int
        let head: String
        let body: Data
        let closed: Bool
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    }

    /// Sends `bytes` (in `chunk`-byte pieces with a pause between them, if given) and reads one response.
    static func exchange(port: Int, _ bytes: Data, chunk: Int? = nil, pause: Duration = .zero) throws -> Exchange {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        let size = chunk ?? bytes.count
        var offset = 0
        while offset < bytes.count {
            let piece = bytes[offset..<min(bytes.count, offset + size)]
            let sent = piece.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }  // the server may answer and close before reading everything
            offset += piece.count
            if offset < bytes.count { usleep(UInt32(pause / .microseconds(1))) }
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var closed = false
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 {
                closed = count == 0 || errno == ECONNRESET
                break
            }
            received.append(contentsOf: buffer[0..<count])
            if let end = received.range(of: Data("\r\n\r\n".utf8)), let length = contentLength(received[..<end.lowerBound]),
               received.count >= end.upperBound + length, !String(decoding: received[..<end.lowerBound], as: UTF8.self).lowercased().contains("connection: close") {
                break  // a whole response on a connection that stays open
            }
        }
        let end = received.range(of: Data("\r\n\r\n".utf8))
        let head = String(decoding: end.map { received[..<$0.lowerBound] } ?? received, as: UTF8.self)
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return Exchange(status: status, head: head, body: end.map { Data(received[$0.upperBound...]) } ?? Data(), closed: closed)
    }

    private static func contentLength(_ head: Data) -> Int? {
        String(decoding: head, as: UTF8.self).split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
    }

    /// Sends `head`, then one more byte every `every`: the seconds until the server closed the connection,
    /// or nil if it was still open after `upTo` seconds.
    static func trickle(port: Int, head: Data, every: Duration, upTo seconds: Double) throws -> Double? {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        let start = Date()
        _ = head.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var waitEach = timeval(tv_sec: 0, tv_usec: Int(every / .microseconds(1)))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &waitEach, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 1024)
        while Date().timeIntervalSince(start) < seconds {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) { return Date().timeIntervalSince(start) }
            var byte: UInt8 = 0x61
            if send(descriptor, &byte, 1, Int32(MSG_NOSIGNAL)) < 0 { return Date().timeIntervalSince(start) }
        }
        return nil
    }
}
