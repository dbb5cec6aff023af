import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// Fetches image URLs for `{"url": …}` requests without becoming a way into the server's network:
/// http and https only; every hop's host is resolved here and refused if any address is private,
/// loopback, link-local or otherwise not public (unless allowed); the connection then goes to the
/// checked address, so DNS cannot change its answer in between. Redirects are followed by hand,
/// each one checked the same way; the body is capped while it streams; the whole fetch has a deadline.
public struct URLFetcher: Sendable {
    /// Which resolved addresses may be contacted: the public ones, or all when private ones are allowed.
    var isAllowed: @Sendable (String) -> Bool
    public var timeout: Duration
    public var maximumBytes: Int
    public var maximumRedirects = 5

    public init(allowPrivateAddresses: Bool = false, timeout: Duration = .seconds(10), maximumBytes: Int = 20 * 1024 * 1024) {
        if allowPrivateAddresses {
            isAllowed = { _ in true }
        } else {
            isAllowed = { AddressClass.isPublic($0) }
        }
        self.timeout = timeout
        self.maximumBytes = maximumBytes
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalidURL(String)
        case refusedAddress(host: String)
        case unreachable(String)
        case status(Int)
        case tooLarge(limit: Int)
        case tooManyRedirects

        public var description: String {
            switch self {
            case .invalidURL(let reason): "the image URL is not valid: \(reason)"
            case .refusedAddress(let host): "the image URL points to a private or local address (\(host)), which is not allowed"
            case .unreachable(let reason): "the image URL could not be fetched: \(reason)"
            case .status(let status): "the image URL answered HTTP \(status)"
            case .tooLarge(let limit): "the image at the URL is larger than \(limit) bytes"
            case .tooManyRedirects: "the image URL redirects too many times"
            }
        }
    }

    public func fetch(_ text: String) async throws -> [UInt8] {
        let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout / .nanoseconds(1)))
        var url = try Self.parse(text)
        for _ in 0...maximumRedirects {
            let host = url.host!
            let port = url.port ?? (url.scheme == "https" ? 443 : 80)
            let addresses = try await Self.resolve(host: host, port: port)
            guard let first = addresses.first else { throw Failure.unreachable("\(host) has no address") }
            if !addresses.allSatisfy(isAllowed) { throw Failure.refusedAddress(host: host) }

            var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
            configuration.dnsOverride = [host: first]
            configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
            // A refused connection is the answer at once (AsyncHTTPClient would reconnect for the 5 s connect timeout).
            configuration.connectionPool.retryConnectionEstablishment = false
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            let hop: Hop
            do {
                hop = try await fetchOnce(url, client: client, deadline: deadline)
                try? await client.shutdown()
            } catch {
                try? await client.shutdown()
                throw error
            }
            switch hop {
            case .body(let bytes): return bytes
            case .redirect(let next): url = next
            }
        }
        throw Failure.tooManyRedirects
    }

    private enum Hop {
        case body([UInt8])
        case redirect(URL)
    }

    private func fetchOnce(_ url: URL, client: HTTPClient, deadline: NIODeadline) async throws -> Hop {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.headers.add(name: "User-Agent", value: "loupe")
        request.headers.add(name: "Accept", value: "image/*")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, deadline: deadline)
        } catch {
            throw Failure.unreachable("\(error)")
        }
        if (300..<400).contains(Int(response.status.code)) {
            guard let location = response.headers.first(name: "Location"),
                let next = URL(string: location, relativeTo: url)?.absoluteURL
            else { throw Failure.unreachable("a redirect without a usable Location") }
            return .redirect(try Self.parse(next.absoluteString))
        }
        guard response.status.code == 200 else { throw Failure.status(Int(response.status.code)) }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maximumBytes {
            throw Failure.tooLarge(limit: maximumBytes)
        }
        var bytes = [UInt8]()
        do {
            for try await buffer in response.body {
                guard bytes.count + buffer.readableBytes <= maximumBytes else { throw Failure.tooLarge(limit: maximumBytes) }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure.unreachable("\(error)")
        }
        return .body(bytes)
    }

    static func parse(_ text: String) throws -> URL {
        guard text.count <= 4096, let url = URL(string: text) else { throw Failure.invalidURL("it does not parse") }
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw Failure.invalidURL("only http and https URLs are fetched")
        }
        guard let host = url.host, !host.isEmpty else { throw Failure.invalidURL("it has no host") }
        if url.user != nil || url.password != nil { throw Failure.invalidURL("credentials in URLs are not accepted") }
        return url
    }

    /// getaddrinfo on NIO's blocking-I/O pool: every address the name has.
    static func resolve(host: String, port: Int) async throws -> [String] {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(name, String(port), &hints, &list) == 0, let first = list else {
                throw Failure.unreachable("cannot resolve \(name)")
            }
            defer { freeaddrinfo(list) }
            var addresses = [String]()
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let entry = cursor {
                var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let address = String(cString: buffer)
                    if !addresses.contains(address) { addresses.append(address) }
                }
                cursor = entry.pointee.ai_next
            }
            return addresses
        }
    }
}

/// Which IP addresses count as public internet.
enum AddressClass {
    static func isPublic(_ address: String) -> Bool {
        if let v4 = ipv4(address) { return isPublicV4(v4) }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address.split(separator: "%").first.map(String.init) ?? address, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: v6) { Array($0) }
        if b.allSatisfy({ $0 == 0 }) { return false }                         // ::
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return false }     // ::1
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { // ::ffff:a.b.c.d
            return isPublicV4(UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15]))
        }
        if b[0..<12] == [0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] {          // 64:ff9b::/96 NAT64
            return isPublicV4(UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15]))
        }
        if b[0] & 0xFE == 0xFC { return false }                                 // fc00::/7 unique local
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return false }                 // fe80::/10 link-local
        if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return false }                 // fec0::/10 site-local
        if b[0] == 0xFF { return false }                                        // multicast
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return false }  // documentation
        return true
    }

    static func ipv4(_ address: String) -> UInt32? {
        var v4 = in_addr()
        guard inet_pton(AF_INET, address, &v4) == 1 else { return nil }
        return UInt32(bigEndian: v4.s_addr)
    }

    static func isPublicV4(_ a: UInt32) -> Bool {
        let blocked: [(UInt32, Int)] = [
            (0x0000_0000, 8), (0x0A00_0000, 8), (0x6440_0000, 10), (0x7F00_0000, 8), (0xA9FE_0000, 16),
            (0xAC10_0000, 12), (0xC000_0000, 24), (0xC000_0200, 24), (0xC0A8_0000, 16), (0xC612_0000, 15),
            (0xC633_6400, 24), (0xCB00_7100, 24), (0xE000_0000, 4), (0xF000_0000, 4),
        ]
        return !blocked.contains { network, bits in a >> (32 - bits) == network >> (32 - bits) }
    }
}
