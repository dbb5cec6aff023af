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
        await #expect {
            try await CollectionStore.postgres(url: "postgres://loupe:secret-word@127.0.0.1:1/loupe")
        } throws: { error in
            "\(error)".contains("cannot connect to PostgreSQL") && !"\(error)".contains("secret-word")
        }
        let url = try TestPostgres.freshURL()
        let wrong = url.replacingOccurrences(of: #"loupe:[^@]*@"#, with: "loupe:secret-word@", options: .regularExpression)
        await #expect {
            try await CollectionStore.postgres(url: wrong)
        } throws: { error in
            "\(error)".contains("password authentication failed") && !"\(error)".contains("secret-word")
        }
        await #expect(throws: StoreError.self) { try await CollectionStore.postgres(url: "not a url at all") }
    }

    @Test func theURLIsReadAsLibpqReadsIt() throws {
        let none = [String: String]()
        let full = try PostgresURL("postgres://ann:p%40ss:w@db.example:6543/photos?sslmode=require&options=-csearch_path%3Dx%2Cpublic&application_name=a",
                                   environment: none)
        #expect(full.host == .tcp("db.example") && full.port == 6543 && full.user == "ann" && full.password == "p@ss:w")
        #expect(full.database == "photos" && full.sslMode == .require && full.options == "-csearch_path=x,public" && full.applicationName == "a")
        // What the URL leaves out comes from libpq's variables, then libpq's defaults.
        let environment = ["PGHOST": "pg.internal", "PGPORT": "7000", "PGUSER": "bob", "PGSSLMODE": "verify-full", "USER": "me"]
        let defaults = try PostgresURL("postgresql://", environment: environment)
        #expect(defaults.host == .tcp("pg.internal") && defaults.port == 7000 && defaults.user == "bob" && defaults.database == "bob")
        #expect(defaults.sslMode == .verifyFull && defaults.password == nil && defaults.connectTimeout == 10)
        let socket = try PostgresURL("postgresql:///photos?host=/tmp/pg&port=5433", environment: ["USER": "me"])
        #expect(socket.host == .socket("/tmp/pg/.s.PGSQL.5433") && socket.user == "me" && socket.database == "photos" && socket.sslMode == .prefer)
        #expect(try PostgresURL("postgres://me@%2Fvar%2Frun%2Fpostgresql/db", environment: none).host == .socket("/var/run/postgresql/.s.PGSQL.5432"))
        #expect(try PostgresURL("postgres://me@[::1]:5433/db", environment: none).host == .tcp("::1"))
        #expect(try PostgresURL("postgres://me@localhost/db?password=from-query", environment: ["PGPASSWORD": "env"]).password == "from-query")
        #expect(try PostgresURL("postgres://me@localhost/db", environment: ["PGPASSWORD": "env"]).password == "env")
        for (bad, reason) in [("mysql://x/db", "postgres:// or postgresql://"), ("postgres://x/db?sslmod=require", "does not know: sslmod"),
                              ("postgres://x:99999/db", "port"), ("postgres://x:port/db", "port"), ("postgres://x/db?sslmode=always", "sslmode is one of"),
                              ("postgres://a,b/db", "one PostgreSQL host"), ("postgres://x/d%zzb", "percent"), ("postgres://[::1/db", "unclosed"),
                              ("postgres://x/db?connect_timeout=-1", "connect_timeout")] {
            #expect { try PostgresURL(bad, environment: none) } throws: { "\($0)".contains(reason) }
        }
    }

    @Test func thePasswordFileMatchesAsLibpqsDoesAndIsIgnoredWhenOthersMayReadIt() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID())")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
            # comment
            other:5432:*:ann:not-this
            db.example:6543:photos:ann:first\\:colon
            *:*:*:ann:fallback
            localhost:5432:*:*:socket
            """.write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        let environment = ["PGPASSFILE": file.path, "USER": "me"]
        #expect(try PostgresURL("postgres://ann@db.example:6543/photos", environment: environment).password == "first:colon")
        #expect(try PostgresURL("postgres://ann@db.example:6543/other", environment: environment).password == "fallback")
        #expect(try PostgresURL("postgres:///x?host=/run/pg", environment: environment).password == "socket")
        #expect(try PostgresURL("postgres://ann:given@db.example:6543/photos", environment: environment).password == "given")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        #expect(try PostgresURL("postgres://ann@db.example:6543/photos", environment: environment).password == nil)
    }

    /// sslmode against a server that takes TLS the PostgreSQL way (stunnel in front of the test server,
    /// whose own build has no TLS) and against one that has no TLS (the test server itself).
    @Test func sslmodeIsHonouredAndTheCertificateCheckedWhereAsked() async throws {
        let url = try TestPostgres.freshURL()
        let parts = try TestPostgres.parts(url)
        let proxy = try TLSProxy.postgres(upstream: "\(parts.host):\(parts.port)")
        defer { proxy.stop() }
        let secure = "postgres://\(parts.user):\(parts.password)@127.0.0.1:\(proxy.port)/\(parts.database)?\(parts.query)"
        for mode in ["prefer", "require", "verify-ca&sslrootcert=\(proxy.certificate)", "verify-full&sslrootcert=\(proxy.certificate)"] {
            let store = try await CollectionStore.postgres(url: secure + "&sslmode=" + mode)
            _ = try await store.openCollection("c-\(mode.prefix(9))", model: Self.model)
        }
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM loupe_collections") == "4")
        // Unchecked TLS is refused nowhere; checked TLS refuses a certificate no trusted authority signed.
        await #expect {
            try await CollectionStore.postgres(url: secure + "&sslmode=verify-full")
        } throws: { "\($0)".contains("cannot connect to PostgreSQL") }
        // stunnel only speaks TLS: a client that never asks for it gets nowhere there.
        await #expect(throws: StoreError.self) { try await CollectionStore.postgres(url: secure + "&sslmode=disable") }
        // The test server has no TLS: required TLS is a clear error, preferred falls back, disabled never asks.
        await #expect {
            try await CollectionStore.postgres(url: url + "&sslmode=require")
        } throws: { "\($0)".contains("does not support TLS") }
        _ = try await CollectionStore.postgres(url: url + "&sslmode=prefer").collections()
        _ = try await CollectionStore.postgres(url: url + "&sslmode=disable").collections()
    }

    @Test func aUnixSocketIsAHostFolder() async throws {
        let url = try TestPostgres.freshURL()
        let parts = try TestPostgres.parts(url)
        let socket = "postgres:///\(parts.database)?host=\(try TestPostgres.dataFolder())&port=\(parts.port)&user=\(parts.user)"
            + "&password=\(parts.password)&\(parts.query)"
        let store = try await CollectionStore.postgres(url: socket)
        _ = try await store.openCollection("c", model: Self.model)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM loupe_collections") == "1")
    }

    @Test func aStoreReconnectsAfterTheServerEndsItsConnections() async throws {
        let url = try TestPostgres.freshURL()
        let store = try await CollectionStore.postgres(url: url + "&application_name=reconnect-\(UUID())")
        _ = try await store.openCollection("c", model: Self.model)
        let ended = try TestPostgres.query(url, """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'reconnect-%' AND pid <> pg_backend_pid()
            """)
        #expect(Int(ended) ?? 0 >= 1)
        // The pool sees the closed sockets and opens new connections for the next calls.
        try await Task.sleep(for: .milliseconds(100))
        try await store.upsert([Item(id: "a", source: "", contentHash: "", metadata: [:], vector: [1, 0, 0, 0])], into: "c")
        #expect(try await store.collection("c")?.itemCount == 1)
    }

    @Test func theSchemaIsMadeOnceWhenStoresStartTogetherAndMigratesNothingTwice() async throws {
        let url = try TestPostgres.freshURL()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { _ = try await CollectionStore.postgres(url: url, parameters: .init(connections: 1)) } }
            try await group.waitForAll()
        }
        #expect(try TestPostgres.query(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM loupe_schema") == "1,2")
        _ = try await CollectionStore.postgres(url: url)
        #expect(try TestPostgres.query(url, "SELECT count(*) FROM loupe_schema") == "2")
    }

    @Test func eachCollectionHasAnHNSWIndexWithItsParametersThatSearchUses() async throws {
        let url = try TestPostgres.freshURL()
        let store = try await CollectionStore.postgres(url: url, parameters: .init(m: 8, efConstruction: 40, efSearch: 20))
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
        let half = try await CollectionStore.postgres(url: url, parameters: .init(m: 8, efConstruction: 40, efSearch: 20, vectors: .float16))
        _ = try await half.openCollection("half", model: model)
        let name = PostgresStore.indexName("half")
        let definition = try TestPostgres.query(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '\(name)'")
        #expect(definition.contains("USING hnsw (((embedding)::halfvec(64)) halfvec_cosine_ops)"))
        // Near-duplicates that float16 cannot tell apart: their order comes from the float32 rescoring.
        let vectors = ClusteredVectors.make(count: 400, dimension: 64, clusters: 8, seed: 3)
        let items = vectors.enumerated().map { i, v in Item(id: "i\(i)", source: "", contentHash: "", metadata: ["n": "\(i % 4)"], vector: v) }
        try await half.upsert(items, into: "half")
        // A store opened later with other settings keeps the collection's index.
        let later = try await CollectionStore.postgres(url: url, parameters: .init(efSearch: 20, vectors: .float32))
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
        let store = try await CollectionStore.postgres(url: try TestPostgres.freshURL(), parameters: .init(efSearch: 10))
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
        let store = try await CollectionStore.postgres(url: try TestPostgres.freshURL())
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
