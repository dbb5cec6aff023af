import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A Hugging Face Hub on loopback that answers as huggingface.co does (huggingface_hub's `hf_api.py` and
/// `file_download.py` read these shapes): the model API (`revision/REV?blobs=true` with `lfs` entries,
/// `discussions?p=N` pages, `commits/REV`), `resolve/REV/FILE` answered with a 307 to
/// `/api/resolve-cache/…` for small files and a 302 to a signed URL on a second host (127.0.0.2) for LFS
/// files, errors with `X-Error-Code`. The storage host refuses a request that carries an
/// `Authorization` header, as signed storage URLs do, and honours `Range`. Everything asked is recorded.
public final class FakeHub: @unchecked Sendable {
    public struct Commit: Sendable {
        public var files: [String: Data]
        public var parent: String?
        public var title: String
        public var author: String

        public init(files: [String: Data], parent: String? = nil, title: String = "Upload", author: String = "owner") {
            self.files = files
            self.parent = parent
            self.title = title
            self.author = author
        }
    }

    public struct Discussion: Sendable {
        public var num: Int
        public var title: String
        public var author: String
        public var status = "open"
        public var isPullRequest = true

        public init(num: Int, title: String, author: String, status: String = "open", isPullRequest: Bool = true) {
            (self.num, self.title, self.author, self.status, self.isPullRequest) = (num, title, author, status, isPullRequest)
        }
    }

    public struct Repository: Sendable {
        /// Branches, tags and `refs/pr/N` → commit id.
        public var refs: [String: String]
        public var commits: [String: Commit]
        public var discussions: [Discussion]
        /// Files need a token of an account that accepted the conditions (the listing stays public).
        public var gated = false

        public init(refs: [String: String], commits: [String: Commit], discussions: [Discussion] = [], gated: Bool = false) {
            (self.refs, self.commits, self.discussions, self.gated) = (refs, commits, discussions, gated)
        }

        /// One commit on `main` holding `files`.
        public init(files: [String: Data], commit: String = FakeHub.commitID("main")) {
            self.init(refs: ["main": commit], commits: [commit: Commit(files: files)])
        }
    }

    public struct Request: Sendable {
        public let storage: Bool
        public let path: String
        public let range: String?
        public let authorization: String?
    }

    public var repositories: [String: Repository]
    /// A private repository's token: without it every route answers as for a missing repository.
    public var requiredToken: String?
    /// The token of the account that accepted a gated repository's conditions.
    public var gatedAccessToken = "hf_accepted"
    public var corruptFile: String?
    /// The Hub pages discussions by 50; tests use fewer to see every page read.
    public var discussionsPerPage = 50
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var storageEndpoint = ""

    public init(repositories: [String: Repository]) { self.repositories = repositories }

    public var requests: [Request] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    /// A commit id made from a name, so tests can say which commit they expect.
    public static func commitID(_ name: String) -> String { String(sha1(Data(name.utf8)).prefix(40)) }

    public static func sha256(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    public static func gitBlob(_ data: Data) -> String { sha1(Data("blob \(data.count)\0".utf8) + data) }

    static func sha1(_ data: Data) -> String { hex(Insecure.SHA1.hash(data: data)) }

    static func hex<D: Digest>(_ digest: D) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    /// Stored with git LFS, as the default `.gitattributes` of a Hub repository says.
    static func isLFS(_ name: String) -> Bool {
        ["bin", "safetensors", "msgpack", "h5", "onnx", "pt", "pth", "ckpt", "model"].contains((name as NSString).pathExtension)
    }

    /// Runs the Hub and its storage host on free loopback ports while `body` runs with the Hub's address.
    public func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let storagePort = AsyncStream<Int>.makeStream()
            let hubPort = AsyncStream<Int>.makeStream()
            let storageApp = Application(router: storageRouter(), configuration: .init(address: .hostname("127.0.0.2", port: 0)),
                                         onServerRunning: { storagePort.continuation.yield($0.localAddress?.port ?? 0) })
            group.addTask { try await storageApp.runService(gracefulShutdownSignals: []) }
            var ports = storagePort.stream.makeAsyncIterator()
            guard let port = await ports.next() else { return }
            lock.withLock { storageEndpoint = "http://127.0.0.2:\(port)" }
            let hubApp = Application(router: hubRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                     onServerRunning: { hubPort.continuation.yield($0.localAddress?.port ?? 0) })
            group.addTask { try await hubApp.runService(gracefulShutdownSignals: []) }
            var hubPorts = hubPort.stream.makeAsyncIterator()
            guard let hub = await hubPorts.next() else { return }
            defer { group.cancelAll() }
            try await body("http://127.0.0.1:\(hub)")
        }
    }

    // MARK: - The Hub

    private func hubRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/**") { request, _ in try self.answer(request) }
        return router
    }

    private func answer(_ request: Hummingbird.Request) throws -> Response {
        record(request, storage: false)
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            .map { $0.removingPercentEncoding ?? String($0) }
        switch segments.first {
        case "api" where segments.count >= 5 && segments[1] == "models":
            let repository = "\(segments[2])/\(segments[3])"
            let repo = try visible(repository, request)
            switch segments[4] {
            case "revision" where segments.count == 6: return try listing(repository, repo, revision: segments[5])
            case "discussions" where segments.count == 5:
                return discussions(repository, repo, page: Int(request.uri.queryParameters["p"].map(String.init) ?? "0") ?? 0)
            case "commits" where segments.count == 6: return try commits(repo, revision: segments[5])
            default: throw error(.notFound, nil)
            }
        case "api" where segments.count >= 6 && segments[1] == "resolve-cache" && segments[2] == "models":
            let repository = "\(segments[3])/\(segments[4])"
            let repo = try visible(repository, request)
            let commit = segments[5]
            let name = segments.dropFirst(6).joined(separator: "/")
            guard let data = repo.commits[commit]?.files[name] else { throw error(.notFound, "EntryNotFound") }
            return serve(served(name, data), range: request.headers[.range])
        case let org? where segments.count >= 5 && segments[2] == "resolve":
            let repository = "\(org)/\(segments[1])"
            let repo = try visible(repository, request)
            guard let commit = repo.refs[segments[3]] ?? (repo.commits[segments[3]] != nil ? segments[3] : nil) else {
                throw error(.notFound, "RevisionNotFound")
            }
            let name = segments.dropFirst(4).joined(separator: "/")
            guard let data = repo.commits[commit]?.files[name] else { throw error(.notFound, "EntryNotFound") }
            if repo.gated, request.headers[.authorization] != "Bearer \(gatedAccessToken)" {
                throw error(request.headers[.authorization] == nil ? .unauthorized : .forbidden, "GatedRepo")
            }
            var headers: HTTPFields = [HTTPField.Name("X-Repo-Commit")!: commit]
            if Self.isLFS(name) {
                let sha = Self.sha256(data)
                headers[HTTPField.Name("X-Linked-Etag")!] = "\"\(sha)\""
                headers[HTTPField.Name("X-Linked-Size")!] = "\(data.count)"
                headers[.location] = lock.withLock { storageEndpoint } + "/xet-bridge/\(sha)?X-Amz-Expires=3600&X-Amz-Signature=\(Self.sha1(Data(sha.utf8)))"
                return Response(status: .found, headers: headers)
            }
            headers[.eTag] = "\"\(Self.gitBlob(data))\""
            headers[.location] = "/api/resolve-cache/models/\(repository)/\(commit)/\(name)"
            return Response(status: .temporaryRedirect, headers: headers)
        default:
            throw error(.notFound, nil)
        }
    }

    /// A repository the request may see; the Hub answers 401 `RepoNotFound` for a missing or private one.
    private func visible(_ name: String, _ request: Hummingbird.Request) throws -> Repository {
        let authorization = request.headers[.authorization]
        if let requiredToken, authorization != "Bearer \(requiredToken)" {
            throw error(.unauthorized, authorization == nil ? "RepoNotFound" : nil, message: authorization == nil ? "Repository not found" : "Invalid credentials in Authorization header")
        }
        guard let repository = lock.withLock({ repositories[name] }) else {
            throw error(authorization == nil ? .unauthorized : .notFound, "RepoNotFound", message: "Repository not found")
        }
        return repository
    }

    private func listing(_ name: String, _ repo: Repository, revision: String) throws -> Response {
        guard let commit = repo.refs[revision] ?? (repo.commits[revision] != nil ? revision : nil), let files = repo.commits[commit]?.files else {
            throw error(.notFound, "RevisionNotFound", message: "Invalid rev id: \(revision)")
        }
        let siblings: [[String: Any]] = files.keys.sorted().map { file in
            let data = files[file]!
            guard Self.isLFS(file) else { return ["rfilename": file, "size": data.count, "blobId": Self.gitBlob(data)] }
            let pointer = Data("version https://git-lfs.github.com/spec/v1\noid sha256:\(Self.sha256(data))\nsize \(data.count)\n".utf8)
            return ["rfilename": file, "size": data.count, "blobId": Self.gitBlob(pointer),
                    "lfs": ["sha256": Self.sha256(data), "size": data.count, "pointerSize": pointer.count]]
        }
        return json(["_id": Self.sha1(Data(name.utf8)).prefix(24), "id": name, "modelId": name, "sha": commit, "private": requiredToken != nil,
                     "gated": repo.gated ? "auto" : false, "disabled": false, "siblings": siblings, "lastModified": "2026-05-01T10:00:00.000Z"])
    }

    private func discussions(_ name: String, _ repo: Repository, page: Int) -> Response {
        let newestFirst = repo.discussions.sorted { $0.num > $1.num }
        let start = max(0, page) * discussionsPerPage
        let items = newestFirst.dropFirst(start).prefix(discussionsPerPage).map { discussion -> [String: Any] in
            ["num": discussion.num, "title": discussion.title, "status": discussion.status, "isPullRequest": discussion.isPullRequest,
             "createdAt": "2026-05-01T10:00:00.000Z", "pinned": false, "numComments": 1, "topReactions": [] as [Any],
             "author": ["name": discussion.author, "type": "user", "isPro": false, "fullname": discussion.author],
             "repo": ["name": name, "type": "model"]]
        }
        return json(["discussions": items, "count": newestFirst.count, "start": start,
                     "numClosedDiscussions": newestFirst.filter { $0.status != "open" }.count])
    }

    /// The commits reachable from a revision, newest first.
    private func commits(_ repo: Repository, revision: String) throws -> Response {
        guard var commit = repo.refs[revision] ?? (repo.commits[revision] != nil ? revision : nil) else {
            throw error(.notFound, "RevisionNotFound", message: "Invalid rev id: \(revision)")
        }
        var list = [[String: Any]]()
        while let entry = repo.commits[commit], list.count < 100 {
            list.append(["id": commit, "title": entry.title, "message": "", "date": "2026-05-01T10:00:00.000Z",
                         "authors": [["user": entry.author, "avatar": "https://cdn-avatars.huggingface.co/\(entry.author).png"]]])
            guard let parent = entry.parent else { break }
            commit = parent
        }
        return json(list)
    }

    // MARK: - Signed storage

    private func storageRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/xet-bridge/:sha") { request, context -> Response in
            self.record(request, storage: true)
            // A presigned URL carries its own authorisation; S3 refuses a second one.
            if request.headers[.authorization] != nil {
                return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string:
                    "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>")))
            }
            let sha = context.parameters.get("sha") ?? ""
            guard request.uri.queryParameters["X-Amz-Signature"].map(String.init) == Self.sha1(Data(sha.utf8)),
                let (name, data) = self.file(withSHA256: sha)
            else { return Response(status: .forbidden) }
            return self.serve(self.served(name, data), range: request.headers[.range])
        }
        return router
    }

    private func file(withSHA256 sha: String) -> (String, Data)? {
        lock.withLock {
            for repository in repositories.values {
                for commit in repository.commits.values {
                    if let (name, data) = commit.files.first(where: { Self.isLFS($0.key) && Self.sha256($0.value) == sha }) { return (name, data) }
                }
            }
            return nil
        }
    }

    // MARK: - Answers

    private func served(_ name: String, _ data: Data) -> Data {
        var data = data
        if name == corruptFile, !data.isEmpty { data[data.count / 2] ^= 0xFF }
        return data
    }

    private func serve(_ data: Data, range: String?) -> Response {
        if let range, range.hasPrefix("bytes="), range.hasSuffix("-"), let start = Int(range.dropFirst(6).dropLast()), start < data.count {
            return Response(status: .partialContent, headers: [.contentRange: "bytes \(start)-\(data.count - 1)/\(data.count)"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data[start...])))
        }
        return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func json(_ object: Any) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private func error(_ status: HTTPResponse.Status, _ code: String?, message: String? = nil) -> HTTPResponseError {
        var headers: HTTPFields = [:]
        if let code { headers[HTTPField.Name("X-Error-Code")!] = code }
        if let message { headers[HTTPField.Name("X-Error-Message")!] = message }
        return HubAnswer(status: status, headers: headers, message: message ?? code ?? "")
    }

    private func record(_ request: Hummingbird.Request, storage: Bool) {
        lock.withLock {
            recorded.append(Request(storage: storage, path: request.uri.path, range: request.headers[.range],
                                    authorization: request.headers[.authorization]))
        }
    }
}

/// An error answer with the Hub's headers and a JSON body.
struct HubAnswer: HTTPResponseError {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let message: String

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
