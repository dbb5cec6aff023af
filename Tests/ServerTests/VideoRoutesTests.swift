import Embedding
import Foundation
import HTTPBodies
import ImageCollections
import ImageIO
import Ingest
import LoupeTestSupport
import Server
import StoreEmbedded
import Testing

/// Video moments over HTTP: search grouped per video (or per frame), and the video served in byte
/// ranges as a browser's player asks for it.
@Suite struct VideoRoutesTests {
    static let json = ["Content-Type": "application/json"]

    /// A collection holding one video and one photo, ingested with the server's default model.
    static func collection() async throws -> (store: CollectionStore, video: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-video-routes-\(UUID())")
        let media = root.appendingPathComponent("media")
        let video = try TestVideos.make(at: media.appendingPathComponent("harbour.mp4"),
                                        scenes: [.init("red", 3), .init("navy", 3), .init("orange", 3)], size: "320x240")
        try ServerHarness.image("cmyk_360x240.jpg").write(to: media.appendingPathComponent("photo.jpg"))
        let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
        let embedder = LocalEmbedder(model: ServerHarness.models["tiny-quickgelu"]!, identity: ServerHarness.identity("tiny-quickgelu"))
        defer { embedder.stop() }
        let summary = try await IngestPipeline(embedder: embedder, store: store).run(try FolderSource(root: media).items(), into: "clips")
        #expect(summary.problems.isEmpty)
        return (store, video)
    }

