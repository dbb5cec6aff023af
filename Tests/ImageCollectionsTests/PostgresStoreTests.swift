import Foundation
import LoupeTestSupport
import Testing

@testable import ImageCollections

/// What only the PostgreSQL store has: connections, its schema, pgvector's index, PostgreSQL's limits.
@Suite struct PostgresStoreTests {
    static let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 4)

    @Test func anUnreachableServerOrAWrongPasswordIsAClearErrorWithoutThePassword() throws {
        #expect {
            try PostgresStore(url: "postgres://loupe:secret-word@127.0.0.1:1/loupe")
        } throws: { error in
            "\(error)".contains("cannot connect to PostgreSQL") && !"\(error)".contains("secret-word")
        }
        let url = try TestPostgres.freshURL()
        let wrong = url.replacingOccurrences(of: #"loupe:[^@]*@"#, with: "loupe:secret-word@", options: .regularExpression)
        #expect {
            try PostgresStore(url: wrong)
        } throws: { error in
            "\(error)".contains("password authentication failed") && !"\(error)".contains("secret-word")
        }
        #expect(throws: StoreError.self) { try PostgresStore(url: "not a url at all") }
    }

    @Test func theSchemaIsMadeOnceWhenStoresStartTogetherAndMigratesNothingTwice() async throws {
        let url = try TestPostgres.freshURL()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { _ = try PostgresStore(url: url, parameters: .init(connections: 1)) } }
            try await group.waitForAll()
        }
        #expect(try TestPostgres.query(url, "SELECT string_agg(version::text, ',') FROM loupe_schema") == "1")
        _ = try PostgresStore(url: url)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM loupe_schema") == "1")
    }

    @Test func eachCollectionHasAnHNSWIndexWithItsParametersThatSearchUses() throws {
        let url = try TestPostgres.freshURL()
        let store = try PostgresStore(url: url, parameters: .init(m: 8, efConstruction: 40, efSearch: 20))
        _ = try store.openCollection("paintings", model: Self.model)
        let name = PostgresStore.indexName("paintings")
        let definition = try TestPostgres.query(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '\(name)'")
        #expect(definition.contains("USING hnsw (((embedding)::vector(4)) vector_cosine_ops) WITH (m='8', ef_construction='40')"))
        #expect(definition.contains("WHERE (collection = 'paintings'::text)"))
        try store.upsert((0..<300).map { i in
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
        _ = try store.openCollection(long, model: Self.model)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'loupe_hnsw_%'") == "2")
        try store.deleteCollection(long)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'loupe_hnsw_%'") == "1")
    }

    @Test func textPostgreSQLCannotHoldIsRefusedAndNothingIsWritten() throws {
        let store = try PostgresStore(url: try TestPostgres.freshURL())
        _ = try store.openCollection("c", model: Self.model)
        let fine = Item(id: "fine", source: "", contentHash: "", metadata: [:], vector: [1, 0, 0, 0])
        for hostile in [Item(id: "a\0b", source: "", contentHash: "", metadata: [:], vector: [1, 0, 0, 0]),
                        Item(id: "x", source: "", contentHash: "", metadata: ["TITLE": "nul\0here"], vector: [1, 0, 0, 0])] {
            #expect(throws: StoreError.self) { try store.upsert([fine, hostile], into: "c") }
        }
        #expect(try store.collection("c")?.itemCount == 0)
        #expect(throws: StoreError.invalidVector("the query has 3 values for a 4-d collection")) {
            try store.search("c", vector: [1, 0, 0], model: Self.model, k: 1, filters: [])
        }
    }
}
