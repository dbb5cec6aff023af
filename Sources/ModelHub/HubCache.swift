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
        return commit(ofRef: id.revision, in: id)
    }

    /// `refs/<revision>`, as `huggingface_hub` writes it (`refs/refs/pr/66` for a pull request).
    func commit(ofRef revision: String, in id: HubModelID) -> String? {
        let ref = repositoryFolder(id).appendingPathComponent("refs/\(revision)")
        let commit = (try? String(contentsOf: ref, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return commit.flatMap { HubModelID.isCommit($0) ? $0 : nil }
    }

    func snapshotFolder(_ id: HubModelID, commit: String) -> URL {
        repositoryFolder(id).appendingPathComponent("snapshots/\(commit)")
    }

    /// The snapshot folder of `id` when it holds a complete model. Safetensors weights are preferred: the
    /// revision's own, else those of the conversion pull request recorded for its commit, else the
    /// revision's PyTorch weights.
    public func completeSnapshot(for id: HubModelID) -> URL? {
        guard let requested = commit(for: id) else { return nil }
        let snapshot = snapshotFolder(id, commit: requested)
        if ModelFiles.isComplete(snapshot, safetensorsOnly: true) { return snapshot }
        if let pullRequest = conversion(of: requested, in: id), let converted = commit(ofRef: pullRequest, in: id) {
            let folder = snapshotFolder(id, commit: converted)
            if ModelFiles.isComplete(folder, safetensorsOnly: true) { return folder }
        }
        return ModelFiles.isComplete(snapshot) ? snapshot : nil
    }

    // MARK: - Safetensors conversions

    /// Loupe's own record, beside the layout `huggingface_hub` knows: which pull request (`refs/pr/N`) holds
    /// the safetensors conversion of a commit that has only PyTorch weights, once it has been checked
    /// online (opened by the conversion bot, based on that commit).
    func conversionRecord(of commit: String, in id: HubModelID) -> URL {
        repositoryFolder(id).appendingPathComponent("loupe/safetensors-conversions/\(commit)")
    }

    func conversion(of commit: String, in id: HubModelID) -> String? {
        let text = (try? String(contentsOf: conversionRecord(of: commit, in: id), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return text.flatMap { HubModelID.isPullRequestRef($0) ? $0 : nil }
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

/// Which files make a model folder.
public enum ModelFiles {
    static let required = ["config.json"]
    /// The image processor's settings: on their own, or inside a whole processor's (transformers 5).
    static let processorSettings = ["preprocessor_config.json", "processor_config.json"]
    static let optional = ["tokenizer_config.json", "special_tokens_map.json"]
    /// Weight files in the order they are preferred; an index names its shards.
    static let weights = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]

    static func isIndex(_ name: String) -> Bool { name.hasSuffix(".index.json") }

    /// The weights file a listing would be loaded from, if it has any.
    static func weightsFile(in available: Set<String>, safetensorsOnly: Bool = false) -> String? {
        weights.prefix(safetensorsOnly ? 2 : 4).first(where: available.contains)
    }

    /// The files to fetch from a repository listing, or why the listing is not a usable model.
    /// `shardNames` reads the index when the weights are sharded.
    static func selection(from available: Set<String>, safetensorsOnly: Bool = false,
                          shardNames: (String) throws -> [String]) throws -> [String] {
        var files = required
        for file in required where !available.contains(file) { throw ModelFilesError.missing(file) }
        guard let settings = processorSettings.first(where: available.contains) else {
            throw ModelFilesError.missing("preprocessor_config.json (or processor_config.json)")
        }
        files.append(settings)
        // CLIP's vocabulary and merges when it has them; otherwise tokenizer.json and SentencePiece's model,
        // whichever are there (SigLIP's loader picks the one tokenizer_config.json names).
        if available.contains("vocab.json") && available.contains("merges.txt") {
            files += ["vocab.json", "merges.txt"]
        } else if available.contains("tokenizer.json") || available.contains("spiece.model") {
            files += ["tokenizer.json", "spiece.model"].filter(available.contains)
        } else {
            throw ModelFilesError.missing("vocab.json + merges.txt, tokenizer.json or spiece.model")
        }
        guard let weights = weightsFile(in: available, safetensorsOnly: safetensorsOnly) else {
            throw ModelFilesError.missing(safetensorsOnly ? "model.safetensors" : "model.safetensors or pytorch_model.bin")
        }
        files.append(weights)
        if isIndex(weights) { files += try shardNames(weights) }
        return files + optional.filter(available.contains)
    }

    enum ModelFilesError: Error { case missing(String) }

    /// A folder holds everything the model loader needs (following the shard index if there is one).
    public static func isComplete(_ folder: URL, safetensorsOnly: Bool = false) -> Bool {
        let files = FileManager.default
        let present = Set(((try? files.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
            files.fileExists(atPath: folder.appendingPathComponent($0).path)  // follows links: a dangling one is absent
        })
        let selection = try? self.selection(from: present, safetensorsOnly: safetensorsOnly) {
            try shardNames(indexAt: folder.appendingPathComponent($0))
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
