import Foundation
import LoupeTestSupport
import Testing

/// `loupe ingest` of a folder of images and videos, then `loupe search`: images and video moments ranked
/// together, or every frame on its own; bad videos in the errors file.
@Suite struct VideoCommandTests {
    static func lines(_ output: String) throws -> [[String: Any]] {
        try output.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
    }

    @Test func ingestAndSearchImagesAndVideosTogether() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-cli-\(UUID())")
        let media = root.appendingPathComponent("media")
        try TestVideos.make(at: media.appendingPathComponent("clips/harbour.mkv"), scenes: [.init("red", 3), .init("navy", 2)],
                            encoding: ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "realtime"])
        try TestVideos.makeAudioOnly(at: media.appendingPathComponent("clips/sound.mp4"))
        for file in ["cmyk_360x240.jpg", "gray_l_320x240.jpg"] {
            try FileManager.default.copyItem(at: LoupeBinary.fixtures.appendingPathComponent("images/\(file)"), to: media.appendingPathComponent(file))
        }
        let data = root.appendingPathComponent("data")
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let common = ["--collection", "mixed", "--model", model, "--data", data.path]
        let ingest = try LoupeBinary.run(["ingest", media.path, "--frame-interval", "0.5"] + common)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stderr.contains("added 3, updated 0, skipped 0 unchanged, failed 1"), "\(ingest.stderr)")
        #expect(ingest.stderr.contains("video frames 10"), "\(ingest.stderr)")
        let errors = try String(contentsOf: data.appendingPathComponent("mixed-errors.tsv"), encoding: .utf8)
        #expect(errors.contains("clips/sound.mp4") && errors.contains("NoVideoStream"))

        let grouped = try LoupeBinary.run(["search", "a red boat", "-k", "5"] + common)
        #expect(grouped.status == 0, "\(grouped.stderr)")
        let hits = try Self.lines(grouped.stdout)
        #expect(hits.map { $0["id"] as? String }.sorted { ($0 ?? "") < ($1 ?? "") } == ["clips/harbour.mkv", "cmyk_360x240.jpg", "gray_l_320x240.jpg"])
        let relevances = hits.compactMap { $0["relevance"] as? Double }
        #expect(relevances == relevances.sorted(by: >))
        let video = try #require(hits.first { $0["kind"] as? String == "video" })
        let moments = try #require(video["moments"] as? [[String: Any]])
        #expect(!moments.isEmpty && moments.allSatisfy { ($0["start"] as? Double ?? -1) <= ($0["best"] as? Double ?? -2) })
        #expect(video["source"] as? String == media.appendingPathComponent("clips/harbour.mkv").path)

        let frames = try LoupeBinary.run(["search", "a red boat", "-k", "20", "--group-by", "frame"] + common)
        let frameHits = try Self.lines(frames.stdout)
        #expect(frameHits.count == 12)  // 10 frames (every half second of 5 s) and 2 images
        #expect(frameHits.filter { $0["kind"] as? String == "frame" }.count == 10)
        let bad = try LoupeBinary.run(["search", "a red boat", "--group-by", "scene"] + common)
        #expect(bad.status != 0 && bad.stderr.contains("group-by"))

        // Like a frame: the frame itself first, and its video as the best moment.
        let like = try LoupeBinary.run(["search", "--like", "clips/harbour.mkv@3.000", "-k", "3"] + common)
        let likeHits = try Self.lines(like.stdout)
        #expect(likeHits.first?["id"] as? String == "clips/harbour.mkv" && likeHits.first?["frame"] as? String == "clips/harbour.mkv@3.000")
        try? FileManager.default.removeItem(at: root)
    }
}
