import Foundation
import LoupeTestSupport
import Testing

@testable import ImageCollections
@testable import StorePostgres
import VectorIndex

/// What only the PostgreSQL store has: connections, its schema, pgvector's index, PostgreSQL's limits.
@Suite struct PostgresStoreTests {
    static let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 4)

    @Test func anUnreachableServerOrAWrongPasswordIsAClearErrorWithoutThePassword() async throws {
        #expect {
            try CollectionStore.postgres(url: "postgres://loupe:secret-word@127.0.0.1:1/loupe")
        } throws: { error in
            "\(error)".contains("cannot connect to PostgreSQL") && !"\(error)".contains("secret-word")
        }
        let url = try TestPostgres.freshURL()
        let wrong = url.replacingOccurrences(of: #"loupe:[^@]*@"#, with: "loupe:secret-word@", options: .regularExpression)
        #expect {
            try CollectionStore.postgres(url: wrong)
        } throws: { error in
            "\(error)".contains("password authentication failed") && !"\(error)".contains("secret-word")
        }
        #expect(throws: StoreError.self) { try CollectionStore.postgres(url: "not a url at all") }
    }

    @Test func theSchemaIsMadeOnceWhenStoresStartTogetherAndMigratesNothingTwice() async throws {
        let url = try TestPostgres.freshURL()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { _ = try CollectionStore.postgres(url: url, parameters: .init(connections: 1)) } }
            try await group.waitForAll()
        }
        #expect(try TestPostgres.query(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM loupe_schema") == "1,2")
        _ = try CollectionStore.postgres(url: url)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM loupe_schema") == "2")
    }

    @Test func eachCollectionHasAnHNSWIndexWithItsParametersThatSearchUses() async throws {
        let url = try TestPostgres.freshURL()
        let store = try CollectionStore.postgres(url: url, parameters: .init(m: 8, efConstruction: 40, efSearch: 20))
        _ = try await store.openCollection("paintings", model: Self.model)
        let name = PostgresStore.indexName("paintings")
        let definition = try TestPostgres.query(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '\(name)'")
        #expect(definition.contains("USING hnsw (((embedding)::vector(4)) vector_cosine_ops) WITH (m='8', ef_construction='40')"))
        #expect(definition.contains("WHERE (collection = 'paintings'::text)"))
        try await store.upsert((0..<300).map { i in
            Item(id: "i\(i)", source: "", contentHash: "", metadata: [:], vector: [Float(i % 7), Float(i % 5), 1, Float(i % 3)])
        }, into: "paintings")
        // The store's query shape, planned with sequential scans discouraged, walks the collection's graph.
        let plan = try TestPostgres.query(url, """
            ANALYZE loupe_items; SET enable_seqscan = off; EXPLAIN SELECT id FROM loupe_items WHERE collection = 'paintings' AND true
            ORDER BY embedding::vector(4) <=> '[1,0,0,0]'::vector(4) LIMIT 5
            """)
        #expect(plan.contains("Index Scan using \(name)"))
        // A long name still gets an index of its own, and deleting the collection drops it.
        let long = String(repeating: "x", count: 64)
        _ = try await store.openCollection(long, model: Self.model)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'loupe_hnsw_%'") == "2")
        try await store.deleteCollection(long)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'loupe_hnsw_%'") == "1")
    }

    @Test func aFloat16CollectionIndexesHalfvecsAndRescoresTheCandidatesWithFloat32() async throws {
        let url = try TestPostgres.freshURL()
        let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 64)
        let half = try CollectionStore.postgres(url: url, parameters: .init(m: 8, efConstruction: 40, efSearch: 20, vectors: .float16))
        _ = try await half.openCollection("half", model: model)
        let name = PostgresStore.indexName("half")
        let definition = try TestPostgres.query(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '\(name)'")
        #expect(definition.contains("USING hnsw (((embedding)::halfvec(64)) halfvec_cosine_ops)"))
        // Near-duplicates that float16 cannot tell apart: their order comes from the float32 rescoring.
        let vectors = ClusteredVectors.make(count: 400, dimension: 64, clusters: 8, seed: 3)
        let items = vectors.enumerated().map { i, v in Item(id: "i\(i)", source: "", contentHash: "", metadata: ["n": "\(i % 4)"], vector: v) }
        try await half.upsert(items, into: "half")
        // A store opened later with other settings keeps the collection's index.
        let later = try CollectionStore.postgres(url: url, parameters: .init(efSearch: 20, vectors: .float32))
        var exact = FlatIndex(dimension: 64)
        for (i, v) in vectors.enumerated() { try exact.add(key: Int64(i), vector: v) }
        let plan = try TestPostgres.query(url, """
            ANALYZE loupe_items; SET enable_seqscan = off; EXPLAIN SELECT id FROM loupe_items WHERE collection = 'half' AND true
            ORDER BY embedding::halfvec(64) <=> '[\(vectors[0].map { "\($0)" }.joined(separator: ","))]'::vector(64)::halfvec(64) LIMIT 5
            """)
        #expect(plan.contains("Index Scan using \(name)"))
        var found = 0
        for (number, query) in ClusteredVectors.make(count: 20, dimension: 64, clusters: 8, seed: 4).enumerated() {
            let results = try await later.search("half", vector: query, model: model, k: 10, filters: [])
            let expected = try exact.search(query, k: 10).map { "i\($0.key)" }
            found += Set(expected).intersection(results.map(\.item.id)).count
            // Similarities are pgvector's float32 cosines (not the halfvec ones), in order.
            #expect(results.map(\.similarity) == results.map(\.similarity).sorted(by: >))
            guard number < 3 else { continue }
            let literal = "'[" + query.map { "\($0)" }.joined(separator: ",") + "]'"
            for result in results {
                let float32 = try TestPostgres.query(url, "SELECT 1 - (embedding::vector(64) <=> \(literal)::vector(64)) FROM loupe_items WHERE id = '\(result.item.id)'")
                let float16 = try TestPostgres.query(url, "SELECT 1 - (embedding::halfvec(64) <=> \(literal)::halfvec(64)) FROM loupe_items WHERE id = '\(result.item.id)'")
                #expect(result.similarity == Float(Double(float32)!))
                #expect(Float(Double(float32)!) != Float(Double(float16)!))
            }
        }
        #expect(found >= 190, "recall@10 \(Double(found) / 200)")
        // Filtered and hybrid searches use the half-precision index too.
        let filtered = try await later.search("half", vector: vectors[5], model: model, k: 10, filters: [.equals(field: "n", value: "1")])
        #expect(filtered.count == 10 && filtered.allSatisfy { $0.item.metadata["n"] == "1" } && filtered.first?.item.id == "i5")
        let hybrid = try await later.hybridSearch("half", vector: vectors[7], text: "", model: model, k: 3, filters: [], vectorWeight: 1)
        #expect(hybrid.first?.item.id == "i7")
    }

    @Test func moreResultsThanEfSearchAreStillAllReturned() async throws {
        let store = try CollectionStore.postgres(url: try TestPostgres.freshURL(), parameters: .init(efSearch: 10))
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert((0..<200).map { i in
            Item(id: "i\(i)", source: "", contentHash: "", metadata: [:], vector: [Float(i % 7) + 1, Float(i % 5), 1, Float(i % 3)])
        }, into: "c")
        // pgvector's index scan stops at ef_search rows; the store raises it to the rows asked for.
        #expect(try await store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 150, filters: []).count == 150)
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Double = 0, na: Double = 0, nb: Double = 0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        return Float(dot / (na.squareRoot() * nb.squareRoot()))
    }

    @Test func textPostgreSQLCannotHoldIsRefusedAndNothingIsWritten() async throws {
        let store = try CollectionStore.postgres(url: try TestPostgres.freshURL())
        _ = try await store.openCollection("c", model: Self.model)
        let fine = Item(id: "fine", source: "", contentHash: "", metadata: [:], vector: [1, 0, 0, 0])
        for hostile in [Item(id: "a\0b", source: "", contentHash: "", metadata: [:], vector: [1, 0, 0, 0]),
                        Item(id: "x", source: "", contentHash: "", metadata: ["TITLE": "nul\0here"], vector: [1, 0, 0, 0])] {
            await #expect(throws: StoreError.self) { try await store.upsert([fine, hostile], into: "c") }
        }
        #expect(try await store.collection("c")?.itemCount == 0)
        await #expect(throws: StoreError.invalidVector("the query has 3 values for a 4-d collection")) {
            try await store.search("c", vector: [1, 0, 0], model: Self.model, k: 1, filters: [])
        }
    }
}
