import Foundation
import LoupeTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The search page in a real headless browser against `loupe serve` with a fixture collection.
@Suite(.serialized) struct WebPageTests {
    @Test func textImageAndMoreLikeThisInChromium() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-web-\(UUID())")
        let images = root.appendingPathComponent("Images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let fixtures = LoupeBinary.fixtures.appendingPathComponent("images")
        var manifest = "IMAGE_FILE\tTITLE\tAUTHOR\tDATE\n"
        for (index, file) in try FileManager.default.contentsOfDirectory(atPath: fixtures.path).sorted().enumerated() {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(file), to: images.appendingPathComponent(file))
            // One title tries to inject markup: the page must show it as text.
            let title = index == 0 ? "<img src=x onerror=\"window.__alerted=1\"><script>window.__alerted=1</script>" : "Painting \(index)"
            manifest += "\(file)\t\(title)\tPainter \(index % 3)\t18\(10 + index)\n"
        }
        try manifest.write(to: root.appendingPathComponent("paintings.tsv"), atomically: true, encoding: .utf8)
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-quickgelu").path
        let ingest = try LoupeBinary.run(["ingest", root.appendingPathComponent("paintings.tsv").path, "--collection", "paintings",
                                          "--model", model, "--data", data])
        #expect(ingest.status == 0, "\(ingest.stderr)")

        let port = ServeCommandTests.freePort()
        let (server, _) = try ServeCommandTests.start(["serve", "--model", model, "--port", "\(port)", "--data", data])
        defer { server.terminate() }
        try await ServeCommandTests.waitUntilReady(port: port)
        let base = "http://127.0.0.1:\(port)"
        let shots = LoupeBinary.root.appendingPathComponent(".build/screenshots")
        let query = "a painting of a blue house"
        let upload = images.appendingPathComponent("landscape_rgb_512x384.png").path

        let output = try Self.python([LoupeBinary.root.appendingPathComponent("Tests/LoupeCLITests/Web/browser_e2e.py").path,
                                      base, "paintings", query, upload, shots.path])
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")

        // What the page shows is what the API answers, in the same order.
        let expected = try await Self.searchIDs(base, body: #"{"text": "\#(query)", "k": 24}"#)
        #expect(shown["text"] as? [String] == expected)
        #expect((shown["text_url"] as? String)?.contains("q=a+painting+of+a+blue+house") == true)
        #expect((shown["titles"] as? [String])?.contains { $0.contains("<script>") } == true, "the hostile title is shown as text")
        #expect(shown["alerts"] as? String == "undefined", "no injected script ran")
        #expect((shown["alts"] as? [String])?.allSatisfy { !$0.isEmpty } == true)
        #expect((shown["image"] as? [String])?.first == "landscape_rgb_512x384.png")
        let itemURL = try #require(shown["item_url"] as? String)
        #expect(itemURL.contains("item="))
        #expect((shown["similar"] as? [String])?.isEmpty == false)
        #expect((shown["metadata"] as? [String])?.contains("AUTHOR") == true)
        #expect(shown["back_url"] as? String != itemURL)
        #expect(shown["reloaded"] as? [String] == expected)
        #expect((shown["page_width"] as? Int ?? 10_000) <= 390, "the phone-sized page does not scroll sideways")
        for shot in ["1-text-search.png", "2-image-search.png", "3-item.png", "4-phone.png"] {
            #expect(FileManager.default.fileExists(atPath: shots.appendingPathComponent(shot).path))
        }
        try? FileManager.default.removeItem(at: root)
    }

    /// A video's moment on the page: its card says when, and opening it plays the video from there.
    @Test func aVideoMomentPlaysFromItsBestTime() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-web-video-\(UUID())")
        let media = root.appendingPathComponent("media")
        // VP9 in WebM: a codec every Chromium build plays.
        try TestVideos.make(at: media.appendingPathComponent("harbour.webm"), scenes: [.init("red", 4), .init("navy", 4), .init("orange", 4)],
                            size: "320x240", encoding: ["-c:v", "libvpx-vp9", "-b:v", "300k", "-deadline", "realtime"])
        try FileManager.default.copyItem(at: LoupeBinary.fixtures.appendingPathComponent("images/cmyk_360x240.jpg"),
                                         to: media.appendingPathComponent("photo.jpg"))
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-quickgelu").path
        let ingest = try LoupeBinary.run(["ingest", media.path, "--collection", "clips", "--model", model, "--data", data])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let port = ServeCommandTests.freePort()
        let (server, _) = try ServeCommandTests.start(["serve", "--model", model, "--port", "\(port)", "--data", data])
        defer { server.terminate() }
        try await ServeCommandTests.waitUntilReady(port: port)
        let base = "http://127.0.0.1:\(port)"
        let output = try Self.python([LoupeBinary.root.appendingPathComponent("Tests/LoupeCLITests/Web/browser_video.py").path,
                                      base, "clips", "a boat leaving the harbour", "harbour.webm",
                                      LoupeBinary.root.appendingPathComponent(".build/screenshots").path])
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")

