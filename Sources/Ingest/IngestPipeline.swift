import CLIP
import Crypto
import Foundation
import ImageCollections
import ImageIO
@_exported import ItemSources

public struct IngestOptions: Sendable {
    /// Images decoded and preprocessed at once.
    public var jobs: Int
    /// Images per inference batch (and per store transaction).
    public var batch: Int
    /// Decoded bytes in flight at once (each image's share read from its header, as the server does), so
    /// a folder of very large images or decompression bombs cannot take the machine's memory.
    public var decodeBudgetBytes: Int

    public init(jobs: Int = max(2, ProcessInfo.processInfo.activeProcessorCount), batch: Int = 32, decodeBudgetBytes: Int = 1 << 30) {
        self.jobs = max(1, jobs)
        self.batch = max(1, batch)
        self.decodeBudgetBytes = decodeBudgetBytes
    }
}

public struct IngestProgress: Sendable {
    public let total: Int
    public var added = 0
    public var updated = 0
    public var skipped = 0
    public var failed = 0
    public var done: Int { added + updated + skipped + failed }
}

public struct IngestSummary: Sendable {
    public let progress: IngestProgress
    public let problems: [SourceProblem]
}

/// Reads, hashes, decodes and preprocesses images on worker tasks while the previous batch runs through
/// the model, then writes each batch in one transaction. An item whose stored hash equals its file's hash
/// is skipped, so a run killed at any moment and started again ends with every item exactly once; a
/// changed file is embedded again and replaces its item.
public struct IngestPipeline: Sendable {
    public let model: any ImageTextModel
    public let identity: ModelIdentity
    public let store: any CollectionStore
    public let decoder: ImageDecoder

    /// `decoder`: the model's own by default (large JPEGs reduced by DCT scaling; `model.imageDecoder(exact: true)` for every pixel).
    public init(model: any ImageTextModel, identity: ModelIdentity, store: any CollectionStore, decoder: ImageDecoder? = nil) {
        self.model = model
        self.identity = identity
        self.store = store
        self.decoder = decoder ?? model.imageDecoder()
    }

    private struct Prepared: Sendable {
        var ready: [(item: SourceItem, hash: String, pixels: [Float], thumbnail: Data?, isNew: Bool)] = []
        var skipped = 0
        var problems: [SourceProblem] = []
    }

    public func run(
        _ items: [SourceItem], sourceProblems: [SourceProblem] = [], into collection: String, options: IngestOptions = IngestOptions(),
        progress report: @escaping @Sendable (IngestProgress) -> Void = { _ in }
    ) async throws -> IngestSummary {
        _ = try store.openCollection(collection, model: identity)
        let stored = try store.contentHashes(in: collection)
        var progress = IngestProgress(total: items.count + sourceProblems.count)
        progress.failed = sourceProblems.count
        var problems = sourceProblems
        report(progress)

        let batches = stride(from: 0, to: items.count, by: options.batch).map { Array(items[$0..<min($0 + options.batch, items.count)]) }
        guard !batches.isEmpty else { return IngestSummary(progress: progress, problems: problems) }
        let decodes = DecodeGate(slots: options.jobs, budgetBytes: options.decodeBudgetBytes)
        var current = await prepare(batches[0], stored: stored, jobs: options.jobs, decodes: decodes)
        // A batch counts once its write has landed.
        func account(_ batch: Prepared) {
            progress.added += batch.ready.filter(\.isNew).count
            progress.updated += batch.ready.filter { !$0.isNew }.count
            progress.skipped += batch.skipped
            progress.failed += batch.problems.count
            problems += batch.problems
            report(progress)
        }
        var writing: (write: Task<Void, Error>, batch: Prepared)?
        for index in batches.indices {
            // The next batch is decoded while this one is embedded, and the previous one is written.
            let upcoming = index + 1 < batches.count ? batches[index + 1] : []
            async let next = prepare(upcoming, stored: stored, jobs: options.jobs, decodes: decodes)
            let ready = current.ready
            let vectors = ready.isEmpty ? [] : await runOffThePool { [model] in model.embed(pixelValues: ready.map(\.pixels)) }
            let records = zip(ready, vectors).map { entry, vector in
                Item(id: entry.item.id, source: entry.item.path, contentHash: entry.hash, metadata: entry.item.metadata, vector: vector,
                     thumbnail: entry.thumbnail)
            }
            // One write in flight at a time, in order: each is one transaction, so a crash loses at most
            // whole batches, which the next run embeds again.
            if let writing {
                try await writing.write.value
                account(writing.batch)
            }
            let store = self.store
            writing = (Task {
                guard !records.isEmpty else { return }
                try await runOffThePool { Result { try store.upsert(records, into: collection) } }.get()
            }, current)
            current = await next
        }
        if let writing {
            try await writing.write.value
            account(writing.batch)
        }
        return IngestSummary(progress: progress, problems: problems)
    }

