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
            redirectConfiguration: .follow(max: 10, allowCycles: false),
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
    }

    private func download(_ id: HubModelID, client: HTTPClient, progress: @escaping @Sendable (DownloadProgress) -> Void) async throws -> URL {
        let revision = id.revision.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? id.revision
        let listingData = try await fetch("\(environment.endpoint)/api/models/\(id.repository)/revision/\(revision)?blobs=true",
                                          id: id, file: "the model listing", client: client)
        guard let listing = try? JSONDecoder().decode(Listing.self, from: listingData) else {
            throw HubError.notAModel(model: id.description, reason: "the Hub's listing is not readable")
        }
        guard listing.sha.count == 40, listing.sha.allSatisfy(\.isHexDigit) else {
            throw HubError.notAModel(model: id.description, reason: "the listing has no commit id")
        }
        let siblings = Dictionary(listing.siblings.map { ($0.rfilename, $0) }, uniquingKeysWith: { first, _ in first })
        let repositoryFolder = cache.repositoryFolder(id)
        let snapshot = repositoryFolder.appendingPathComponent("snapshots/\(listing.sha)")
        let blobs = repositoryFolder.appendingPathComponent("blobs")
        try createFolder(snapshot)
        try createFolder(blobs)

        func fetchFile(_ name: String) async throws -> URL {
            guard let sibling = siblings[name] else { throw HubError.notAModel(model: id.description, reason: "\(name) is missing") }
            return try await fetchIntoCache(sibling, id: id, commit: listing.sha, blobs: blobs, snapshot: snapshot,
                                            client: client, progress: progress)
        }

        var indexFile: URL?
        if siblings["model.safetensors"] == nil, siblings["model.safetensors.index.json"] != nil {
            indexFile = try await fetchFile("model.safetensors.index.json")
        }
        let selection: [String]
        do {
            selection = try ModelFiles.selection(from: Set(siblings.keys)) {
                guard let indexFile else { return [] }
                return try ModelFiles.shardNames(indexAt: indexFile)
            }
        } catch ModelFiles.ModelFilesError.missing(let what) {
            throw HubError.notAModel(model: id.description, reason: "the repository has no \(what)")
        }
        for name in selection where name != "model.safetensors.index.json" { _ = try await fetchFile(name) }

        if !id.revisionIsCommit {
            let ref = repositoryFolder.appendingPathComponent("refs/\(id.revision)")
            try createFolder(ref.deletingLastPathComponent())
            try writeAtomically(Data(listing.sha.utf8), to: ref)
        }
        return snapshot
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

    private func request(_ url: String, range from: Int64 = 0) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "loupe/0.1; hf_hub-compatible")
        if let token = environment.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if from > 0 { request.headers.add(name: "Range", value: "bytes=\(from)-") }
        return request
    }

    private func fetch(_ url: String, id: HubModelID, file: String, client: HTTPClient) async throws -> Data {
        let response = try await execute(request(url), id: id, client: client)
        try check(response.status, id: id, file: file)
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return Data(body.readableBytesView)
    }

    private func execute(_ request: HTTPClientRequest, id: HubModelID, client: HTTPClient) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: .minutes(10))
        } catch {
            throw HubError.unreachable(model: id.description, reason: "\(error)")
        }
    }

    private func check(_ status: HTTPResponseStatus, id: HubModelID, file: String) throws {
        switch status.code {
        case 200, 206: return
        case 401, 403: throw HubError.unauthorized(model: id.description)
        default: throw HubError.http(model: id.description, file: file, status: Int(status.code))
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
        if have == 0 { FileManager.default.createFile(atPath: partial.path, contents: nil) }
        let response = try await execute(request(url, range: have), id: id, client: client)
        try check(response.status, id: id, file: file)
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
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw HubError.filesystem("cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}
