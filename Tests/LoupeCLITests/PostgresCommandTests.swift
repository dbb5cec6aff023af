import Foundation
import LoupeTestSupport
import Tensor
import Testing

/// The collection commands with `--store postgres://…` against a real PostgreSQL with pgvector.
@Suite struct PostgresCommandTests {
    @Test func ingestSearchListExportAndDeleteWorkAgainstPostgreSQL() throws {
        // pgvector indexes no int8 vectors.
        try StoreCommandRun.check(url: try TestPostgres.freshURL(), name: "pg", int8Refusal: "float32 or float16 with PostgreSQL") { store in
            // An 8-bit query still finds the item first, close to, but not at, cosine 1.
            if ProductKernel.int8.isSupported {
                let image = LoupeBinary.fixtures.appendingPathComponent("images/landscape_rgb_512x384.png").path
                let int8 = try LoupeBinary.run(["search", "--collection", "paintings", "--image", image, "-k", "3", "--precision", "int8"] + store)
                #expect(int8.lines.first?["id"] as? String == "landscape_rgb_512x384.png", "\(int8.stderr)")
                let cosine = int8.lines.first?["cosine"] as? Double ?? 0
                #expect(cosine >= 0.995 && cosine < 0.99999, "cosine \(cosine)")
            }
            let text = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "--hybrid", "-k", "5"] + store)
            #expect(text.status == 0 && text.lines.count == 5, "\(text.stderr)")
        }

        let refused = try LoupeBinary.run(["collections", "list", "--store", "mysql://somewhere"])
        #expect(refused.status != 0 && refused.stderr.contains("--store takes a postgres:// or milvus:// URL"))
        let unreachable = try LoupeBinary.run(["collections", "list", "--store", "postgres://loupe:hidden@127.0.0.1:1/loupe"])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("cannot connect to PostgreSQL") && !unreachable.stderr.contains("hidden"))
    }

    /// The README's advice: leave the password out of the URL, to PGPASSWORD or the password file.
    @Test func thePasswordComesFromPGPASSWORDOrThePasswordFile() throws {
        let url = try TestPostgres.freshURL()
        let parts = try TestPostgres.parts(url)
        let bare = url.replacingOccurrences(of: ":\(parts.password)@", with: "@")
        let passwordFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID())")
        defer { try? FileManager.default.removeItem(at: passwordFile) }
        try "\(parts.host):\(parts.port):\(parts.database):\(parts.user):\(parts.password)\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
        let list = ["collections", "list", "--store", bare]
        let fromFile = try LoupeBinary.run(list, environment: ["PGPASSFILE": passwordFile.path])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        let fromVariable = try LoupeBinary.run(list, environment: ["PGPASSWORD": parts.password, "PGPASSFILE": "/nonexistent"])
        #expect(fromVariable.status == 0, "\(fromVariable.stderr)")
        let without = try LoupeBinary.run(list, environment: ["PGPASSFILE": "/nonexistent"])
        #expect(without.status == 1 && without.stderr.contains("asks for a password and none was given"), "\(without.stderr)")
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