    private func prepare(_ batch: [SourceItem], stored: [String: String], jobs: Int, decodes: DecodeGate) async -> Prepared {
        guard !batch.isEmpty else { return Prepared() }
        let results = await withTaskGroup(of: (Int, Result<Loaded, SourceProblem>).self) { group in
            var results = [(Int, Result<Loaded, SourceProblem>)]()
            var next = 0
            func submit() {
                guard next < batch.count else { return }
                let index = next
                let item = batch[index]
                next += 1
                group.addTask { (index, await self.load(item, storedHash: stored[item.id], decodes: decodes)) }
            }
            for _ in 0..<min(jobs, batch.count) { submit() }
            for await result in group {
                results.append(result)
                submit()
            }
            return results.sorted { $0.0 < $1.0 }
        }
        var prepared = Prepared()
        for (index, result) in results {
            switch result {
            case .success(let loaded):
                guard let pixels = loaded.pixels else {
                    prepared.skipped += 1
                    continue
                }
                prepared.ready.append((batch[index], loaded.hash, pixels, loaded.thumbnail, stored[batch[index].id] == nil))
            case .failure(let problem):
                prepared.problems.append(problem)
            }
        }
        return prepared
    }

    private struct Loaded: Sendable {
        let hash: String
        var pixels: [Float]? = nil
        var thumbnail: Data? = nil
    }

    /// The file's hash, and its pixel values and thumbnail unless the stored hash shows it unchanged.
    private func load(_ item: SourceItem, storedHash: String?, decodes: DecodeGate) async -> Result<Loaded, SourceProblem> {
        do {
            var status = stat()
            guard stat(item.path, &status) == 0 else { throw ImageError.fileNotFound(item.path) }
            try decoder.checkByteCount(Int(status.st_size))
            guard let data = FileManager.default.contents(atPath: item.path) else { throw ImageError.unreadable(item.path) }
            let hash = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            if hash == storedHash { return .success(Loaded(hash: hash)) }
            let model = self.model
            return .success(try await decodes.decode(Array(data), with: decoder) { image in
                Loaded(hash: hash, pixels: model.pixelValues(for: image), thumbnail: try? Thumbnail.jpeg(from: image))
            })
        } catch let error as ImageError {
            return .failure(SourceProblem(id: item.id, path: item.path, code: error.code, message: error.description))
        } catch {
            return .failure(SourceProblem(id: item.id, path: item.path, code: "Unreadable", message: "\(error)"))
        }
    }
}

/// Runs blocking work (a model batch) on a thread of its own, so the decoding tasks keep the
/// concurrency pool.
func runOffThePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// Identifies the model a collection was made with.
public enum ModelFingerprint {
    /// A Hub snapshot is named by its commit; a local folder by a hash of its configuration and the
    /// weights' header (names, shapes, offsets; a PyTorch file's first megabyte), which changes whenever
    /// the weights do in practice.
    public static func identity(of folder: URL, name: String, dimension: Int) -> ModelIdentity {
        let components = folder.standardizedFileURL.pathComponents
        if let index = components.lastIndex(of: "snapshots"), index + 1 < components.count {
            let commit = components[index + 1]
            if commit.count == 40, commit.allSatisfy(\.isHexDigit) { return ModelIdentity(id: name, revision: commit, dimension: dimension) }
        }
        var hasher = SHA256()
        for file in ["config.json", "preprocessor_config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"] {
            if let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path) { hasher.update(data: data) }
        }
        // The start of the weights (safetensors' header; a PyTorch zip's pickle) and their size.
        for file in ["model.safetensors", "pytorch_model.bin"] {
            guard let handle = FileHandle(forReadingAtPath: folder.appendingPathComponent(file).path) else { continue }
            let header = (try? handle.read(upToCount: 1 << 20)) ?? Data()
            hasher.update(data: header)
            if let size = try? handle.seekToEnd() { hasher.update(data: Data(String(size).utf8)) }
            try? handle.close()
            break
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return ModelIdentity(id: name, revision: "sha256:" + digest, dimension: dimension)
    }
}
