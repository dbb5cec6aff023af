import CLIP
import Foundation
import ImageCollections
import ImageIO
import LoupeTestSupport
import StoreEmbedded
import StoreMilvus
import StorePostgres
import VideoIO
import Testing

/// `loupe ingest` killed with SIGKILL at random moments, then run to the end: every item once, each
/// with the vector the model gives its file.
@Suite struct IngestCrashTests {
    @Test(arguments: ["embedded", "postgres", "milvus"])
    func killedRunsEndExact(_ storeKind: String) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-crash-\(UUID())")
        let images = root.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let fixtureImages = LoupeBinary.fixtures.appendingPathComponent("images")
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtureImages.path).sorted()
        for copy in 0..<4 {
            for file in files {
                try FileManager.default.copyItem(at: fixtureImages.appendingPathComponent(file),
                                                 to: images.appendingPathComponent("\(copy)-\(file)"))
            }
        }
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let target = try CLIStore(storeKind, data: data)
        let arguments = ["ingest", images.path, "--collection", "crash", "--model", model, "--data", data, "--batch", "3", "--jobs", "2"]
            + target.arguments
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            try await LoupeBinary.runKilled(arguments, after: .milliseconds(Int.random(in: 150...900, using: &generator)))
        }
        let final = try LoupeBinary.run(arguments)
        #expect(final.status == 0, "\(final.stderr)")

        let store = try await target.open()
        let clip = try CLIPModel(folder: URL(fileURLWithPath: model))
        let stored = try await store.contentHashes(in: "crash")
        let expectedIDs = Set(try FileManager.default.contentsOfDirectory(atPath: images.path))
        #expect(Set(stored.keys) == expectedIDs)
        #expect(try await store.collection("crash")?.itemCount == expectedIDs.count)
        for id in expectedIDs.sorted() {
            let item = try #require(try await store.item(id, in: "crash"))
            // Through the decoder ingestion uses (the tiny model is small enough that fixtures are reduced).
            let vector = clip.embed(image: try clip.imageDecoder().decode(fileAt: images.appendingPathComponent(id).path).rgb())
            // Batched and single products sum in different orders: equal to float rounding, not bit for bit.
            #expect(item.vector.count == vector.count && zip(item.vector, vector).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(id)")
        }
        try? FileManager.default.removeItem(at: root)
    }

    /// Videos: a run killed mid-video stores none of that video's frames, so the final run leaves every
    /// frame of every video exactly once, with the vector the model gives the frame.
    @Test(arguments: ["embedded", "postgres", "milvus"])
    func killedVideoRunsEndExact(_ storeKind: String) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-crash-\(UUID())")
        let media = root.appendingPathComponent("media")
        for index in 0..<3 {
            try TestVideos.make(at: media.appendingPathComponent("clip\(index).mp4"),
                                scenes: [.init("red", 10), .init("navy", 10 + Double(index)), .init("olive", 10)], size: "320x240")
        }
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let target = try CLIStore(storeKind, data: data)
        let arguments = ["ingest", media.path, "--collection", "crash", "--model", model, "--data", data, "--batch", "8",
                         "--frame-interval", "0.25"] + target.arguments
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<4 {
            try await LoupeBinary.runKilled(arguments, after: .milliseconds(Int.random(in: 200...1500, using: &generator)))
        }
        let final = try LoupeBinary.run(arguments)
        #expect(final.status == 0, "\(final.stderr)")

        let store = try await target.open()
        let clip = try CLIPModel(folder: URL(fileURLWithPath: model))
        var expected = [String: VideoFrame]()
        for index in 0..<3 {
            let reader = try VideoReader(path: media.appendingPathComponent("clip\(index).mp4").path, shorterSide: clip.imageSide,
                                         sampling: FrameSampling(interval: 0.25))
            while let frame = try reader.next() { expected["clip\(index).mp4@" + String(format: "%.3f", frame.time)] = frame }
        }
        let stored = try await store.contentHashes(in: "crash")
        #expect(stored.count == expected.count && Set(stored.keys) == Set(expected.keys))
        #expect(try await store.collection("crash")?.itemCount == expected.count)
        for id in expected.keys.sorted().enumerated().filter({ $0.offset % 37 == 0 }).map(\.element) {
            let vector = clip.embed(image: expected[id]!.image)
            let item = try #require(try await store.item(id, in: "crash"))
            #expect(item.vector.count == vector.count && zip(item.vector, vector).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(id)")
        }
        try? FileManager.default.removeItem(at: root)
    }
}

/// The store a command writes to, by kind: the embedded store in the data folder, or a fresh PostgreSQL
/// schema or Milvus database, with the `--store` arguments that name it.
struct CLIStore {
    let kind: String
    let data: String
    let url: String?

    init(_ kind: String, data: String) throws {
        self.kind = kind
        self.data = data
        switch kind {
        case "postgres": url = try TestPostgres.freshURL()
        case "milvus": url = try TestMilvus.freshURL()
        default: url = nil
        }
    }

    var arguments: [String] { url.map { ["--store", $0] } ?? [] }

    func open() async throws -> CollectionStore {
        switch kind {
        case "postgres": try await CollectionStore.postgres(url: url ?? "")
        case "milvus": try await CollectionStore.milvus(url: url ?? "")
        default: try CollectionStore.embedded(folder: URL(fileURLWithPath: data))
        }
    }
}
