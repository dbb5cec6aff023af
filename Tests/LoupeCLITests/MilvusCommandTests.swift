import Foundation
import LoupeTestSupport
import Testing

/// The collection commands with `--store milvus://…` against a real Milvus (Milvus Lite's server).
@Suite struct MilvusCommandTests {
    @Test func ingestSearchListExportAndDeleteWorkAgainstMilvus() throws {
        try StoreCommandRun.check(url: try TestMilvus.freshURL(), name: "milvus", int8Refusal: "--vectors is float32 with Milvus") { store in
            let text = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "-k", "14"] + store)
            #expect(text.status == 0 && text.lines.count == 14, "\(text.stderr)")
            let hybrid = try LoupeBinary.run(["search", "--collection", "paintings", "a blue house", "--hybrid"] + store)
            #expect(hybrid.status == 1 && hybrid.stderr.contains("hybrid search needs the embedded store or PostgreSQL"), "\(hybrid.stderr)")
        }

        let unreachable = try LoupeBinary.run(["collections", "list", "--store", "milvus://127.0.0.1:1"])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("Milvus at 127.0.0.1:1"), "\(unreachable.stderr)")
        let malformed = try LoupeBinary.run(["collections", "list", "--store", "milvus://user:secret@127.0.0.1:19530"])
        #expect(malformed.status == 1 && malformed.stderr.contains("MILVUS_TOKEN") && !malformed.stderr.contains("secret"), "\(malformed.stderr)")
    }
}
