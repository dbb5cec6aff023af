import Foundation
import LoupeTestSupport
import Testing

/// The collection commands' round trip against a store named by `--store` (PostgreSQL, Milvus): a refused
/// `--vectors int8`, ingest and ingest again, list, search by image and by an item, the store's own
/// searches (`searches`, given the arguments that name the store), export, delete.
enum StoreCommandRun {
    static func check(url: String, name: String, int8Refusal: String, searches: ([String]) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-\(name)-cli-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data").path
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let images = LoupeBinary.fixtures.appendingPathComponent("images").path
        let store = ["--store", url, "--data", data]

        // Refused before anything is opened.
        let int8 = try LoupeBinary.run(["ingest", images, "--collection", "paintings", "--model", model, "--vectors", "int8"] + store)
        #expect(int8.status != 0 && int8.stderr.contains(int8Refusal), "\(int8.stderr)")

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
        try searches(store)

        let csv = root.appendingPathComponent("p.csv").path
        #expect(try LoupeBinary.run(["export", "--collection", "paintings", "-o", csv] + store).status == 0)
        #expect(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count == 15)

        #expect(try LoupeBinary.run(["collections", "delete", "paintings"] + store).status == 0)
        #expect(try LoupeBinary.run(["collections", "list"] + store).stdout.hasPrefix("no collections yet"))
    }
}
