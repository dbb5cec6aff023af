import Crypto
import Foundation
import Hummingbird
import NIOCore

/// A Hub on loopback that serves one model folder the way huggingface.co does: the model API with
/// `?blobs=true`, and `resolve/<commit>/<file>` with HTTP ranges. It records what it was asked.
final class FakeHub: @unchecked Sendable {
    let repository: String
    let commit = "0123456789abcdef0123456789abcdef01234567"
    let files: [String: Data]
    var requiredToken: String?
    var corruptFile: String?
    private let lock = NSLock()
    private var _requests: [(path: String, range: String?)] = []

    var requests: [(path: String, range: String?)] {
        lock.lock()
        defer { lock.unlock() }
        return _requests
    }

    init(repository: String, folder: URL) throws {
        self.repository = repository
        var files = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            files[name] = try Data(contentsOf: folder.appendingPathComponent(name).resolvingSymlinksInPath())
        }
        self.files = files
    }

    static func sha256(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    static func gitBlob(_ data: Data) -> String {
        var sha = Insecure.SHA1()
        sha.update(data: Data("blob \(data.count)\0".utf8))
        sha.update(data: data)
        return sha.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private func record(_ request: Request) throws {
        lock.lock()
        _requests.append((request.uri.path, request.headers[.range]))
        lock.unlock()
        if let requiredToken, request.headers[.authorization] != "Bearer \(requiredToken)" {
            throw HTTPError(.unauthorized)
        }
    }

    func application() -> some ApplicationProtocol {
        let router = Router()
        router.get("/api/models/:org/:name/revision/:revision") { request, context -> Response in
            try self.record(request)
            guard "\(context.parameters.get("org") ?? "")/\(context.parameters.get("name") ?? "")" == self.repository else {
                throw HTTPError(.notFound)
            }
            let siblings: [[String: Any]] = self.files.keys.sorted().map { name in
                let data = self.files[name]!
                var sibling: [String: Any] = ["rfilename": name, "size": data.count]
                if name.hasSuffix(".safetensors") {
                    sibling["blobId"] = Self.gitBlob(Data("version https://git-lfs.github.com/spec/v1\n".utf8))
                    sibling["lfs"] = ["sha256": Self.sha256(data), "size": data.count, "pointerSize": 130]
                } else {
                    sibling["blobId"] = Self.gitBlob(data)
                }
                return sibling
            }
            let body = try JSONSerialization.data(withJSONObject: ["id": self.repository, "sha": self.commit, "siblings": siblings])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/:org/:name/resolve/:commit/:file") { request, context -> Response in
            try self.record(request)
            guard let name = context.parameters.get("file"), var data = self.files[name],
                context.parameters.get("commit") == self.commit
            else { throw HTTPError(.notFound) }
            if name == self.corruptFile { data[data.count / 2] ^= 0xFF }
            if let range = request.headers[.range], range.hasPrefix("bytes="), range.hasSuffix("-"),
                let start = Int(range.dropFirst(6).dropLast()), start < data.count
            {
                return Response(
                    status: .partialContent,
                    headers: [.contentRange: "bytes \(start)-\(data.count - 1)/\(data.count)"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data[start...])))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }
}
