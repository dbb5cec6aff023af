import CLIP
import Embedding
import Foundation
import ImageCollections
import ImageIO
import LoupeTestSupport
import StoreEmbedded
import Testing

@testable import Ingest

/// Videos in `IngestPipeline`: one item per sampled frame, stored per video in one step, skipped when
/// unchanged, replaced whole when changed, and refused whole when damaged.
@Suite struct VideoIngestTests {
    static func folder() async throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-ingest-\(UUID())")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("media"), withIntermediateDirectories: true)
        return url
    }

    static func frameIDs(_ store: CollectionStore, video: String) async throws -> [String] {
        try await store.contentHashes(in: "c").keys.filter { $0.hasPrefix(video + "@") }.sorted()
    }

    @Test func framesAreStoredWithTheirTimeAndVectorAndSkippedOrReplacedWhole() async throws {
        let root = try await Self.folder()
        let media = root.appendingPathComponent("media")
        try FileManager.default.copyItem(at: ManifestFolder.fixtures.appendingPathComponent("images/cmyk_360x240.jpg"),
                                         to: media.appendingPathComponent("photo.jpg"))
        let video = try TestVideos.make(at: media.appendingPathComponent("clips/scenes.mp4"))
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let pipeline = try IngestPipelineTests.pipeline(store)
        let items = try FolderSource(root: media).items()
        #expect(items.map(\.id) == ["clips/scenes.mp4", "photo.jpg"])
        #expect(items.map(\.isVideo) == [true, false])

        let first = try await pipeline.run(items, into: "c", options: IngestOptions(batch: 3))
        #expect(first.problems.isEmpty && first.progress.added == 2 && first.progress.frames == 8)
        // One item per frame the reader takes, named by its time (0, 1, …, 6 s and the cut at 4.52 s, each
        // up to three frames late where the frame on time is one nothing refers to).
        let model = try IngestPipelineTests.model.get()
        let reader = try VideoReader(path: video.path, shorterSide: model.imageSide)
        var decoded = [VideoFrame]()
        while let frame = try reader.next() { decoded.append(frame) }
        let ids = decoded.map { "clips/scenes.mp4@" + String(format: "%.3f", $0.time) }
        await #expect(try Self.frameIDs(store, video: "clips/scenes.mp4") == ids)
        #expect(zip(decoded.map(\.time), [0, 1, 2, 3, 4, 4.52, 5, 6]).allSatisfy { $0 >= $1 && $0 <= $1 + 0.121 } && decoded.count == 8)
        // A frame's vector is the model's for the frame as the reader decodes it.
        let expected = model.embed(image: decoded[3].image)
        let stored = try #require(try await store.item(ids[3], in: "c"))
        #expect(stored.vector.count == expected.count && zip(stored.vector, expected).allSatisfy { abs($0 - $1) <= 1e-5 })
        #expect(stored.metadata == ["video": "clips/scenes.mp4", "video_time": String(format: "%.3f", decoded[3].time), "video_interval": "1.0"])
        #expect(stored.source == video.path)
        #expect(try await store.thumbnail(ids[3], in: "c").map { ImageFormat(signature: Array($0.prefix(16))) } == .jpeg)

        // Unchanged: skipped, nothing embedded.
        let second = try await pipeline.run(items, into: "c", options: IngestOptions(batch: 3))
        #expect(second.progress.skipped == 2 && second.progress.frames == 0)

        // Changed and shorter: its frames are replaced, none of the old ones stay.
        try TestVideos.make(at: video, scenes: [.init("yellow", 2.5)])
        let third2 = try await pipeline.run(items, into: "c", options: IngestOptions(batch: 3))
        #expect(third2.progress.updated == 1 && third2.progress.skipped == 1)
        let newReader = try VideoReader(path: video.path, shorterSide: model.imageSide)
        var newIDs = [String]()
        while let frame = try newReader.next() { newIDs.append("clips/scenes.mp4@" + String(format: "%.3f", frame.time)) }
        #expect(newIDs.count == 3)
        await #expect(try Self.frameIDs(store, video: "clips/scenes.mp4") == newIDs)
        #expect(try await store.collection("c")?.itemCount == 4)
    }

    @Test func damagedVideosAreReportedAndNothingOfThemIsStored() async throws {
        let root = try await Self.folder()
        let media = root.appendingPathComponent("media")
        let long: [TestVideos.Scene] = [.init("red", 5), .init("blue", 5), .init("yellow", 5)]
        let cut = try TestVideos.make(at: media.appendingPathComponent("cut.mkv"), scenes: long)
        let bytes = try Data(contentsOf: cut)
        try bytes.prefix(bytes.count / 2).write(to: cut)
        try Data("not a video".utf8).write(to: media.appendingPathComponent("text.mp4"))
        #expect(FileManager.default.createFile(atPath: media.appendingPathComponent("empty.webm").path, contents: Data()))
        try TestVideos.makeAudioOnly(at: media.appendingPathComponent("sound.mov"))
        try TestVideos.make(at: media.appendingPathComponent("good.avi"), encoding: ["-c:v", "mjpeg", "-q:v", "4"])
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let summary = try await IngestPipelineTests.pipeline(store).run(try FolderSource(root: media).items(), into: "c",
                                                                        options: IngestOptions(batch: 4))
        let codes = Dictionary(uniqueKeysWithValues: summary.problems.map { ($0.id, $0.code) })
        #expect(codes == ["cut.mkv": "CorruptVideo", "text.mp4": "InvalidVideoFormat", "empty.webm": "EmptyVideo", "sound.mov": "NoVideoStream"])
        #expect(summary.progress.added == 1 && summary.progress.failed == 4)
        #expect(Set(try await store.contentHashes(in: "c").keys.map { $0.components(separatedBy: "@")[0] }) == ["good.avi"])
    }

    /// The model embedding a pipeline's batches, recording how many inputs each batch holds.
    final class BatchRecorder: Embedder, @unchecked Sendable {
        let model: any Embedder
        private let lock = NSLock()
        private var sizes = [Int]()
        var batchSizes: [Int] { lock.withLock { sizes } }

        init(_ model: any Embedder) { self.model = model }
        var identity: ModelIdentity { model.identity }
        var scoring: LabelScoring? { model.scoring }
        var frameSide: Int { model.frameSide }
        func prepare(image bytes: [UInt8], decodes: DecodeGate, thumbnail: Bool) async throws(EmbeddingError) -> PreparedImage {
            try await model.prepare(image: bytes, decodes: decodes, thumbnail: thumbnail)
        }
        func prepare(frame: RGBImage, thumbnail: Bool) throws(EmbeddingError) -> PreparedImage { try model.prepare(frame: frame, thumbnail: thumbnail) }
        func embed(_ inputs: [EmbeddingInput]) async -> [Result<[Float], EmbeddingError>] {
            lock.withLock { sizes.append(inputs.count) }
            return await model.embed(inputs)
        }
    }

    /// Short clips fill batches with the photos around them, and each is stored whole.
    @Test func framesShareBatchesWithImagesAndOtherVideos() async throws {
        let root = try await Self.folder()
        let media = root.appendingPathComponent("media")
        try TestVideos.make(at: media.appendingPathComponent("a-clip.mp4"), scenes: [.init("red", 2.5)])
        try FileManager.default.copyItem(at: ManifestFolder.fixtures.appendingPathComponent("images/cmyk_360x240.jpg"),
                                         to: media.appendingPathComponent("b-photo.jpg"))
        try TestVideos.make(at: media.appendingPathComponent("c-clip.mkv"), scenes: [.init("navy", 2.5)])
        try FileManager.default.copyItem(at: ManifestFolder.fixtures.appendingPathComponent("images/gray_l_257x199.png"),
                                         to: media.appendingPathComponent("d-photo.png"))
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let recorder = BatchRecorder(try IngestPipelineTests.pipeline(store).embedder)
        let pipeline = IngestPipeline(embedder: recorder, store: store)
        let items = try FolderSource(root: media).items()
        #expect(items.map(\.id) == ["a-clip.mp4", "b-photo.jpg", "c-clip.mkv", "d-photo.png"])
        // Three frames a clip (0, 1 and 2 s) and two photos: one batch of 8, then nothing.
        let summary = try await pipeline.run(items, into: "c", options: IngestOptions(batch: 8))
        #expect(summary.problems.isEmpty && summary.progress.added == 4 && summary.progress.frames == 6)
        #expect(recorder.batchSizes == [8])
        for clip in ["a-clip.mp4", "c-clip.mkv"] {
            let times = try await Self.frameIDs(store, video: clip).compactMap { Double($0.dropFirst(clip.count + 1)) }
            #expect(times.count == 3 && zip(times, [0, 1, 2]).allSatisfy { $0 >= $1 && $0 <= $1 + 0.121 }, "\(clip): \(times)")
        }
        #expect(try await store.collection("c")?.itemCount == 8)
        // Batches of 4: the first clip's frames and a photo, then the second clip's frames and a photo.
        let again = IngestPipeline(embedder: BatchRecorder(recorder.model), store: try CollectionStore.embedded(folder: root.appendingPathComponent("data-4")))
        let four = try await again.run(items, into: "c", options: IngestOptions(batch: 4))
        #expect(four.problems.isEmpty && four.progress.added == 4)
        #expect((again.embedder as? BatchRecorder)?.batchSizes == [4, 4])
    }

    /// A manifest may list videos beside images: each frame keeps the row's columns.
    @Test func manifestRowsNamingVideosGiveFramesWithTheRowsMetadata() async throws {
        let folder = try ManifestFolder(copying: ["cmyk_360x240.jpg"])
        try TestVideos.make(at: folder.images.appendingPathComponent("harbour.webm"), scenes: [.init("navy", 2.5)],
                            encoding: ["-c:v", "libvpx-vp9", "-b:v", "200k", "-deadline", "realtime"])
        try folder.write("IMAGE_FILE\tTITLE\tDATE\ncmyk_360x240.jpg\tBoats\t1888\nharbour.webm\tThe harbour\t2024\n")
        let (items, problems) = try ManifestSource(file: folder.manifest).items()
        #expect(problems.isEmpty && items.map(\.isVideo) == [false, true])
        let store = try CollectionStore.embedded(folder: folder.root.appendingPathComponent("data"))
        let summary = try await IngestPipelineTests.pipeline(store).run(items, into: "c")
        #expect(summary.problems.isEmpty && summary.progress.added == 2 && summary.progress.frames == 3)
        let frames = try await Self.frameIDs(store, video: "harbour.webm")
        #expect(frames.count == 3)
        for id in frames {
            let metadata = try #require(try await store.item(id, in: "c")).metadata
            #expect(metadata["TITLE"] == "The harbour" && metadata["DATE"] == "2024" && metadata["video"] == "harbour.webm")
        }
        // The rows' columns filter frames like any item.
        let query = try #require(try await store.item(frames[0], in: "c")).vector
        let filtered = try await store.search("c", vector: query, model: IngestPipelineTests.pipeline(store).embedder.identity, k: 10,
                                        filters: [.atLeast(field: "DATE", value: 2000)])
        #expect(Set(filtered.map(\.item.id)) == Set(frames))
    }

    @Test func tooLongVideosAreRefusedByTheLimit() async throws {
        let root = try await Self.folder()
        try TestVideos.make(at: root.appendingPathComponent("media/scenes.webm"), encoding: ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime"])
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let summary = try await IngestPipelineTests.pipeline(store).run(try FolderSource(root: root.appendingPathComponent("media")).items(),
                                                                        into: "c", options: IngestOptions(videoLimits: VideoLimits(maximumSeconds: 3)))
        #expect(summary.problems.map(\.code) == ["VideoTooLong"])
        #expect(try await store.contentHashes(in: "c").isEmpty)
    }

    /// A frame's own picture, taken by ffmpeg, finds its video and a moment around its time.
    @Test func searchingWithAFramesPictureFindsItsMoment() async throws {
        let root = try await Self.folder()
        let media = root.appendingPathComponent("media")
        let scenes: [TestVideos.Scene] = [.init("red", 3), .init("navy", 3), .init("orange", 3), .init("teal", 3)]
        let video = try TestVideos.make(at: media.appendingPathComponent("long.mp4"), scenes: scenes, size: "320x240")
        try TestVideos.make(at: media.appendingPathComponent("other.mkv"), scenes: [.init("purple", 4), .init("olive", 4)], size: "320x240")
        for file in ["cmyk_360x240.jpg", "photo_progressive_800x600.jpg"] {
            try FileManager.default.copyItem(at: ManifestFolder.fixtures.appendingPathComponent("images/\(file)"), to: media.appendingPathComponent(file))
        }
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let pipeline = try IngestPipelineTests.pipeline(store)
        _ = try await pipeline.run(try FolderSource(root: media).items(), into: "c")
        let model = try IngestPipelineTests.model.get()
        for time in [1.0, 7.0, 10.0] {
            let still = root.appendingPathComponent("still-\(time).png")
            try TestVideos.extractFrame(of: video, at: time, to: still)
            let query = model.embed(image: try model.imageDecoder().decode(fileAt: still.path).rgb())
            let results = try await store.search("c", vector: query, model: pipeline.embedder.identity, k: Moments.candidates(for: 5), filters: [])
            let hits = Moments.group(results, k: 5)
            guard case .video(let id, let moments) = hits.first else {
                Issue.record("the best hit for the frame at \(time) s is not a video: \(hits.first.map(String.init(describing:)) ?? "none")")
                continue
            }
            #expect(id == "long.mp4")
            let moment = moments[0]
            #expect(moment.start - 1 <= time && time <= moment.end + 1, "frame at \(time) s: moment \(moment.start)…\(moment.end)")
            #expect(abs(moment.best - time) <= 1, "frame at \(time) s: best \(moment.best)")
            #expect(moments.allSatisfy { $0.start <= $0.best && $0.best <= $0.end })
            // Videos and images are ranked together, each once.
            let ids = hits.map { hit -> String in if case .video(let id, _) = hit { id } else { hit.best.item.id } }
            #expect(Set(ids).count == ids.count)
        }
    }
}

