import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Progress of one file's download, reported as bytes arrive.
public struct DownloadProgress: Sendable {
    public let file: String
    public let receivedBytes: Int64
    public let totalBytes: Int64
}

/// Finds a model in the cache or downloads it from the Hub into the cache, the way `huggingface_hub`
/// does: files land in `blobs/` under their hash, snapshots link to them, refs name the commit.
/// Interrupted downloads resume from `blobs/<hash>.incomplete`; every file is checked against the
/// size and hash the Hub reports before it is used.
public struct HubDownloader: Sendable {
    public let environment: HubEnvironment
    /// How long to keep trying to connect (the HTTP client retries refused connections until then).
    public let connectTimeout: Duration
    public var cache: HubCache { HubCache(root: environment.cacheRoot) }

    public init(environment: HubEnvironment, connectTimeout: Duration = .seconds(15)) {
        self.environment = environment
        self.connectTimeout = connectTimeout
    }

    /// A folder with a complete model: from the cache when it is there, else downloaded.
    public func resolve(_ id: HubModelID, progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> URL {
        if let folder = cache.completeSnapshot(for: id) { return folder }
        if environment.offline { throw HubError.notCached(model: id.description, offline: true) }
        return try await download(id, progress: progress)
    }

    /// Downloads whatever of `id` the cache lacks; returns the snapshot folder.
    public func download(_ id: HubModelID, progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> URL {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
            redirectConfiguration: .disallow,  // followed by hand: the token must not reach storage hosts
            timeout: .init(connect: .milliseconds(Int64(connectTimeout / .milliseconds(1))), read: .seconds(60))))
        do {
            let folder = try await download(id, client: client, progress: progress)
            try await client.shutdown()
            return folder
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// What the Hub's model API says about one revision.
    struct Listing: Decodable {
        struct Sibling: Decodable {
            struct LFS: Decodable { let sha256: String; let size: Int64 }
            let rfilename: String
            let size: Int64?
            let blobId: String?
            let lfs: LFS?
        }
        let sha: String
        let siblings: [Sibling]

        var files: Set<String> { Set(siblings.map(\.rfilename)) }
    }

    private func download(_ id: HubModelID, client: HTTPClient, progress: @escaping @Sendable (DownloadProgress) -> Void) async throws -> URL {
        let requested = try await listing(id, revision: id.revision, client: client)
        var source = requested
        var pullRequest: String?
        // Without safetensors weights, the bot's conversion pull request is used, as transformers does.
        if ModelFiles.weightsFile(in: requested.files, safetensorsOnly: true) == nil,
            let conversion = await conversionPullRequest(id, basedOn: requested.sha, client: client),
            let converted = try? await listing(id, revision: conversion.head, client: client),
            ModelFiles.weightsFile(in: converted.files, safetensorsOnly: true) != nil
        {
            source = converted
            pullRequest = conversion.ref
        }
        let snapshot = try await fetchModel(source, id: id, client: client, progress: progress)
        // Refs and the record last: a cache never names a snapshot that is not whole.
        if !id.revisionIsCommit { try writeAtomically(Data(requested.sha.utf8), to: cache.repositoryFolder(id).appendingPathComponent("refs/\(id.revision)")) }
        if let pullRequest {
            try writeAtomically(Data(source.sha.utf8), to: cache.repositoryFolder(id).appendingPathComponent("refs/\(pullRequest)"))
            try writeAtomically(Data(pullRequest.utf8), to: cache.conversionRecord(of: requested.sha, in: id))
        }
        return snapshot
    }

    /// `GET /api/models/REPO/revision/REV?blobs=true`: the commit and its files with their sizes and hashes.
    private func listing(_ id: HubModelID, revision: String, client: HTTPClient) async throws -> Listing {
        let data = try await fetch("\(environment.endpoint)/api/models/\(id.repository)/revision/\(Self.pathComponent(revision))?blobs=true",
                                   id: id, file: "the model listing", client: client)
        guard let listing = try? JSONDecoder().decode(Listing.self, from: data) else {
            throw HubError.notAModel(model: id.description, reason: "the Hub's listing is not readable")
        }
        guard HubModelID.isCommit(listing.sha) else {
            throw HubError.notAModel(model: id.description, reason: "the listing has no commit id")
        }
        return listing
    }

    /// Downloads what the model loader needs of one commit's listing into its snapshot folder.
    private func fetchModel(_ listing: Listing, id: HubModelID, client: HTTPClient,
                            progress: @escaping @Sendable (DownloadProgress) -> Void) async throws -> URL {
        let siblings = Dictionary(listing.siblings.map { ($0.rfilename, $0) }, uniquingKeysWith: { first, _ in first })
        let snapshot = cache.snapshotFolder(id, commit: listing.sha)
        let blobs = cache.repositoryFolder(id).appendingPathComponent("blobs")
        try createFolder(snapshot)
        try createFolder(blobs)

        func fetchFile(_ name: String) async throws -> URL {
            guard let sibling = siblings[name] else { throw HubError.notAModel(model: id.description, reason: "\(name) is missing") }
            return try await fetchIntoCache(sibling, id: id, commit: listing.sha, blobs: blobs, snapshot: snapshot,
                                            client: client, progress: progress)
        }

        var indexes = [String: URL]()
        if let weights = ModelFiles.weightsFile(in: listing.files), ModelFiles.isIndex(weights) {
            indexes[weights] = try await fetchFile(weights)
        }
        let selection: [String]
        do {
            selection = try ModelFiles.selection(from: listing.files) { index in
                guard let file = indexes[index] else { return [] }
                return try ModelFiles.shardNames(indexAt: file)
            }
        } catch ModelFiles.ModelFilesError.missing(let what) {
            throw HubError.notAModel(model: id.description, reason: "the repository has no \(what)")
        }
        for name in selection where indexes[name] == nil { _ = try await fetchFile(name) }
        return snapshot
    }

    // MARK: - Safetensors conversion pull requests

    static let conversionTitle = "Adding `safetensors` variant of this model"
    static let conversionAuthor = "SFconvertbot"

    /// The open pull request in which the Hub's conversion bot added safetensors weights to `commit`:
    /// its discussions are read page by page (`GET /api/models/REPO/discussions?p=N`), and a pull request
    /// of that title counts only when the bot opened it and its parent commit
    /// (`GET /api/models/REPO/commits/refs%2Fpr%2FN`, second entry) is `commit`. A failure to read them
    /// means there is none: the revision's own PyTorch weights are loaded instead.
    private func conversionPullRequest(_ id: HubModelID, basedOn commit: String, client: HTTPClient) async -> (ref: String, head: String)? {
        struct Page: Decodable {
            struct Discussion: Decodable {
                struct Author: Decodable { let name: String }
                let num: Int
                let title: String
                let status: String
                let isPullRequest: Bool
                let author: Author?
            }
            let discussions: [Discussion]
            let count: Int
            let start: Int
        }
        struct Commit: Decodable { let id: String }
        let api = "\(environment.endpoint)/api/models/\(id.repository)"
        for page in 0..<100 {
            guard let data = try? await fetch("\(api)/discussions?p=\(page)", id: id, file: "the discussions", client: client),
                let listed = try? JSONDecoder().decode(Page.self, from: data)
            else { return nil }
            for discussion in listed.discussions
            where discussion.isPullRequest && discussion.status == "open" && discussion.title == Self.conversionTitle
                && discussion.author?.name == Self.conversionAuthor
            {
                let ref = "refs/pr/\(discussion.num)"
                guard let data = try? await fetch("\(api)/commits/\(Self.pathComponent(ref))", id: id, file: "the commits of \(ref)", client: client),
                    let commits = try? JSONDecoder().decode([Commit].self, from: data),
                    commits.count >= 2, commits[1].id == commit, HubModelID.isCommit(commits[0].id)
                else { continue }
                return (ref, commits[0].id)
            }
            guard !listed.discussions.isEmpty, listed.start + listed.discussions.count < listed.count else { return nil }
        }
        return nil
    }

    /// A revision as one path segment: `refs/pr/66` → `refs%2Fpr%2F66`, as huggingface_hub quotes it.
    static func pathComponent(_ revision: String) -> String {
        revision.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? revision
    }

    /// One file: reuse the blob if it is already whole, else (resume and) download, verify, link.
    private func fetchIntoCache(
        _ sibling: Listing.Sibling, id: HubModelID, commit: String, blobs: URL, snapshot: URL,
        client: HTTPClient, progress: @escaping @Sendable (DownloadProgress) -> Void
    ) async throws -> URL {
        let name = sibling.rfilename
        guard let blobName = sibling.lfs?.sha256 ?? sibling.blobId, blobName.allSatisfy(\.isHexDigit), !blobName.isEmpty,
            let expectedSize = sibling.lfs?.size ?? sibling.size
        else { throw HubError.notAModel(model: id.description, reason: "the listing gives no hash and size for \(name)") }
        let blob = blobs.appendingPathComponent(blobName)
        let link = snapshot.appendingPathComponent(name)
        if fileSize(blob) != expectedSize {
            let url = "\(environment.endpoint)/\(id.repository)/resolve/\(commit)/\(name)"
            try await stream(url, into: blob, expectedSize: expectedSize, id: id, file: name, client: client, progress: progress)
            try verify(blob.appendingPathExtension("incomplete"), file: name, size: expectedSize,
                       sha256: sibling.lfs?.sha256, gitBlob: sibling.lfs == nil ? sibling.blobId : nil)
            try replace(blob, with: blob.appendingPathExtension("incomplete"))
        }
        try? FileManager.default.removeItem(at: link)
        let depth = name.split(separator: "/").count - 1
        try createFolder(link.deletingLastPathComponent())
        do {
            try FileManager.default.createSymbolicLink(
                atPath: link.path, withDestinationPath: String(repeating: "../", count: depth + 2) + "blobs/\(blobName)")
        } catch {
            throw HubError.filesystem("cannot link \(link.path): \(error.localizedDescription)")
        }
        return link
    }

    /// A request to `url`; the token goes only to the Hub itself, never to another host.
    private func request(_ url: String, range from: Int64 = 0) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "loupe/0.1; hf_hub-compatible")
        if let token = environment.token, Self.origin(url) == Self.origin(environment.endpoint) {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if from > 0 { request.headers.add(name: "Range", value: "bytes=\(from)-") }
        return request
    }

    /// Scheme, host and port: what decides whether a redirect leaves the Hub.
    static func origin(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), let host = components.host?.lowercased() else {
            return nil
        }
        return "\(scheme)://\(host):\(components.port ?? (scheme == "https" ? 443 : 80))"
    }

