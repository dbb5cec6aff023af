import Foundation
import LoupeTestSupport
import Tensor
import Testing

/// The collection commands with `--store postgres://…` against a real PostgreSQL with pgvector.
@Suite struct PostgresCommandTests {
    @Test func ingestSearchListExportAndDeleteWorkAgainstPostgreSQL() throws {
        let url = try TestPostgres.freshURL()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-pg-cli-\(UUID())")
        let data = root.appendingPathComponent("data").path
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let images = LoupeBinary.fixtures.appendingPathComponent("images").path
        let store = ["--store", url, "--data", data]

        // pgvector indexes no int8 vectors: refused before anything is opened.
        let int8 = try LoupeBinary.run(["ingest", images, "--collection", "paintings", "--model", model, "--vectors", "int8"] + store)
        #expect(int8.status != 0 && int8.stderr.contains("float32 or float16 with PostgreSQL"), "\(int8.stderr)")

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
        // An 8-bit query still finds the item first, close to, but not at, cosine 1.
        if ProductKernel.int8.isSupported {
            let int8 = try LoupeBinary.run(
                ["search", "--collection", "paintings", "--image", images + "/landscape_rgb_512x384.png", "-k", "3", "--precision", "int8"] + store)
            #expect(int8.lines.first?["id"] as? String == "landscape_rgb_512x384.png", "\(int8.stderr)")
            let cosine = int8.lines.first?["cosine"] as? Double ?? 0
            #expect(cosine >= 0.995 && cosine < 0.99999, "cosine \(cosine)")
        }
        let like = try LoupeBinary.run(["search", "--collection", "paintings", "--like", "landscape_rgb_512x384.png", "-k", "14"] + store)
        #expect(like.lines.count == 14 && like.lines.first?["id"] as? String == "landscape_rgb_512x384.png")
        let text = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "--hybrid", "-k", "5"] + store)
        #expect(text.status == 0 && text.lines.count == 5, "\(text.stderr)")

        let csv = root.appendingPathComponent("p.csv").path
        #expect(try LoupeBinary.run(["export", "--collection", "paintings", "-o", csv] + store).status == 0)
        #expect(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count == 15)

        #expect(try LoupeBinary.run(["collections", "delete", "paintings"] + store).status == 0)
        #expect(try LoupeBinary.run(["collections", "list"] + store).stdout.hasPrefix("no collections yet"))

        let refused = try LoupeBinary.run(["collections", "list", "--store", "mysql://somewhere"])
        #expect(refused.status != 0 && refused.stderr.contains("--store takes a postgres:// or milvus:// URL"))
        let unreachable = try LoupeBinary.run(["collections", "list", "--store", "postgres://loupe:hidden@127.0.0.1:1/loupe"])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("cannot connect to PostgreSQL") && !unreachable.stderr.contains("hidden"))
        try? FileManager.default.removeItem(at: root)
    }

    /// The README's move of a pgvector table filled by the seed workflow: psql's \copy writes pgvector's
    /// text form ([1,2,3]) into a CSV, and `loupe import` loads it under the Azure identity, into the
    /// embedded store and into PostgreSQL alike.
    @Test func aPgvectorTableFromTheSeedWorkflowMovesIntoLoupe() throws {
        let url = try TestPostgres.freshURL()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-pg-move-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        _ = try TestPostgres.query(url, """
            CREATE TABLE paintings (image_file text PRIMARY KEY, title text, embedding vector(4));
            INSERT INTO paintings VALUES ('1-a.jpg', 'A blue house', '[0.5,0.5,0.5,0.5]'),
              ('2-b.jpg', 'Sea, "at" night', '[1,0,0,0]'), ('3-c.jpg', 'No vector', NULL), ('4-d.jpg', 'Tiny', '[1e-07,-2.5,0,3]')
            """)
        let csv = root.appendingPathComponent("paintings.csv").path
        _ = try TestPostgres.query(url, """
            \\copy (SELECT image_file AS "IMAGE_FILE", title AS "TITLE", embedding FROM paintings ORDER BY 1) TO '\(csv)' WITH (FORMAT csv, HEADER)
            """)
        let model = ["--model", "azure:https://example.cognitiveservices.azure.com", "--dimension", "4"]
        for store in [["--data", root.appendingPathComponent("data").path], ["--store", url]] {
            let result = try LoupeBinary.run(["import", csv, "--collection", "paintings", "--vector-column", "embedding"] + model + store)
            #expect(result.status == 0 && result.stderr.contains("added 3,") && result.stderr.contains("failed 1"), "\(result.stderr)")
            let exported = root.appendingPathComponent("out.csv").path
            #expect(try LoupeBinary.run(["export", "--collection", "paintings", "-o", exported] + store).status == 0)
            #expect(try String(contentsOfFile: exported, encoding: .utf8) == """
                file_name,vector
                "1-a.jpg","[0.5, 0.5, 0.5, 0.5]"
                "2-b.jpg","[1.0, 0.0, 0.0, 0.0]"
                "4-d.jpg","[1e-07, -2.5, 0.0, 3.0]"

                """)
        }
    }
}