    @Test func searchGroupsFramesIntoMomentsAndServesTheVideoInRanges() async throws {
        let (store, video) = try await Self.collection()
        let bytes = try Data(contentsOf: video)
        let size = bytes.count
        try await ServerHarness.withServer(store: store) { base, send in
            // A frame's own picture: its video first, with the moment around its time.
            let still = FileManager.default.temporaryDirectory.appendingPathComponent("still-\(UUID()).png")
            try TestVideos.extractFrame(of: video, at: 4, to: still)
            let byImage = try await send.send(base + "/collections/clips/search?k=5", headers: ["Content-Type": "image/png"],
                                              body: try Data(contentsOf: still))
            let results = try #require(byImage.json["results"] as? [[String: Any]])
            let first = try #require(results.first)
            #expect(first["kind"] as? String == "video" && first["id"] as? String == "harbour.mp4")
            let start = try #require(first["start"] as? Double), end = try #require(first["end"] as? Double), best = try #require(first["best"] as? Double)
            #expect(start - 1 <= 4 && 4 <= end + 1 && abs(best - 4) <= 1, "moment \(start)…\(end), best \(best)")
            #expect((first["moments"] as? [[String: Any]])?.isEmpty == false)
            let frame = try #require(first["frame"] as? String)
            #expect(frame.hasPrefix("harbour.mp4@"))
            #expect(Set(results.compactMap { $0["id"] as? String }) == ["harbour.mp4", "photo.jpg"])

            // Each frame on its own.
            let frames = try await send.send(base + "/collections/clips/search", headers: Self.json,
                                             body: Data(#"{"text": "a boat", "k": 20, "groupBy": "frame"}"#.utf8))
            let frameResults = try #require(frames.json["results"] as? [[String: Any]])
            #expect(frameResults.count == 10)  // 9 frames (0…8 s; the cuts at 3 and 6 s fall on the schedule) and the photo
            #expect(frameResults.filter { $0["kind"] as? String == "frame" }.count == 9)
            let badGroup = try await send.send(base + "/collections/clips/search", headers: Self.json,
                                               body: Data(#"{"text": "a boat", "groupBy": "scene"}"#.utf8))
            #expect(badGroup.status == 400)

            // The video, whole and in ranges.
            let url = base + "/collections/clips/items/\(frame.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!)/video"
            let whole = try await send.send(.GET, url)
            #expect(whole.status == 200 && whole.body == bytes && whole.headers["content-type"] == "video/mp4")
            #expect(whole.headers["accept-ranges"] == "bytes")
            let etag = try #require(whole.headers["etag"])
            let head = try await send.send(.GET, url, headers: ["Range": "bytes=0-99"])
            #expect(head.status == 206 && head.body == bytes.prefix(100) && head.headers["content-range"] == "bytes 0-99/\(size)")
            let middle = try await send.send(.GET, url, headers: ["Range": "bytes=1000-1999"])
            #expect(middle.status == 206 && middle.body == bytes[1000..<2000] && middle.headers["content-length"] == "1000")
            let suffix = try await send.send(.GET, url, headers: ["Range": "bytes=-500"])
            #expect(suffix.status == 206 && suffix.body == bytes.suffix(500) && suffix.headers["content-range"] == "bytes \(size - 500)-\(size - 1)/\(size)")
            let open = try await send.send(.GET, url, headers: ["Range": "bytes=\(size - 10)-"])
            #expect(open.status == 206 && open.body == bytes.suffix(10))
            let past = try await send.send(.GET, url, headers: ["Range": "bytes=\(size)-"])
            #expect(past.status == 416 && past.headers["content-range"] == "bytes */\(size)" && past.body.isEmpty)
            // Several ranges, another unit, nonsense, or a stale If-Range: the whole file.
            for header in ["bytes=0-9,20-29", "items=0-9", "bytes=9-2", "bytes=x-y"] {
                let reply = try await send.send(.GET, url, headers: ["Range": header])
                #expect(reply.status == 200 && reply.body == bytes, "\(header)")
            }
            let stale = try await send.send(.GET, url, headers: ["Range": "bytes=0-9", "If-Range": "\"other\""])
            #expect(stale.status == 200 && stale.body.count == size)
            let current = try await send.send(.GET, url, headers: ["Range": "bytes=0-9", "If-Range": etag])
            #expect(current.status == 206 && current.body.count == 10)

            // A photo is not a video; an unknown item is not found; a moved video is gone.
            #expect(try await send.send(.GET, base + "/collections/clips/items/photo.jpg/video").status == 404)
            #expect(try await send.send(.GET, base + "/collections/clips/items/nothing/video").status == 404)
            try FileManager.default.removeItem(at: video)
            let gone = try await send.send(.GET, url)
            #expect(gone.status == 404 && gone.json["error"] != nil)
        }
    }

    /// Range headers as clients and attackers write them, on files of 1,000 bytes and of none.
    @Test func rangeHeadersAreReadStrictly() {
        let cases: [(String?, Int, ByteRangeRequest)] = [
            (nil, 1000, .whole), ("bytes=0-0", 1000, .range(0...0)), ("bytes=999-", 1000, .range(999...999)),
            ("bytes=0-5000", 1000, .range(0...999)), ("bytes= 10-19 ", 1000, .range(10...19)), ("bytes=-1", 1000, .range(999...999)),
            ("bytes=-5000", 1000, .range(0...999)), ("bytes=1000-", 1000, .unsatisfiable), ("bytes=-0", 1000, .unsatisfiable),
            ("bytes=0-", 0, .unsatisfiable), ("bytes=-10", 0, .unsatisfiable), ("bytes=5-4", 1000, .whole),
            ("bytes=0-1,5-6", 1000, .whole), ("bytes=99999999999999999999-", 1000, .whole), ("bytes=-99999999999999999999", 1000, .whole),
            ("bytes=+1-2", 1000, .whole), ("bytes=1--2", 1000, .whole), ("bytes=", 1000, .whole), ("bytes=-", 1000, .whole),
            ("bytes=٣-٤", 1000, .whole), ("BYTES=0-1", 1000, .whole), ("pages=0-1", 1000, .whole), ("bytes=0x10-", 1000, .whole),
        ]
        for (header, size, expected) in cases {
            #expect(ByteRangeRequest(header: header, size: size) == expected, "\(header ?? "none") on \(size) bytes")
        }
    }
}
