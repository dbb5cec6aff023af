import Embedding
import Foundation
import ImageCollections
import ImageIO
import Synchronization
import VideoIO

/// Where an entry of a batch comes from.
enum EntryOrigin: Sendable {
    case image(isNew: Bool)
    /// A sampled frame of the video with this id.
    case frame(video: String)
}

/// A video whose frames have all been handed out. Once they are embedded they are stored in one
/// transaction that also removes the frames an earlier version of the file had and this one lacks.
struct FinishedVideo: Sendable {
    let id: String
    let isNew: Bool
    let previousFrames: [String]
}

/// Up to a batch of entries for the model, images and video frames together, and what was settled while
/// gathering them.
struct FeedBatch: Sendable {
    var entries: [(entry: ItemWriter.Prepared, origin: EntryOrigin)] = []
    /// Images and videos whose stored hash equals their file's.
    var unchanged = 0
    var problems: [SourceProblem] = []
    /// Videos refused while decoding: frames of theirs handed out earlier are dropped, not stored.
    var failedVideos: [String] = []
    var finishedVideos: [FinishedVideo] = []

    var isEmpty: Bool { entries.isEmpty && unchanged == 0 && problems.isEmpty && finishedVideos.isEmpty }
    /// Items settled or ready: a batch of unchanged files ends as a batch of new ones does, so progress
    /// comes as often on a run that has little to do.
    var filled: Int { entries.count + unchanged + problems.count }
}

/// Gathers a run's items into batches, in their order: images read, hashed and prepared `jobs` at a
/// time, videos decoded one at a time on a thread of their own. A video's frames share batches with
/// the images and videos around it, so short clips fill batches as photos do. One task at a time asks
/// for the next batch (the pipeline does while the model embeds the current one); `abandon` may be
/// called from another.
final class BatchFeed: @unchecked Sendable {
    private let items: [SourceItem]
    private let stored: [String: String]
    private let options: IngestOptions
    private let writer: ItemWriter
    private var next = 0
    private var video: OpenVideo?
    private let abandoned = Mutex<Set<String>>([])

    private struct OpenVideo {
        let item: SourceItem
        let frames: FrameBatches
        let hash: String
        let previous: [String: String]
    }

    init(items: [SourceItem], stored: [String: String], options: IngestOptions, writer: ItemWriter) {
        self.items = items
        self.stored = stored
        self.options = options
        self.writer = writer
    }

    /// Stops reading a video whose frames the model refused: its later frames are not decoded.
    func abandon(_ video: String) {
        abandoned.withLock { _ = $0.insert(video) }
    }

    /// The next batch; an empty one once every item has been handed out.
    func nextBatch() async -> FeedBatch {
        var batch = FeedBatch()
        let size = options.batch
        while batch.filled < size {
            if let open = video {
                if abandoned.withLock({ $0.contains(open.item.id) }) {
                    video = nil
                    continue
                }
                let wanted = size - batch.filled
                switch await open.frames.next(wanted) {
                case .failure(let error):
                    batch.entries.removeAll { entry in
                        if case .frame(let id) = entry.origin { id == open.item.id } else { false }
                    }
                    batch.problems.append(SourceProblem(id: open.item.id, path: open.item.path, code: error.code, message: error.message))
                    batch.failedVideos.append(open.item.id)
                    video = nil
                case .success(let frames):
                    batch.entries += frames.map { (frameEntry(of: open, $0), .frame(video: open.item.id)) }
                    if frames.count < wanted {
                        batch.finishedVideos.append(FinishedVideo(id: open.item.id, isNew: open.previous.isEmpty,
                                                                  previousFrames: open.previous.keys.sorted()))
                        video = nil
                    }
                }
            } else if next < items.count, items[next].isVideo {
                let item = items[next]
                next += 1
                switch await openVideo(item) {
                case .opened(let open): video = open
                case .unchanged: batch.unchanged += 1
                case .failed(let problem): batch.problems.append(problem)
                }
            } else if next < items.count {
                // The images up to the next video, as many as the batch has room for.
                var images = [SourceItem]()
                while next < items.count, !items[next].isVideo, images.count < size - batch.filled {
                    images.append(items[next])
                    next += 1
                }
                let prepared = await prepare(images)
                batch.entries += prepared.ready.map { ($0.entry, .image(isNew: $0.isNew)) }
                batch.unchanged += prepared.skipped
                batch.problems += prepared.problems
            } else {
                break
            }
        }
        return batch
    }

