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
/// reported with its error, never stored. A video's sampled frames share batches with the images and
/// videos around it (`BatchFeed`); they are stored together, in one transaction of their own, once the
/// last of them is embedded.
public struct IngestPipeline: Sendable {
    public let embedder: any Embedder
    public let store: CollectionStore

    public init(embedder: any Embedder, store: CollectionStore) {
        self.embedder = embedder
        self.store = store
    }

    /// What a batch's write settles, counted once the write has landed.
    private struct Settled {
        var added = 0
        var updated = 0
        var skipped = 0
        var problems: [SourceProblem] = []

        mutating func count(isNew: Bool) {
            if isNew { added += 1 } else { updated += 1 }
        }
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
        let feed = BatchFeed(items: items, stored: stored, options: options, writer: writer)
        // Embedded frames of videos not yet finished, and videos refused part-way (their frames are dropped).
        var pendingFrames = [String: [Item]]()
        var refusedVideos = Set<String>()
        var writing: (write: Task<Void, Error>, settled: Settled)?
        func account(_ settled: Settled) {
            progress.added += settled.added
            progress.updated += settled.updated
            progress.skipped += settled.skipped
            progress.failed += settled.problems.count
            problems += settled.problems
            report(progress)
        }

        var batch = await feed.nextBatch()
        while !batch.isEmpty {
            // The next batch is gathered while this one is embedded, and the previous one is written.
            async let upcoming = feed.nextBatch()
            var settled = Settled(skipped: batch.unchanged, problems: batch.problems)
            refusedVideos.formUnion(batch.failedVideos)
            let entries = batch.entries.filter { entry in
                if case .frame(let video) = entry.origin { !refusedVideos.contains(video) } else { true }
            }
            let origins = Dictionary(entries.map { ($0.entry.id, $0.origin) }, uniquingKeysWith: { first, _ in first })
            let (records, failed) = await writer.embed(entries.map(\.entry))
            // A provider that refuses the requests themselves (a wrong key or endpoint) would refuse every
            // item alike: the images embedded are stored, and the run stops with its answer.
            if let refusal = failed.first(where: { $0.1.kind == .rejected })?.1 {
                if let writing { try await writing.write.value }
                try await writer.upsert(records.filter { if case .image = origins[$0.id] { true } else { false } }, into: collection)
                throw refusal
            }
            for (entry, error) in failed {
                switch origins[entry.id] {
                case .frame(let video)?:
                    // One frame refused refuses its video: nothing of it is stored, and it is read no further.
                    guard refusedVideos.insert(video).inserted else { continue }
                    feed.abandon(video)
                    let time = VideoReader.clock(Double(entry.metadata[FrameMetadata.time] ?? "") ?? 0)
                    settled.problems.append(SourceProblem(id: video, path: entry.source, code: error.code, message: "frame at \(time): \(error.message)"))
                default:
                    settled.problems.append(SourceProblem(id: entry.id, path: entry.source, code: error.code, message: error.message))
                }
            }
            var images = [Item]()
            for record in records {
                switch origins[record.id] {
                case .frame(let video)?:
                    guard !refusedVideos.contains(video) else { continue }
                    pendingFrames[video, default: []].append(record)
                    progress.frames += 1
                case .image(let isNew)?:
                    images.append(record)
                    settled.count(isNew: isNew)
                case nil:
                    continue
                }
            }
            for video in refusedVideos { pendingFrames[video] = nil }
            var videos = [(video: FinishedVideo, frames: [Item])]()
            for video in batch.finishedVideos where !refusedVideos.contains(video.id) {
                videos.append((video, pendingFrames.removeValue(forKey: video.id) ?? []))
                settled.count(isNew: video.isNew)
            }
            report(progress)
            // One write in flight at a time, in order: images in one transaction per batch, each video in
            // one of its own, so a crash loses at most whole batches and whole videos, which the next run
            // embeds again.
            if let writing {
                try await writing.write.value
                account(writing.settled)
            }
            writing = (Task {
                try await writer.upsert(images, into: collection)
                for (video, frames) in videos {
                    let kept = Set(frames.map(\.id))
                    try await writer.upsert(frames, into: collection, removing: video.previousFrames.filter { !kept.contains($0) })
                }
            }, settled)
            batch = await upcoming
        }
        if let writing {
            try await writing.write.value
            account(writing.settled)
        }
        return IngestSummary(progress: progress, problems: problems)
    }
}