    private func fetch(_ url: String, id: HubModelID, file: String, client: HTTPClient) async throws -> Data {
        let response = try await execute(url, id: id, file: file, client: client)
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return Data(body.readableBytesView)
    }

    /// GET `url`, following redirects by hand, as huggingface_hub does: the Hub answers a file with a
    /// relative redirect to its own resolve cache (307) or an absolute one to signed storage on another
    /// host (302), which refuses a request that carries a token. Fails unless the last answer is 200 or 206.
    private func execute(_ url: String, range from: Int64 = 0, id: HubModelID, file: String, client: HTTPClient) async throws -> HTTPClientResponse {
        var current = url
        for _ in 0..<10 {
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request(current, range: from), timeout: .minutes(10))
            } catch {
                throw HubError.unreachable(model: id.description, reason: "\(error)")
            }
            guard [301, 302, 303, 307, 308].contains(response.status.code) else {
                try check(response, id: id, file: file)
                return response
            }
            guard let location = response.headers.first(name: "Location"),
                let next = URL(string: location, relativeTo: URL(string: current))?.absoluteURL,
                ["http", "https"].contains(next.scheme?.lowercased() ?? "")
            else { throw HubError.http(model: id.description, file: file, status: Int(response.status.code)) }
            _ = try? await response.body.collect(upTo: 1 << 20)
            current = next.absoluteString
        }
        throw HubError.unreachable(model: id.description, reason: "more than 10 redirects for \(file)")
    }

    /// The Hub says what went wrong in `X-Error-Code`; a 401 also stands for a repository that does not
    /// exist or is private, so that private names do not leak.
    private func check(_ response: HTTPClientResponse, id: HubModelID, file: String) throws {
        let status = Int(response.status.code)
        switch (status, response.headers.first(name: "X-Error-Code")) {
        case (200, _), (206, _): return
        case (_, "GatedRepo"): throw HubError.gated(model: id.description)
        case (_, "RepoNotFound"): throw HubError.repositoryNotFound(model: id.description)
        case (_, "RevisionNotFound"): throw HubError.revisionNotFound(model: id.description)
        case (401, _), (403, _): throw HubError.unauthorized(model: id.description)
        default: throw HubError.http(model: id.description, file: file, status: status)
        }
    }

    /// Appends to `<blob>.incomplete`, asking only for the bytes it lacks.
    private func stream(
        _ url: String, into blob: URL, expectedSize: Int64, id: HubModelID, file: String, client: HTTPClient,
        progress: @escaping @Sendable (DownloadProgress) -> Void
    ) async throws {
        let partial = blob.appendingPathExtension("incomplete")
        var have = fileSize(partial) ?? 0
        if have > expectedSize {
            try? FileManager.default.removeItem(at: partial)
            have = 0
        }
        if have == expectedSize { return }
        if have == 0 { _ = FileManager.default.createFile(atPath: partial.path, contents: nil) }
        let response = try await execute(url, range: have, id: id, file: file, client: client)
        guard let handle = FileHandle(forWritingAtPath: partial.path) else {
            throw HubError.filesystem("cannot open \(partial.path)")
        }
        defer { try? handle.close() }
        // A server that ignores Range sends the whole file (200): start over.
        if response.status.code == 200 {
            try handle.truncate(atOffset: 0)
            have = 0
        } else {
            try handle.seekToEnd()
        }
        progress(DownloadProgress(file: file, receivedBytes: have, totalBytes: expectedSize))
        do {
            for try await buffer in response.body {
                have += Int64(buffer.readableBytes)
                guard have <= expectedSize else {
                    throw HubError.integrity(file: file, reason: "more than the \(expectedSize) bytes the Hub announced")
                }
                try handle.write(contentsOf: Data(buffer.readableBytesView))
                progress(DownloadProgress(file: file, receivedBytes: have, totalBytes: expectedSize))
            }
        } catch let error as HubError {
            throw error
        } catch {
            // What arrived stays in the .incomplete file; the next run continues from there.
            throw HubError.unreachable(model: id.description, reason: "the download of \(file) stopped at \(have) bytes: \(error)")
        }
    }

    private func verify(_ url: URL, file: String, size: Int64, sha256: String?, gitBlob: String?) throws {
        let actualSize = fileSize(url) ?? -1
        guard actualSize == size else {
            throw HubError.integrity(file: file, reason: "\(actualSize) bytes, the Hub announced \(size)")
        }
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw HubError.filesystem("cannot read \(url.path)") }
        defer { try? handle.close() }
        var sha = SHA256()
        var git = Insecure.SHA1()
        git.update(data: Data("blob \(size)\0".utf8))  // git hashes a header, then the content
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            if sha256 != nil { sha.update(data: chunk) }
            if gitBlob != nil { git.update(data: chunk) }
        }
        if let sha256, Self.hex(sha.finalize()) != sha256.lowercased() {
            try? FileManager.default.removeItem(at: url)
            throw HubError.integrity(file: file, reason: "SHA-256 differs from the Hub's \(sha256)")
        }
        if let gitBlob, Self.hex(git.finalize()) != gitBlob.lowercased() {
            try? FileManager.default.removeItem(at: url)
            throw HubError.integrity(file: file, reason: "git blob hash differs from the Hub's \(gitBlob)")
        }
    }

    static func hex<D: Digest>(_ digest: D) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    private func fileSize(_ url: URL) -> Int64? {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.int64Value
    }

    private func createFolder(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw HubError.filesystem("cannot create \(url.path): \(error.localizedDescription)")
        }
    }

    private func replace(_ target: URL, with source: URL) throws {
        guard rename(source.path, target.path) == 0 else { throw HubError.filesystem("cannot move \(source.path) into place") }
    }

    private func writeAtomically(_ data: Data, to url: URL) throws {
        try createFolder(url.deletingLastPathComponent())
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw HubError.filesystem("cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}
