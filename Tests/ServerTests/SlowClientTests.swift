import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A client that sends its body slowly holds only its own request.
@Suite struct SlowClientTests {
    @Test func aSlowUploadDoesNotHoldOtherRequests() async throws {
        try await ServerHarness.withServer { base, client in
            let port = Int(base.split(separator: ":").last!)!
            // A raw connection announces a 1 MB image body and sends 10 bytes of it, then waits.
            let socket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(socket) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(connected == 0)
            let head = "POST /computervision/retrieval:vectorizeImage?api-version=2024-02-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n0123456789"
            _ = head.withCString { Glibc.send(socket, $0, strlen($0), 0) }

            // Meanwhile other clients are answered.
            for _ in 0..<3 {
                let reply = try await client.send(base + "/computervision/retrieval:vectorizeText?api-version=2024-02-01",
                                                headers: ["Content-Type": "application/json"], body: Data(#"{"text": "a blue house"}"#.utf8))
                #expect(reply.status == 200)
            }
            let image = try await client.send(base + "/computervision/retrieval:vectorizeImage?api-version=2024-02-01",
                                            headers: ["Content-Type": "image/png"], body: try ServerHarness.image("tiny_rgb_50x40.png"))
            #expect(image.status == 200)
        }
    }
}
