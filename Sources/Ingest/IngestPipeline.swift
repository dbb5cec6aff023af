import Embedding
import Crypto
import Foundation
import ImageCollections
import ImageIO
@_exported import ItemSources
@_exported import VideoIO

public struct IngestOptions: Sendable {
    /// Images decoded and preprocessed at once.
    public var jobs: Int
    /// Images per inference batch (and per store transaction).
    public var batch: Int
    /// Decoded bytes in flight at once (each image's share read from its header, as the server does), so
    /// a folder of very large images or decompression bombs cannot take the machine's memory.
    public var decodeBudgetBytes: Int
    /// Which frames of a video become items.
    public var sampling: FrameSampling
    public var videoLimits: VideoLimits

    public init(jobs: Int = max(2, ProcessInfo.processInfo.activeProcessorCount), batch: Int = 32, decodeBudgetBytes: Int = 1 << 30,
                sampling: FrameSampling = FrameSampling(), videoLimits: VideoLimits = VideoLimits()) {
        self.jobs = max(1, jobs)
        self.batch = max(1, batch)
        self.decodeBudgetBytes = decodeBudgetBytes
        self.sampling = sampling
        self.videoLimits = videoLimits
    }
}

public struct IngestProgress: Sendable {
    public let total: Int
    public var added = 0
    public var updated = 0
    public var skipped = 0
    public var failed = 0
    /// Video frames embedded so far (a video counts once in the figures above, when it is stored).
    public var frames = 0
    public var done: Int { added + updated + skipped + failed }
}

public struct IngestSummary: Sendable {
    public let progress: IngestProgress
    public let problems: [SourceProblem]
}

/// Reads and hashes files, and has the embedder prepare them (decode and preprocess for a local model),
/// on worker tasks while the previous batch is embedded, then writes each batch in one transaction
/// (`ItemWriter`, the path the server's add-item route takes too). An item whose stored hash equals its
/// file's hash is skipped, so a run killed at any moment and started again ends with every item exactly
/// once; a changed file is embedded again and replaces its item. An input the embedder refuses is
/// reported with its error, never stored. Videos follow the images, one at a time (`VideoIngest`).
public struct IngestPipeline: Sendable {
    public let embedder: any Embedder
    public let store: CollectionStore

    public init(embedder: any Embedder, store: CollectionStore) {
        self.embedder = embedder
        self.store = store
    }

    private struct Prepared: Sendable {
        var ready: [(entry: ItemWriter.Prepared, isNew: Bool)] = []
        var skipped = 0
        var problems: [SourceProblem] = []
    }

    public func run(
        _ items: [SourceItem], sourceProblems: [SourceProblem] = [], into collection: String, options: IngestOptions = IngestOptions(),
        progress report: @escaping @Sendable (IngestProgress) -> Void = { _ in }
    ) async throws -> IngestSummary {
        _ = try await store.openCollection(collection, model: embedder.identity)
        let stored = try await store.contentHashes(in: collection)
        var progress = IngestProgress(total: items.count + sourceProblems.count)
        progress.failed = sourceProblems.count
        var problems = sourceProblems
        report(progress)

        let writer = ItemWriter(embedder: embedder, store: store, decodes: DecodeGate(slots: options.jobs, budgetBytes: options.decodeBudgetBytes))
        let images = items.filter { !$0.isVideo }
        try await ingestImages(images, stored: stored, into: collection, options: options, writer: writer, progress: &progress, problems: &problems,
                               report: report)
        // Videos one at a time, each decoded one batch ahead of the model.
        let videos = VideoIngest(writer: writer, options: options)
        for video in items where video.isVideo {
            let outcome = try await videos.ingest(video, stored: stored, into: collection) { frames in
                progress.frames += frames
                report(progress)
            }
            switch outcome {
            case .success(.stored(_, let isNew)): if isNew { progress.added += 1 } else { progress.updated += 1 }
            case .success(.unchanged): progress.skipped += 1
            case .failure(let problem):
                progress.failed += 1
                problems.append(problem)
            }
            report(progress)
        }
        return IngestSummary(progress: progress, problems: problems)
    }

