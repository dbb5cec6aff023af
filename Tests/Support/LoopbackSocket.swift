import Foundation

/// A TCP socket bound to an ephemeral port on 127.0.0.1, for tests that need a port: free a moment ago
/// (close it and the port is unused), or a listener of their own.
public enum LoopbackSocket {
    /// The socket's descriptor and the port the system chose.
    public static func bound() -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port nothing listens on: bound, then released.
    public static func unusedPort() -> Int {
        let (descriptor, port) = bound()
        close(descriptor)
        return port
    }
}
