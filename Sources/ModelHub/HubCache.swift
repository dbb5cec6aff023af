import Foundation

/// The Hugging Face cache layout, shared with Python tools:
/// `models--org--name/refs/<revision>` holds a commit, `snapshots/<commit>/<file>` links to `blobs/<hash>`.
public struct HubCache: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    func repositoryFolder(_ id: HubModelID) -> URL { root.appendingPathComponent(id.cacheFolderName) }

    /// The commit a revision points to, if the cache knows it.
    func commit(for id: HubModelID) -> String? {
        if id.revisionIsCommit { return id.revision }
        let ref = repositoryFolder(id).appendingPathComponent("refs/\(id.revision)")
        return (try? String(contentsOf: ref, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The snapshot folder of `id` when it holds a complete model.
    public func completeSnapshot(for id: HubModelID) -> URL? {
        guard let commit = commit(for: id) else { return nil }
        let folder = repositoryFolder(id).appendingPathComponent("snapshots/\(commit)")
        return ModelFiles.isComplete(folder) ? folder : nil
    }

    public struct Entry: Sendable, Equatable {
        public let repository: String
        public let commit: String
        public let revisions: [String]
        public let bytes: Int64
        public let complete: Bool
        public let folder: URL
    }

    /// Every snapshot in the cache, with the refs that point to it.
    public func entries() -> [Entry] {
        let files = FileManager.default
        guard let repositories = try? files.contentsOfDirectory(atPath: root.path) else { return [] }
        var result = [Entry]()
        for name in repositories.sorted() where name.hasPrefix("models--") {
            let repository = String(name.dropFirst("models--".count)).replacingOccurrences(of: "--", with: "/")
            let folder = root.appendingPathComponent(name)
            let refsFolder = folder.appendingPathComponent("refs")
            var refs = [String: [String]]()
            for ref in (try? files.subpathsOfDirectory(atPath: refsFolder.path)) ?? [] {
                if let commit = try? String(contentsOf: refsFolder.appendingPathComponent(ref), encoding: .utf8) {
                    refs[commit.trimmingCharacters(in: .whitespacesAndNewlines), default: []].append(ref)
                }
            }
            let snapshots = folder.appendingPathComponent("snapshots")
            for commit in ((try? files.contentsOfDirectory(atPath: snapshots.path)) ?? []).sorted() {
                let snapshot = snapshots.appendingPathComponent(commit)
                result.append(Entry(
                    repository: repository, commit: commit, revisions: (refs[commit] ?? []).sorted(),
                    bytes: Self.size(of: snapshot), complete: ModelFiles.isComplete(snapshot), folder: snapshot))
            }
        }
        return result
    }

    /// Bytes of the files a snapshot links to.
    static func size(of folder: URL) -> Int64 {
        let files = FileManager.default
        var total: Int64 = 0
        for path in (try? files.subpathsOfDirectory(atPath: folder.path)) ?? [] {
            let url = folder.appendingPathComponent(path).resolvingSymlinksInPath()
            if let size = (try? files.attributesOfItem(atPath: url.path))?[.size] as? NSNumber,
                (try? files.attributesOfItem(atPath: url.path))?[.type] as? FileAttributeType == .typeRegular
            {
                total += size.int64Value
            }
        }
        return total
    }
}

/// Which files make a CLIP model folder.
public enum ModelFiles {
    static let required = ["config.json", "preprocessor_config.json"]
    static let optional = ["tokenizer_config.json", "special_tokens_map.json"]

    /// The files to fetch from a repository listing, or why the listing is not a usable model.
    static func selection(from available: Set<String>, shardIndex: (() throws -> [String])?) throws -> [String] {
        var files = required
        for file in required where !available.contains(file) { throw ModelFilesError.missing(file) }
        if available.contains("vocab.json") && available.contains("merges.txt") {
            files += ["vocab.json", "merges.txt"]
        } else if available.contains("tokenizer.json") {
            files.append("tokenizer.json")
        } else {
            throw ModelFilesError.missing("vocab.json + merges.txt (or tokenizer.json)")
        }
        if available.contains("model.safetensors") {
            files.append("model.safetensors")
        } else if available.contains("model.safetensors.index.json"), let shardIndex {
            files.append("model.safetensors.index.json")
            files += try shardIndex()
        } else {
            throw ModelFilesError.missing("model.safetensors (only safetensors weights are loaded)")
        }
        return files + optional.filter(available.contains)
    }

    enum ModelFilesError: Error { case missing(String) }

    /// A folder holds everything the model loader needs (following the shard index if there is one).
    public static func isComplete(_ folder: URL) -> Bool {
        let files = FileManager.default
        let present = Set(((try? files.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
            files.fileExists(atPath: folder.appendingPathComponent($0).path)  // follows links: a dangling one is absent
        })
        let selection = try? self.selection(from: present) {
            try shardNames(indexAt: folder.appendingPathComponent("model.safetensors.index.json"))
        }
        guard let selection else { return false }
        return selection.allSatisfy { files.fileExists(atPath: folder.appendingPathComponent($0).path) }
    }

    static func shardNames(indexData data: Data) throws -> [String] {
        struct Index: Decodable { let weight_map: [String: String] }
        let names = Set(try JSONDecoder().decode(Index.self, from: data).weight_map.values).sorted()
        if let bad = names.first(where: { $0.contains("/") || $0.hasPrefix(".") || $0.isEmpty }) {
            throw ModelFilesError.missing("a plain shard file name (the index names \(bad))")
        }
        return names
    }

    static func shardNames(indexAt url: URL) throws -> [String] { try shardNames(indexData: Data(contentsOf: url)) }
}