    private func ingestImages(
        _ items: [SourceItem], stored: [String: String], into collection: String, options: IngestOptions, writer: ItemWriter,
        progress: inout IngestProgress, problems: inout [SourceProblem], report: (IngestProgress) -> Void
    ) async throws {
        let batches = stride(from: 0, to: items.count, by: options.batch).map { Array(items[$0..<min($0 + options.batch, items.count)]) }
        guard !batches.isEmpty else { return }
        var current = await prepare(batches[0], stored: stored, jobs: options.jobs, writer: writer)
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
            // The next batch is prepared while this one is embedded, and the previous one is written.
            let upcoming = index + 1 < batches.count ? batches[index + 1] : []
            async let next = prepare(upcoming, stored: stored, jobs: options.jobs, writer: writer)
            var batch = current
            let (records, failed) = await writer.embed(batch.ready.map(\.entry))
            // A provider that refuses the requests themselves (a wrong key or endpoint) would refuse every
            // item alike: what was embedded is stored, and the run stops with its answer.
            if let refusal = failed.first(where: { $0.1.kind == .rejected })?.1 {
                if let writing { try await writing.write.value }
                try await writer.upsert(records, into: collection)
                throw refusal
            }
            let failedIDs = Set(failed.map(\.0.id))
            batch.ready.removeAll { failedIDs.contains($0.entry.id) }
            batch.problems += failed.map { entry, error in
                SourceProblem(id: entry.id, path: entry.source, code: error.code, message: error.message)
            }
            // One write in flight at a time, in order: each is one transaction, so a crash loses at most
            // whole batches, which the next run embeds again.
            if let writing {
                try await writing.write.value
                account(writing.batch)
            }
            writing = (Task { try await writer.upsert(records, into: collection) }, batch)
            current = await next
        }
        if let writing {
            try await writing.write.value
            account(writing.batch)
        }
    }

    private func prepare(_ batch: [SourceItem], stored: [String: String], jobs: Int, writer: ItemWriter) async -> Prepared {
        guard !batch.isEmpty else { return Prepared() }
        let results = await withTaskGroup(of: (Int, Result<ItemWriter.Prepared?, SourceProblem>).self) { group in
            var results = [(Int, Result<ItemWriter.Prepared?, SourceProblem>)]()
            var next = 0
            func submit() {
                guard next < batch.count else { return }
                let index = next
                let item = batch[index]
                next += 1
                group.addTask { (index, await self.load(item, storedHash: stored[item.id], writer: writer)) }
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
            case .success(let entry?): prepared.ready.append((entry, stored[batch[index].id] == nil))
            case .success(nil): prepared.skipped += 1
            case .failure(let problem): prepared.problems.append(problem)
            }
        }
        return prepared
    }

    /// The file prepared for embedding, or nil when its stored hash shows it unchanged.
    private func load(_ item: SourceItem, storedHash: String?, writer: ItemWriter) async -> Result<ItemWriter.Prepared?, SourceProblem> {
        do {
            let (data, hash) = try ItemWriter.readAndHash(fileAt: item.path)
            if hash == storedHash { return .success(nil) }
            return .success(try await writer.prepare(id: item.id, source: item.path, metadata: item.metadata, bytes: data, contentHash: hash))
        } catch let error as ImageError {
            return .failure(SourceProblem(id: item.id, path: item.path, code: error.code, message: error.description))
        } catch let error as EmbeddingError {
            return .failure(SourceProblem(id: item.id, path: item.path, code: error.code, message: error.message))
        } catch {
            return .failure(SourceProblem(id: item.id, path: item.path, code: "Unreadable", message: "\(error)"))
        }
    }
}
