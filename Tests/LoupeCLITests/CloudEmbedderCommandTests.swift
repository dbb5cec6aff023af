import CLIP
import Foundation
import ImageCollections
import StoreEmbedded
import Testing

/// `loupe ingest --model azure:…` against `loupe serve` itself, with a key and a rate limit low enough
/// that 429s happen: the collection equals a local ingest of the same folder with the served model.
@Suite struct CloudEmbedderCommandTests {
    static let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-quickgelu").path

    @Test func azureIngestAgainstLoupeServeEqualsALocalIngest() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cloud-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let images = root.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let fixtureImages = LoupeBinary.fixtures.appendingPathComponent("images")
        for file in try FileManager.default.contentsOfDirectory(atPath: fixtureImages.path) {
            try FileManager.default.copyItem(at: fixtureImages.appendingPathComponent(file), to: images.appendingPathComponent(file))
        }
        let port = ServeCommandTests.freePort()
        let (server, _) = try ServeCommandTests.start([
            "serve", "--model", Self.model, "--port", "\(port)", "--key", "the-key", "--rate-limit", "4", "--rate-burst", "1",
            "--data", root.appendingPathComponent("served").path,
        ])
        defer { if server.isRunning { server.terminate() } }
        try await ServeCommandTests.waitUntilReady(port: port)

        let dimension = try CLIPModel(folder: URL(fileURLWithPath: Self.model)).dimension
        let data = root.appendingPathComponent("data").path
        let azure = ["--model", "azure:http://127.0.0.1:\(port)", "--dimension", "\(dimension)", "--data", data]
        let key = ["AZURE_AI_VISION_KEY": "the-key"]
        let cloud = try LoupeBinary.run(["ingest", images.path, "--collection", "cloud", "--jobs", "4", "--batch", "5"] + azure, environment: key)
        #expect(cloud.status == 0, "\(cloud.stderr)")
        // The last progress line counts the 429s the server sent and the client waited out.
        let rateLimited = cloud.stderr.matches(of: /429s (\d+)/).last.flatMap { Int($0.1) } ?? 0
        #expect(rateLimited > 0, "\(cloud.stderr)")
        #expect(!cloud.stderr.contains("the-key"))
        let local = try LoupeBinary.run(["ingest", images.path, "--collection", "local", "--model", Self.model, "--data", data])
        #expect(local.status == 0, "\(local.stderr)")

        let store = try CollectionStore.embedded(folder: URL(fileURLWithPath: data))
        let ids = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()
        #expect(try await store.contentHashes(in: "cloud").keys.sorted() == ids)
        #expect(try await store.collection("cloud")?.model.id == "azure:127.0.0.1:\(port)/2023-04-15")
        for id in ids {
            let remote = try #require(try await store.item(id, in: "cloud")), near = try #require(try await store.item(id, in: "local"))
            let cosine = zip(remote.vector, near.vector).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(remote.vector.count == dimension && cosine >= 0.9999, "\(id): \(cosine)")
            #expect(try await store.thumbnail(id, in: "cloud") != nil)
        }

        // A second run sends nothing: every file is unchanged.
        let again = try LoupeBinary.run(["ingest", images.path, "--collection", "cloud"] + azure, environment: key)
        #expect(again.status == 0 && again.stderr.contains("skipped \(ids.count) unchanged") && again.stderr.contains("requests 0"), "\(again.stderr)")

        // Searching the cloud collection by text through the same embedder ranks as the local one does.
        let query = ["search", "a blue house", "-k", "5"]
        let cloudHits = try LoupeBinary.run(query + ["--collection", "cloud"] + azure, environment: key)
        let localHits = try LoupeBinary.run(query + ["--collection", "local", "--data", data])
        #expect(cloudHits.status == 0 && localHits.status == 0, "\(cloudHits.stderr)")
        #expect(cloudHits.lines.map { $0["id"] as? String } == localHits.lines.map { $0["id"] as? String })
        #expect(cloudHits.lines.count == 5)
        // Vectors exported (as a script would have saved them) and imported under the Azure identity are
        // searchable by text through the Azure embedder, as the collection they came from.
        let exported = root.appendingPathComponent("cloud.csv").path
        #expect(try LoupeBinary.run(["export", "--collection", "cloud", "--data", data, "-o", exported]).status == 0)
        let imported = try LoupeBinary.run(["import", exported, "--collection", "imported"] + azure)
        #expect(imported.status == 0 && imported.stderr.contains("added \(ids.count),"), "\(imported.stderr)")
        let importedHits = try LoupeBinary.run(query + ["--collection", "imported"] + azure, environment: key)
        #expect(importedHits.lines.map { $0["id"] as? String } == cloudHits.lines.map { $0["id"] as? String }, "\(importedHits.stderr)")
        // A second server with the first behind it as its Azure model answers with the same vectors
        // (a caching proxy in front of a cloud model), and has no classification to offer.
        let proxyPort = ServeCommandTests.freePort()
        let (proxy, _) = try ServeCommandTests.start([
            "serve", "--model", "azure:http://127.0.0.1:\(port)", "--dimension", "\(dimension)", "--port", "\(proxyPort)",
            "--data", root.appendingPathComponent("proxy").path,
        ], environment: ["AZURE_AI_VISION_KEY": "the-key"])
        defer { if proxy.isRunning { proxy.terminate() } }
        try await ServeCommandTests.waitUntilReady(port: proxyPort)
        let image = try Data(contentsOf: fixtureImages.appendingPathComponent("cmyk_360x240.jpg"))
        let (status, body) = try await ServeCommandTests.request(
            "http://127.0.0.1:\(proxyPort)/computervision/retrieval:vectorizeImage?api-version=2024-02-01", method: "POST", body: image,
            contentType: "application/octet-stream")
        let proxied = try #require((try JSONSerialization.jsonObject(with: body) as? [String: Any])?["vector"] as? [Double], "\(status)")
        let stored = try #require(try await store.item("cmyk_360x240.jpg", in: "cloud")).vector
        #expect(zip(proxied, stored).allSatisfy { abs(Float($0) - $1) <= 1e-6 })
        let (classifyStatus, classifyBody) = try await ServeCommandTests.request(
            "http://127.0.0.1:\(proxyPort)/classify?label=a%20cat", method: "POST", body: image, contentType: "application/octet-stream")
        #expect(classifyStatus == 400 && String(decoding: classifyBody, as: UTF8.self).contains("ClassificationNotSupported"))

        // A wrong key stops at once with the server's answer.
        let refused = try LoupeBinary.run(["search", "a red car", "--collection", "cloud"] + azure, environment: ["AZURE_AI_VISION_KEY": "wrong"])
        #expect(refused.status != 0 && refused.stderr.contains("401"), "\(refused.stderr)")
    }
}
