import Foundation
import LoupeTestSupport
import Testing

/// The collection commands with `--store milvus://…` against a real Milvus (Milvus Lite's server).
@Suite struct MilvusCommandTests {
    @Test func ingestSearchFilterListExportAndDeleteWorkAgainstMilvus() throws {
        let url = try TestMilvus.freshURL()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-milvus-cli-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data").path
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let images = LoupeBinary.fixtures.appendingPathComponent("images").path
        let store = ["--store", url, "--data", data]

        let int8 = try LoupeBinary.run(["ingest", images, "--collection", "paintings", "--model", model, "--vectors", "int8"] + store)
        #expect(int8.status != 0 && int8.stderr.contains("--vectors is float32 with Milvus"), "\(int8.stderr)")

        let ingest = try LoupeBinary.run(["ingest", images, "--collection", "paintings", "--model", model] + store)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/loupe.sqlite"))  // nothing went to the embedded store
        let again = try LoupeBinary.run(["ingest", images, "--collection", "paintings", "--model", model] + store)
        #expect(again.status == 0 && again.stderr.contains("skipped 14"), "\(again.stderr)")

        let list = try LoupeBinary.run(["collections", "list"] + store)
        #expect(list.stdout.hasPrefix("paintings\t14 items\t"), "\(list.stdout)")

        // Searching by an item's own image finds that item first, with cosine 1.
        let byImage = try LoupeBinary.run(["search", "--collection", "paintings", "--image", images + "/landscape_rgb_512x384.png", "-k", "3"] + store)
        #expect(byImage.status == 0, "\(byImage.stderr)")
        #expect(byImage.lines.first?["id"] as? String == "landscape_rgb_512x384.png")
        #expect(abs((byImage.lines.first?["cosine"] as? Double ?? 0) - 1) < 1e-5)
        let like = try LoupeBinary.run(["search", "--collection", "paintings", "--like", "landscape_rgb_512x384.png", "-k", "14"] + store)
        #expect(like.lines.count == 14 && like.lines.first?["id"] as? String == "landscape_rgb_512x384.png")
        let text = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "-k", "14"] + store)
        #expect(text.status == 0 && text.lines.count == 14, "\(text.stderr)")
        let hybrid = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "--hybrid"] + store)
        #expect(hybrid.status == 1 && hybrid.stderr.contains("hybrid search needs the embedded store or PostgreSQL"), "\(hybrid.stderr)")

        let csv = root.appendingPathComponent("p.csv").path
        #expect(try LoupeBinary.run(["export", "--collection", "paintings", "-o", csv] + store).status == 0)
        #expect(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count == 15)

        #expect(try LoupeBinary.run(["collections", "delete", "paintings"] + store).status == 0)
        #expect(try LoupeBinary.run(["collections", "list"] + store).stdout.hasPrefix("no collections yet"))

        let unreachable = try LoupeBinary.run(["collections", "list", "--store", "milvus://127.0.0.1:1"])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("Milvus at 127.0.0.1:1"), "\(unreachable.stderr)")
        let malformed = try LoupeBinary.run(["collections", "list", "--store", "milvus://user:secret@127.0.0.1:19530"])
        #expect(malformed.status == 1 && malformed.stderr.contains("MILVUS_TOKEN") && !malformed.stderr.contains("secret"), "\(malformed.stderr)")
    }
}
