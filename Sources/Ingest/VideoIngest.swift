import Crypto
import Embedding
import Foundation
import ImageCollections
import ImageIO
import VideoIO

/// How a video becomes items: one per sampled frame, named `VIDEO_ID@SECONDS`, with the video's metadata
/// plus `video` (its id), `video_time` (seconds) and `video_interval` (the sampling interval). The frames are decoded one batch ahead of the model
/// and embedded in batches like images, and a video's frames are stored in one transaction that also
/// removes its earlier frames: a run killed mid-video stores nothing of it, and the next run embeds it
/// again, so every frame is there exactly once.
struct VideoIngest: Sendable {
    let writer: ItemWriter
    let options: IngestOptions

    enum Outcome {
        case stored(frames: Int, isNew: Bool)
        case unchanged
    }

    /// The ids of a video's stored frames, and their hash (the video file's).
    static func storedFrames(of video: String, in stored: [String: String]) -> [String: String] {
        let prefix = video + "@"
        return stored.filter { id, _ in id.hasPrefix(prefix) && Double(id.dropFirst(prefix.count)) != nil }
    }

    func ingest(_ item: SourceItem, stored: [String: String], into collection: String,
                framesDone: (Int) -> Void) async throws -> Result<Outcome, SourceProblem> {
        func problem(_ code: String, _ message: String) -> Result<Outcome, SourceProblem> {
            .failure(SourceProblem(id: item.id, path: item.path, code: code, message: message))
        }
        let previous = Self.storedFrames(of: item.id, in: stored)
        let hash: String
        do {
            hash = try await runOffThePool { Result { try ItemWriter.contentHash(ofFileAt: item.path) } }.get()
        } catch {
            return problem("FileNotFound", "cannot read \(item.path): \(error.localizedDescription)")
        }
        if !previous.isEmpty, previous.values.allSatisfy({ $0 == hash }) { return .success(.unchanged) }

        let reader: FrameBatches
        do {
            reader = try FrameBatches(path: item.path, embedder: writer.embedder, sampling: options.sampling, limits: options.videoLimits)
        } catch {
            return problem(error.code, error.message)
        }
        var items = [Item]()
        var batch = await reader.next(options.batch)
        while true {
            let frames: [(time: Double, image: PreparedImage)]
            switch batch {
            case .failure(let error): return problem(error.code, error.message)
            case .success(let ready): frames = ready
            }
            if frames.isEmpty { break }
            // The next batch is decoded while this one is embedded.
            async let upcoming = reader.next(options.batch)
            let entries = frames.map { frame in
                let time = String(format: "%.3f", frame.time)
                var metadata = item.metadata
                metadata[FrameMetadata.video] = item.id
                metadata[FrameMetadata.time] = time
                metadata[FrameMetadata.interval] = String(options.sampling.interval)
                return ItemWriter.Prepared(id: item.id + "@" + time, source: item.path, metadata: metadata, contentHash: hash, image: frame.image)
            }
            let (records, failed) = await writer.embed(entries)
            if let (entry, error) = failed.first {
                _ = await upcoming
                if error.kind == .rejected { throw error }
                return problem(error.code, "frame at \(VideoReader.clock(Double(entry.metadata[FrameMetadata.time] ?? "") ?? 0)): \(error.message)")
            }
            items += records
            framesDone(records.count)
            batch = await upcoming
        }
        let ids = Set(items.map(\.id))
        try await writer.upsert(items, into: collection, removing: previous.keys.filter { !ids.contains($0) }.sorted())
        return .success(.stored(frames: items.count, isNew: previous.isEmpty))
    }
}

/// A video reader handing out prepared frames a batch at a time, decoding on a thread of its own. Its
/// batches are asked for one after another, never at once.
private final class FrameBatches: @unchecked Sendable {
    private let reader: VideoReader
    private let embedder: any Embedder

    init(path: String, embedder: any Embedder, sampling: FrameSampling, limits: VideoLimits) throws(VideoError) {
        reader = try VideoReader(path: path, shorterSide: embedder.frameSide, sampling: sampling, limits: limits)
        self.embedder = embedder
    }

    func next(_ count: Int) async -> Result<[(time: Double, image: PreparedImage)], VideoError> {
        await runOffThePool { [self] in
            var frames = [(time: Double, image: PreparedImage)]()
            do {
                while frames.count < count, let frame = try reader.next() {
                    frames.append((frame.time, try embedder.prepare(frame: frame.image, thumbnail: true)))
                }
            } catch let error as VideoError {
                return .failure(error)
            } catch let error as EmbeddingError {
                return .failure(VideoError(code: error.code, error.message))
            } catch {
                return .failure(VideoError(code: "CorruptVideo", "\(error)"))
            }
            return .success(frames)
        }
    }
}
