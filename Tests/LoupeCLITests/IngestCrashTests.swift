import CLIP
import Foundation
import ImageCollections
import ImageIO
import LoupeTestSupport
import VideoIO
import StorePostgres
import Testing

/// `loupe ingest` killed with SIGKILL at random moments, then run to the end: every item once, each
/// with the vector the model gives its file.
@Suite struct IngestCrashTests {
    @Test(arguments: ["embedded", "postgres"])
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
        let postgresURL = storeKind == "postgres" ? try TestPostgres.freshURL() : nil
        let arguments = ["ingest", images.path, "--collection", "crash", "--model", model, "--data", data, "--batch", "3", "--jobs", "2"]
            + (postgresURL.map { ["--store", $0] } ?? [])
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            try await LoupeBinary.runKilled(arguments, after: .milliseconds(Int.random(in: 150...900, using: &generator)))
        }
        let final = try LoupeBinary.run(arguments)
        #expect(final.status == 0, "\(final.stderr)")

        let store: CollectionStore = try postgresURL.map { try CollectionStore.postgres(url: $0) } ?? CollectionStore.embedded(folder: URL(fileURLWithPath: data))
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
    @Test(arguments: ["embedded", "postgres"])
    func killedVideoRunsEndExact(_ storeKind: String) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-crash-\(UUID())")
        let media = root.appendingPathComponent("media")
        for index in 0..<3 {
            try TestVideos.make(at: media.appendingPathComponent("clip\(index).mp4"),
                                scenes: [.init("red", 10), .init("navy", 10 + Double(index)), .init("olive", 10)], size: "320x240")
        }
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let postgresURL = storeKind == "postgres" ? try TestPostgres.freshURL() : nil
        let arguments = ["ingest", media.path, "--collection", "crash", "--model", model, "--data", data, "--batch", "8",
                         "--frame-interval", "0.25"] + (postgresURL.map { ["--store", $0] } ?? [])
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<4 {
            try await LoupeBinary.runKilled(arguments, after: .milliseconds(Int.random(in: 200...1500, using: &generator)))
        }
        let final = try LoupeBinary.run(arguments)
        #expect(final.status == 0, "\(final.stderr)")

        let store: CollectionStore = try postgresURL.map { try CollectionStore.postgres(url: $0) } ?? CollectionStore.embedded(folder: URL(fileURLWithPath: data))
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