@Suite struct MomentGroupingTests {
    static func frame(_ video: String, _ time: Double, _ relevance: Float, interval: Double = 1) -> SearchResult {
        let item = Item(id: "\(video)@\(time)", source: video, contentHash: "h", metadata: [
            "video": video, "video_time": String(format: "%.3f", time), "video_interval": String(interval),
        ], vector: [])
        return SearchResult(item: item, similarity: 2 * relevance - 1)
    }

    static func image(_ id: String, _ relevance: Float) -> SearchResult {
        SearchResult(item: Item(id: id, source: id, contentHash: "h", metadata: [:], vector: []), similarity: 2 * relevance - 1)
    }

    @Test func adjacentFramesBecomeOneMomentAndVideosRankWithImages() {
        let results = [
            Self.frame("a.mp4", 12, 0.9), Self.image("photo.jpg", 0.85), Self.frame("a.mp4", 13, 0.8), Self.frame("a.mp4", 11, 0.7),
            Self.frame("b.mp4", 4, 0.75), Self.frame("a.mp4", 40, 0.6), Self.frame("a.mp4", 14.4, 0.5), Self.frame("b.mp4", 30, 0.4, interval: 10),
            Self.frame("b.mp4", 20, 0.3, interval: 10), Self.image("other.jpg", 0.2),
        ]
        let hits = Moments.group(results, k: 10)
        #expect(hits.count == 4)
        guard case .video("a.mp4", let a) = hits[0], case .item(let photo) = hits[1], case .video("b.mp4", let b) = hits[2],
              case .item(let other) = hits[3] else {
            Issue.record("unexpected order: \(hits)")
            return
        }
        #expect(photo.item.id == "photo.jpg" && other.item.id == "other.jpg")
        #expect(a.map { [$0.start, $0.end, $0.best] } == [[11, 14.4, 12], [40, 40, 40]])
        #expect(a.map(\.bestFrame.relevance) == [0.9, 0.6])
        // 4 and 20 are more than 1.5 intervals apart; 20 and 30 are one interval (10 s) apart.
        #expect(b.map { [$0.start, $0.end, $0.best] } == [[4, 4, 4], [20, 30, 30]])
        #expect(Moments.group(results, k: 2).count == 2)
        #expect(Moments.group([], k: 3).isEmpty)
    }
}
