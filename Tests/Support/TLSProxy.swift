import Foundation

/// A TLS front for a plain-text server on loopback, as a cluster's TLS endpoint is: `grpc` is nginx
/// (Debian's `nginx-light`) terminating TLS with HTTP/2 and passing the calls on; `postgres` is stunnel
/// (Debian's `stunnel4`) answering PostgreSQL's SSLRequest and then TLS, the way a PostgreSQL server with
/// `ssl=on` does. `scripts/test.sh` installs both. The certificate is self-signed for 127.0.0.1 and
/// localhost; `certificate` is the PEM file to trust.
public final class TLSProxy: @unchecked Sendable {
    public let port: Int
    public let certificate: String
    private let folder: URL
    private let process: Process
    /// nginx takes SIGTERM and ends its workers (SIGKILL would leave them running, holding the port);
    /// stunnel, which does not fork, gets SIGKILL: it inherits the test process's blocked SIGTERM.
    private let stopSignal: Int32

    /// In front of the gRPC server at `upstream` (`host:port`).
    public static func grpc(upstream: String) throws -> TLSProxy {
        try TLSProxy(executable: "/usr/sbin/nginx", stopSignal: SIGTERM) { folder, port, certificate, key in
            // Workers run as the user starting nginx (under root they would be nobody, who cannot write here).
            let configuration = """
                \(getuid() == 0 ? "user root root;" : "")
                worker_processes 1; daemon off; pid \(folder)/nginx.pid; error_log \(folder)/error.log;
                events {}
                http {
                  access_log off; client_body_temp_path \(folder)/body; proxy_temp_path \(folder)/proxy; fastcgi_temp_path \(folder)/fastcgi;
                  uwsgi_temp_path \(folder)/uwsgi; scgi_temp_path \(folder)/scgi; client_max_body_size 0;
                  server {
                    listen 127.0.0.1:\(port) ssl http2;
                    ssl_certificate \(certificate); ssl_certificate_key \(key);
                    location / { grpc_pass grpc://\(upstream); }
                  }
                }
                """
            try configuration.write(toFile: "\(folder)/nginx.conf", atomically: true, encoding: .utf8)
            return ["-p", folder, "-c", "\(folder)/nginx.conf", "-e", "\(folder)/error.log"]
        }
    }

    /// In front of the PostgreSQL server at `upstream` (`host:port`).
    public static func postgres(upstream: String) throws -> TLSProxy {
        try TLSProxy(executable: "/usr/bin/stunnel4", stopSignal: SIGKILL) { folder, port, certificate, key in
            let configuration = """
                foreground = yes
                pid =
                output = \(folder)/error.log
                [postgres]
                client = no
                protocol = pgsql
                accept = 127.0.0.1:\(port)
                connect = \(upstream)
                cert = \(certificate)
                key = \(key)
                """
            try configuration.write(toFile: "\(folder)/stunnel.conf", atomically: true, encoding: .utf8)
            return ["\(folder)/stunnel.conf"]
        }
    }

    /// Makes the certificate, lets `configure` write the proxy's configuration and give its arguments,
    /// starts it, and waits until it accepts connections.
    private init(executable: String, stopSignal: Int32, configure: (_ folder: String, _ port: Int, _ certificate: String, _ key: String) throws -> [String]) throws {
        self.stopSignal = stopSignal
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tls-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        certificate = folder.appendingPathComponent("cert.pem").path
        let key = folder.appendingPathComponent("key.pem").path
        let made = TestPostgres.run("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                                                     "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", certificate])
        guard made.status == 0 else { throw TestPostgres.Failure(description: "openssl could not make a certificate: \(made.stderr)") }
        port = LoopbackSocket.unusedPort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = try configure(folder.path, port, certificate, key)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<250 {
            guard process.isRunning else { break }
            if Self.accepts(port) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let log = (try? String(contentsOf: folder.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
        stop()
        throw TestPostgres.Failure(description: "\(executable) did not start: \(log)")
    }

    deinit { stop() }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, stopSignal)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    private static func accepts(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