        let results = try await Self.search(base, collection: "clips", body: #"{"text": "a boat leaving the harbour", "k": 24}"#)
        #expect(shown["results"] as? [String] == results.compactMap { $0["id"] as? String })
        let video = try #require(results.first { $0["kind"] as? String == "video" })
        let best = try #require(video["best"] as? Double)
        let frame = try #require(video["frame"] as? String)
        #expect((shown["moment"] as? String)?.hasPrefix("▶ 0:") == true, "\(shown["moment"] ?? "none")")
        let itemURL = try #require(URLComponents(string: shown["item_url"] as? String ?? ""))
        #expect(itemURL.queryItems?.first { $0.name == "item" }?.value == frame)
        #expect((shown["title"] as? String)?.hasPrefix("harbour.webm at ") == true)
        #expect(shown["video_error"] is NSNull, "\(shown["video_error"] ?? "")")
        #expect(shown["video_paused"] as? Bool == false && shown["video_image_hidden"] as? Bool == true)
        // Playing from the best frame's time (it has played a moment since).
        let time = try #require(shown["video_time"] as? Double)
        #expect(time >= best && time < best + 3, "playing at \(time) s, the moment is at \(best) s")
        #expect(shown["paused_after_back"] as? Bool == true)
        try? FileManager.default.removeItem(at: root)
    }

    @Test func withKeysThePageAsksOnceAndSendsTheKey() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-web-key-\(UUID())")
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-quickgelu").path
        let ingest = try LoupeBinary.run(["ingest", LoupeBinary.fixtures.appendingPathComponent("images").path, "--collection", "paintings",
                                          "--model", model, "--data", data])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let port = ServeCommandTests.freePort()
        let (server, _) = try ServeCommandTests.start(["serve", "--model", model, "--port", "\(port)", "--data", data, "--key", "page-key"])
        defer { server.terminate() }
        try await ServeCommandTests.waitUntilReady(port: port)
        let base = "http://127.0.0.1:\(port)"
        let shots = LoupeBinary.root.appendingPathComponent(".build/screenshots")
        let output = try Self.python([LoupeBinary.root.appendingPathComponent("Tests/LoupeCLITests/Web/browser_e2e.py").path,
                                      base, "paintings", "boats", LoupeBinary.fixtures.appendingPathComponent("images/tiny_rgb_50x40.png").path,
                                      shots.path, "page-key"])
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        #expect(shown["text"] as? [String] == (try await Self.searchIDs(base, body: #"{"text": "boats", "k": 24}"#, key: "page-key")))
        #expect((shown["thumbnail_src"] as? String)?.hasPrefix("blob:") == true)
        #expect(shown["asked_again"] as? Bool == false)
        try? FileManager.default.removeItem(at: root)
    }

    /// The search route's results, as the page asks for them.
    static func search(_ base: String, collection: String = "paintings", body: String, key: String? = nil) async throws -> [[String: Any]] {
        var request = URLRequest(url: URL(string: base + "/collections/\(collection)/search")!)
        if let key { request.setValue(key, forHTTPHeaderField: "Ocp-Apim-Subscription-Key") }
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, _) = try await URLSession.shared.data(for: request)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["results"] as? [[String: Any]] ?? []
    }

    static func searchIDs(_ base: String, body: String, key: String? = nil) async throws -> [String] {
        try await search(base, body: body, key: key).compactMap { $0["id"] as? String }
    }

    static func python(_ arguments: [String]) throws -> String {
        let result = try LoupeBinary.run(executable: URL(fileURLWithPath: "/usr/bin/env"), ["python3"] + arguments)
        if result.status != 0 { Issue.record("the browser run failed: \(result.stderr.suffix(2000))") }
        return result.stdout
    }
}