    /// The ids of a video's stored frames, and their hash (the video file's).
    static func storedFrames(of video: String, in stored: [String: String]) -> [String: String] {
        let prefix = video + "@"
        return stored.filter { id, _ in id.hasPrefix(prefix) && Double(id.dropFirst(prefix.count)) != nil }
    }

    // MARK: Videos

    private enum Opening {
        case opened(OpenVideo)
        case unchanged
        case failed(SourceProblem)
    }

    private func openVideo(_ item: SourceItem) async -> Opening {
        let previous = Self.storedFrames(of: item.id, in: stored)
        let hash: String
        do {
            hash = try await runOffThePool { Result { try ItemWriter.contentHash(ofFileAt: item.path) } }.get()
        } catch {
            return .failed(SourceProblem(id: item.id, path: item.path, code: "FileNotFound",
                                         message: "cannot read \(item.path): \(error.localizedDescription)"))
        }
        if !previous.isEmpty, previous.values.allSatisfy({ $0 == hash }) { return .unchanged }
        do {
            let frames = try FrameBatches(path: item.path, embedder: writer.embedder, sampling: options.sampling, limits: options.videoLimits)
            return .opened(OpenVideo(item: item, frames: frames, hash: hash, previous: previous))
        } catch {
            return .failed(SourceProblem(id: item.id, path: item.path, code: error.code, message: error.message))
        }
    }

    /// A frame as an item named `VIDEO_ID@SECONDS`, with the video's metadata and its own.
    private func frameEntry(of video: OpenVideo, _ frame: (time: Double, image: PreparedImage)) -> ItemWriter.Prepared {
        let time = String(format: "%.3f", frame.time)
        var metadata = video.item.metadata
        metadata[FrameMetadata.video] = video.item.id
        metadata[FrameMetadata.time] = time
        metadata[FrameMetadata.interval] = String(options.sampling.interval)
        return ItemWriter.Prepared(id: video.item.id + "@" + time, source: video.item.path, metadata: metadata, contentHash: video.hash,
                                   image: frame.image)
    }

    // MARK: Images

    private struct PreparedImages: Sendable {
        var ready: [(entry: ItemWriter.Prepared, isNew: Bool)] = []
        var skipped = 0
        var problems: [SourceProblem] = []
    }

    private func prepare(_ images: [SourceItem]) async -> PreparedImages {
        guard !images.isEmpty else { return PreparedImages() }
        let (stored, writer, jobs) = (stored, writer, options.jobs)
        let results = await withTaskGroup(of: (Int, Result<ItemWriter.Prepared?, SourceProblem>).self) { group in
            var results = [(Int, Result<ItemWriter.Prepared?, SourceProblem>)]()
            var next = 0
            func submit() {
                guard next < images.count else { return }
                let index = next
                let item = images[index]
                next += 1
                group.addTask { (index, await Self.load(item, storedHash: stored[item.id], writer: writer)) }
            }
            for _ in 0..<min(jobs, images.count) { submit() }
            for await result in group {
                results.append(result)
                submit()
            }
            return results.sorted { $0.0 < $1.0 }
        }
        var prepared = PreparedImages()
        for (index, result) in results {
            switch result {
            case .success(let entry?): prepared.ready.append((entry, stored[images[index].id] == nil))
            case .success(nil): prepared.skipped += 1
            case .failure(let problem): prepared.problems.append(problem)
            }
        }
        return prepared
    }

    /// The file prepared for embedding, or nil when its stored hash shows it unchanged.
    private static func load(_ item: SourceItem, storedHash: String?, writer: ItemWriter) async -> Result<ItemWriter.Prepared?, SourceProblem> {
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

/// A video reader handing out prepared frames a batch at a time, decoding on a thread of its own. Its
/// batches are asked for one after another, never at once.
final class FrameBatches: @unchecked Sendable {
    private let reader: VideoReader
    private let embedder: any Embedder

    init(path: String, embedder: any Embedder, sampling: FrameSampling, limits: VideoLimits) throws(VideoError) {
        reader = try VideoReader(path: path, shorterSide: embedder.frameSide, sampling: sampling, limits: limits)
        self.embedder = embedder
    }

    /// Up to `count` frames; fewer only at the end of the video.
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
