import Foundation
import LoupeTestSupport
import Testing

@testable import ImageCollections
@testable import StoreEmbedded
@testable import StorePostgres
@testable import StoreMilvus
@testable import VectorIndex

/// The stores the behaviour suite runs against: the embedded store with each index, PostgreSQL and Milvus.
enum StoreUnderTest: Sendable, CustomTestStringConvertible {
    case embedded(IndexKind)
    case postgres
    case milvus

    static let all: [StoreUnderTest] = [.embedded(.exact), .embedded(.hnsw(HNSWIndex.Parameters())), .postgres, .milvus]
    /// The stores that rank text as well (Milvus does not).
    static let withHybridSearch: [StoreUnderTest] = [.embedded(.exact), .embedded(.hnsw(HNSWIndex.Parameters())), .postgres]

    var testDescription: String {
        switch self {
        case .embedded(.exact): "embedded, exact"
        case .embedded(.hnsw): "embedded, HNSW"
        case .postgres: "PostgreSQL + pgvector"
        case .milvus: "Milvus (Lite)"
        }
    }

    /// Where a new, empty store lives: a folder, or a PostgreSQL URL with a schema of its own.
    func newLocation() throws -> String {
        switch self {
        case .embedded: Self.newFolder().path
        case .postgres: try TestPostgres.freshURL()
        case .milvus: try TestMilvus.freshURL()
        }
    }

    func open(_ location: String) async throws -> CollectionStore {
        switch self {
        case .embedded(let kind): try CollectionStore.embedded(folder: URL(fileURLWithPath: location), index: kind)
        case .postgres: try await CollectionStore.postgres(url: location)
        case .milvus: try await CollectionStore.milvus(url: location)
        }
    }

    func make() async throws -> CollectionStore { try await open(newLocation()) }

    /// Takes the write lock of the store at `location` from a connection of its own, until `release`.
    func holdWriteLock(_ location: String) throws -> HeldLock {
        switch self {
        case .embedded:
            let database = try SQLiteDatabase(path: URL(fileURLWithPath: location).appendingPathComponent("loupe.sqlite").path)
            try database.execute("BEGIN IMMEDIATE")
            return HeldLock(after: .seconds(3)) { try database.execute("COMMIT") }
        case .postgres:
            // psql holds the lock in a session of its own, reading statements from a pipe until it is told to commit.
            let psql = Process(), input = Pipe()
            psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            psql.arguments = ["psql", "--no-psqlrc", "--quiet", location]
            psql.standardInput = input
            psql.standardOutput = FileHandle.nullDevice
            psql.standardError = FileHandle.nullDevice
            try psql.run()
            input.fileHandleForWriting.write(Data("BEGIN; LOCK TABLE loupe_items IN EXCLUSIVE MODE;\n".utf8))
            let granted = "SELECT count(*) FROM pg_locks WHERE relation = 'loupe_items'::regclass AND mode = 'ExclusiveLock' AND granted"
            while try TestPostgres.query(location, granted) != "1" {
                guard psql.isRunning else { throw TestPostgres.Failure(description: "psql could not take the lock") }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return HeldLock(after: .seconds(3)) {
                input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
                try input.fileHandleForWriting.close()
                psql.waitUntilExit()
            }
        case .milvus:
            throw TestPostgres.Failure(description: "Milvus has no locks to hold")
        }
    }

    /// A data folder no test has used.
    static func newFolder() -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("loupe-store-\(UUID())") }
}

/// Behaviour every store must have.
@Suite struct StoreBehaviourTests {
    static let kinds = StoreUnderTest.all

    static let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 4)

    static func item(_ id: String, _ vector: [Float], metadata: [String: String] = [:]) -> Item {
        Item(id: id, source: "/images/\(id)", contentHash: "hash-\(id)", metadata: metadata, vector: vector)
    }

    @Test(arguments: kinds)
    func itemsRoundTripAndSearchRanksByCosine(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("paintings", model: Self.model)
        try await store.upsert([
            Self.item("a", [1, 0, 0, 0], metadata: ["TITLE": "A"]), Self.item("b", [0.9, 0.1, 0, 0]), Self.item("c", [0, 1, 0, 0]),
            Self.item("d", [-1, 0, 0, 0]),
        ], into: "paintings")
        #expect(try await store.item("a", in: "paintings") == Self.item("a", [1, 0, 0, 0], metadata: ["TITLE": "A"]))
        let results = try await store.search("paintings", vector: [1, 0, 0, 0], model: Self.model, k: 3, filters: [])
        #expect(results.map(\.item.id) == ["a", "b", "c"])
        #expect(abs(results[0].relevance - 1) < 1e-6 && abs(results[2].relevance - 0.5) < 1e-6)
        #expect(try await store.collection("paintings")?.itemCount == 4)
    }

    /// A video's new frames replace its old ones in one step: the stale frames leave the index and the
    /// metadata search, and a failing write leaves the old frames in place.
    @Test(arguments: kinds)
    func upsertRemovingReplacesAGroupOfItemsAtOnce(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([Self.item("v@0", [1, 0, 0, 0], metadata: ["video": "v"]), Self.item("v@1", [0, 1, 0, 0], metadata: ["video": "v"]),
                          Self.item("v@2", [0, 0, 1, 0], metadata: ["video": "v"]), Self.item("photo", [0, 0, 0, 1])], into: "c")
        _ = try await store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 1, filters: [])  // loads the index
        try await store.upsert([Self.item("v@0", [0.9, 0.1, 0, 0], metadata: ["video": "v"]), Self.item("v@0.5", [0, 0.9, 0.1, 0], metadata: ["video": "v"])],
                         into: "c", removing: ["v@1", "v@2", "never-there"])
        let all = try await store.search("c", vector: [1, 1, 1, 1], model: Self.model, k: 10, filters: [])
        #expect(Set(all.map(\.item.id)) == ["v@0", "v@0.5", "photo"])
        #expect(try await store.search("c", vector: [0, 0, 1, 0], model: Self.model, k: 10, filters: [.equals(field: "video", value: "v")])
            .map(\.item.id).sorted() == ["v@0", "v@0.5"])
        #expect(try await store.collection("c")?.itemCount == 3)
        // A wrong-length vector fails the whole write: nothing is removed.
        await #expect(throws: StoreError.self) {
            try await store.upsert([Self.item("v@9", [1, 0])], into: "c", removing: ["v@0", "v@0.5"])
        }
        #expect(try await store.collection("c")?.itemCount == 3)
    }

    @Test(arguments: kinds)
    func upsertReplacesAndDeleteRemovesAlsoFromTheLoadedIndex(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([Self.item("a", [1, 0, 0, 0]), Self.item("b", [0, 1, 0, 0])], into: "c")
        _ = try await store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 1, filters: [])  // loads the index
        try await store.upsert([Self.item("a", [0, 0, 1, 0])], into: "c")
        #expect(try await store.search("c", vector: [0, 0, 1, 0], model: Self.model, k: 1, filters: []).first?.item.id == "a")
        try await store.deleteItem("a", in: "c")
        #expect(try await store.search("c", vector: [0, 0, 1, 0], model: Self.model, k: 5, filters: []).map(\.item.id) == ["b"])
        await #expect(throws: StoreError.noSuchItem(collection: "c", id: "a")) { try await store.deleteItem("a", in: "c") }
        #expect(try await store.collection("c")?.itemCount == 1)
    }

    /// One write naming an id twice stores the last, as writing them in turn would.
    @Test(arguments: kinds)
    func theLastOfTwoItemsWithOneIdWins(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([Self.item("a", [1, 0, 0, 0], metadata: ["v": "first"]), Self.item("b", [0, 1, 0, 0]),
                                Self.item("a", [0, 0, 1, 0], metadata: ["v": "second"])], into: "c")
        #expect(try await store.item("a", in: "c") == Self.item("a", [0, 0, 1, 0], metadata: ["v": "second"]))
        #expect(try await store.collection("c")?.itemCount == 2)
    }

    @Test(arguments: kinds)
    func aDifferentModelIsRefusedEverywhere(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        let other = ModelIdentity(id: "test/model", revision: "def", dimension: 4)
        await #expect(throws: StoreError.modelMismatch(collection: "c", expected: Self.model, got: other)) {
            try await store.openCollection("c", model: other)
        }
        await #expect(throws: StoreError.modelMismatch(collection: "c", expected: Self.model, got: other)) {
            try await store.search("c", vector: [1, 0, 0, 0], model: other, k: 1, filters: [])
        }
        await #expect(throws: StoreError.self) { try await store.upsert([Self.item("x", [1, 0, 0])], into: "c") }
        await #expect(throws: StoreError.self) { try await store.upsert([Self.item("x", [.nan, 0, 0, 0])], into: "c") }
    }

    @Test(arguments: kinds)
    func filtersOnEqualityAndNumericRanges(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([
            Self.item("early", [1, 0, 0, 0], metadata: ["DATE": "c. 1501-1510", "SCHOOL": "Italian"]),
            Self.item("late", [0.9, 0.1, 0, 0], metadata: ["DATE": "1889", "SCHOOL": "Dutch"]),
            Self.item("undated", [0.8, 0.2, 0, 0], metadata: ["DATE": "", "SCHOOL": "Dutch"]),
        ], into: "c")
        func ids(_ filters: [String]) async throws -> [String] {
            try await store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 10, filters: filters.map(MetadataFilter.init(parsing:))).map(\.item.id)
        }
        await #expect(try ids(["SCHOOL=Dutch"]) == ["late", "undated"])
        await #expect(try ids(["DATE>=1800"]) == ["late"])
        await #expect(try ids(["DATE<=1600"]) == ["early"])
        await #expect(try ids(["SCHOOL=Dutch", "DATE>=1800"]) == ["late"])
        await #expect(try ids(["SCHOOL=Flemish"]).isEmpty)
        #expect(try MetadataFilter(parsing: " DATE >= -1.5 ") == .atLeast(field: "DATE", value: -1.5))
        #expect(try MetadataFilter(parsing: "NOTE=a>=b") == .equals(field: "NOTE", value: "a>=b"))
        for bad in ["", "=x", " \t=x", "DATE>=soon", "DATE>=1e3", "DATE>=", "DATE<5", "DATE>5", "no operator"] {
            #expect(throws: StoreError.invalidFilter(bad)) { try MetadataFilter(parsing: bad) }
        }
    }

    /// Filters at 1 %, 10 % and 50 % of 5,000 clustered items: every result matches, k results come back
    /// whenever k items match, and they are the exact best matches (PostgreSQL's iterative scan, the
    /// embedded store's exact comparison for selective filters or its filtered graph walk).
    @Test(arguments: kinds)
    func filteredSearchesReturnKMatchingItems(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 32)
        _ = try await store.openCollection("many", model: model)
        let vectors = ClusteredVectors.make(count: 5_000, dimension: 32, clusters: 50, seed: 7)
        let items = vectors.enumerated().map { index, vector in
            Self.item("item-\(index)", vector, metadata: ["ONE": "\(index % 100)", "TEN": "\(index % 10)", "HALF": "\(index % 2)"])
        }
        for start in stride(from: 0, to: items.count, by: 1_000) { try await store.upsert(Array(items[start..<(start + 1_000)]), into: "many") }
        let query = vectors[123].enumerated().map { $0.element + Float($0.offset % 3) * 0.01 }
        for (filter, divisor) in [("ONE=7", 100), ("TEN=3", 10), ("HALF=1", 2)] {
            let parsed = try MetadataFilter(parsing: filter)
            let results = try await store.search("many", vector: query, model: model, k: 20, filters: [parsed])
            #expect(results.count == 20, "\(filter)")
            #expect(results.allSatisfy { parsed.matches($0.item.metadata) }, "\(filter)")
            // The exact answer among the matching items.
            let matching = items.enumerated().filter { $0.offset % divisor == Int(filter.split(separator: "=")[1])! }
            var exact = FlatIndex(dimension: 32)
            for (index, item) in matching { try exact.add(key: Int64(index), vector: item.vector) }
            let truth = Set(try exact.search(query, k: 20).map { "item-\($0.key)" })
            let found = results.filter { truth.contains($0.item.id) }.count
            #expect(found >= 19, "\(filter): \(found) of the exact 20")
        }
    }

    /// Compact vectors in the exact index and in the graph: after rescoring from the stored float32
    /// vectors, recall@10 against exact float32 answers is at least 0.99 for float16 and int8 (0.95 for
    /// the graph, whose own recall is below 1), with and without a filter, and the similarities returned
    /// are the float32 ones.
    @Test(arguments: [VectorPrecision.float16, .int8], [IndexKind.exact, .hnsw(HNSWIndex.Parameters())])
    func compactVectorsKeepRecallAfterRescoring(_ precision: VectorPrecision, _ kind: IndexKind) async throws {
        let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 128)
        let vectors = ClusteredVectors.make(count: 4_000, dimension: 128, clusters: 40, seed: 11)
        let queries = ClusteredVectors.make(count: 50, dimension: 128, clusters: 40, seed: 12)
        let items = vectors.enumerated().map { Self.item("item-\($0.offset)", $0.element, metadata: ["HALF": "\($0.offset % 2)"]) }
        var stores = [CollectionStore]()
        for (vectors, index) in [(VectorPrecision.float32, IndexKind.exact), (precision, kind)] {
            let store = try CollectionStore.embedded(folder: StoreUnderTest.newFolder(), index: index, vectors: vectors)
            _ = try await store.openCollection("c", model: model)
            try await store.upsert(items, into: "c")
            stores.append(store)
        }
        for filters in [[], [try MetadataFilter(parsing: "HALF=1")]] {
            var found = 0
            for query in queries {
                let truth = try await stores[0].search("c", vector: query, model: model, k: 10, filters: filters)
                let compact = try await stores[1].search("c", vector: query, model: model, k: 10, filters: filters)
                found += Set(compact.map(\.item.id)).intersection(truth.map(\.item.id)).count
                for result in compact {
                    let stored = vectors[Int(result.item.id.dropFirst("item-".count))!]
                    let cosine = zip(stored, query).reduce(0) { $0 + $1.0 * $1.1 }
                        / (stored.reduce(0) { $0 + $1 * $1 }.squareRoot() * query.reduce(0) { $0 + $1 * $1 }.squareRoot())
                    #expect(abs(result.similarity - cosine) < 1e-5)
                }
            }
            #expect(Double(found) / Double(10 * queries.count) >= (kind == .exact ? 0.99 : 0.95), "\(precision) \(filters): \(found)")
        }
        #expect(precision.bytes(dimension: 128) <= VectorPrecision.float32.bytes(dimension: 128) / 2)
    }

    /// The pattern the API document gives for filters accepts exactly what the parser accepts.
    @Test func theFilterPatternMatchesTheParser() async throws {
        let pattern = try NSRegularExpression(pattern: MetadataFilter.pattern)
        let alphabet = Array("=<> \t-.09aZ\n\u{85}é")
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<5000 {
            let text = String((0..<Int.random(in: 0...10, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            let matched = pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            #expect(matched == ((try? MetadataFilter(parsing: text)) != nil), "\(text.debugDescription)")
        }
    }

    @Test(arguments: StoreUnderTest.withHybridSearch)
    func hybridSearchLiftsMetadataMatches(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([
            Self.item("near", [1, 0, 0, 0], metadata: ["TITLE": "Harbour at dawn"]),
            Self.item("house", [0.6, 0.8, 0, 0], metadata: ["TITLE": "The blue house", "AUTHOR": "Renoir"]),
            Self.item("far", [0, 0, 1, 0], metadata: ["TITLE": "Still life"]),
        ], into: "c")
        let plain = try await store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 3, filters: []).map(\.item.id)
        #expect(plain == ["near", "house", "far"])
        let hybrid = try await store.hybridSearch("c", vector: [1, 0, 0, 0], text: "a blue house", model: Self.model, k: 3, filters: [], vectorWeight: 0.5)
        #expect(hybrid.map(\.item.id) == ["house", "near", "far"])
        // score = 0.5 · (1 + 0.6) / 2 + 0.5 · 1 for the only text match.
        #expect(abs(hybrid[0].relevance - 0.9) < 1e-5)
        #expect(abs(hybrid[1].relevance - 0.5) < 1e-5)
        // Weight 1 is plain vector search; accents and case do not matter to the text match.
        #expect(try await store.hybridSearch("c", vector: [1, 0, 0, 0], text: "house", model: Self.model, k: 3, filters: [], vectorWeight: 1).map(\.item.id) == plain)
        #expect(try await store.hybridSearch("c", vector: [0, 0, 1, 0], text: "RÉNOIR", model: Self.model, k: 1, filters: [], vectorWeight: 0.2).first?.item.id == "house")
        // Text that looks like query syntax is only words.
        for hostile in ["\"", "NEAR(blue house)", "title:* OR", "'); DROP TABLE items; --", "", "***"] {
            #expect(try await store.hybridSearch("c", vector: [1, 0, 0, 0], text: hostile, model: Self.model, k: 3, filters: [], vectorWeight: 0.5).count == 3)
        }
        // Deleted items leave the text index too.
        try await store.deleteItem("house", in: "c")
        #expect(try await store.hybridSearch("c", vector: [1, 0, 0, 0], text: "blue house", model: Self.model, k: 3, filters: [], vectorWeight: 0.5)
            .map(\.item.id) == ["near", "far"])
    }

    @Test(arguments: kinds)
    func hostileNamesAndValuesAreData(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        for name in ["", "a b", "x'; DROP TABLE items; --", "../etc", String(repeating: "n", count: 65)] {
            await #expect(throws: StoreError.invalidName(name)) { try await store.openCollection(name, model: Self.model) }
        }
        _ = try await store.openCollection("c", model: Self.model)
        let hostile = ["TITLE": "'); DROP TABLE items; --", "NOTE": "<script>alert(1)</script>", "BIG": String(repeating: "é", count: 100_000)]
        try await store.upsert([Self.item("x'; DELETE FROM items; --", [1, 0, 0, 0], metadata: hostile)], into: "c")
        #expect(try await store.item("x'; DELETE FROM items; --", in: "c")?.metadata == hostile)
        // What array literals, JSON and filter expressions give meaning to is plain text too.
        let tricky = ["{\"a,b\"}\\ NULL", "NULL", " ", "a\\\"b\n\t}", "[1,2]"]
        let items = tricky.map { text in
            Item(id: text, source: text, contentHash: text, metadata: [text: text], vector: [1, 0, 0, 0], thumbnail: Data(text.utf8))
        }
        try await store.upsert(items, into: "c")
        for item in items {
            #expect(try await store.item(item.id, in: "c") == Item(id: item.id, source: item.source, contentHash: item.contentHash,
                                                                     metadata: item.metadata, vector: item.vector))
            #expect(try await store.thumbnail(item.id, in: "c") == item.thumbnail)
        }
        try await store.upsert([], into: "c", removing: Array(tricky.prefix(2)))
        #expect(Set(try await store.contentHashes(in: "c").keys) == Set(["x'; DELETE FROM items; --"] + tricky.dropFirst(2)))
        #expect(try await store.collections().map(\.name) == ["c"])
    }

    /// A NUL can never cut an id short: `victim\0attacker` is refused, never stored as or found for `victim`.
    @Test(arguments: kinds)
    func textWithNULIsRefusedAndNeverAliasesAnotherItem(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        try await store.upsert([Self.item("victim", [1, 0, 0, 0], metadata: ["TITLE": "kept"])], into: "c")
        let isNULRefusal = { (error: any Error) -> Bool in
            guard case StoreError.invalidText(let message) = error else { return false }
            return message.contains("NUL")
        }
        await #expect(performing: { try await store.upsert([Self.item("victim\0attacker", [0, 1, 0, 0])], into: "c") }, throws: isNULRefusal)
        await #expect(performing: { try await store.upsert([Self.item("other", [0, 1, 0, 0], metadata: ["TI\0TLE": "x"])], into: "c") }, throws: isNULRefusal)
        await #expect(performing: { try await store.upsert([Self.item("other", [0, 1, 0, 0], metadata: ["TITLE": "x\0y"])], into: "c") }, throws: isNULRefusal)
        await #expect(performing: { try await store.item("victim\0anything", in: "c") }, throws: isNULRefusal)
        await #expect(performing: { try await store.thumbnail("victim\0anything", in: "c") }, throws: isNULRefusal)
        await #expect(performing: { try await store.deleteItem("victim\0anything", in: "c") }, throws: isNULRefusal)
        #expect(try await store.item("victim", in: "c")?.vector == [1, 0, 0, 0])
        #expect(try await store.item("victim", in: "c")?.metadata == ["TITLE": "kept"])
        #expect(try await store.collection("c")?.itemCount == 1)
    }

    @Test(arguments: kinds)
    func thumbnailsHashesAndPagedListingsRoundTrip(_ kind: StoreUnderTest) async throws {
        let store = try await kind.make()
        _ = try await store.openCollection("c", model: Self.model)
        // Every byte value, including NUL, survives as a thumbnail.
        let thumbnail = Data((0..<1024).map { UInt8($0 % 256) })
        let items = (0..<2345).map { i in
            Item(id: String(format: "item-%05d", i), source: "/images/\(i).jpg", contentHash: "h\(i)", metadata: ["N": "\(i)"],
                 vector: [Float(i), 1, -0.5, 1e-7], thumbnail: i == 7 ? thumbnail : nil)
        }
        // Written last to first, so no store can page in the order the rows arrived and pass.
        for start in stride(from: 0, to: items.count, by: 500).reversed() {
            try await store.upsert(Array(items[start..<min(start + 500, items.count)].reversed()), into: "c")
        }
        #expect(try await store.thumbnail("item-00007", in: "c") == thumbnail)
        #expect(try await store.thumbnail("item-00008", in: "c") == nil)
        #expect(try await store.thumbnail("missing", in: "c") == nil)
        #expect(try await store.item("item-00007", in: "c")?.thumbnail == nil)  // items come without it
        #expect(try await store.contentHashes(in: "c") == Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0.contentHash) }))
        var listed = [Item]()
        try await store.forEachItem(in: "c") { listed.append($0) }
        #expect(listed.map(\.id) == items.map(\.id))
        #expect(listed.map(\.vector) == items.map(\.vector))  // exactly, not nearly
        await #expect(throws: StoreError.noSuchCollection("nope")) { try await store.forEachItem(in: "nope") { _ in } }
        // A failed batch writes nothing.
        await #expect(throws: StoreError.self) {
            try await store.upsert([Self.item("fine", [1, 0, 0, 0]), Self.item("short", [1, 0])], into: "c")
        }
        #expect(try await store.item("fine", in: "c") == nil)
        await #expect(throws: StoreError.noSuchCollection("nope")) { try await store.upsert([Self.item("x", [1, 0, 0, 0])], into: "nope") }
    }

    @Test(arguments: kinds)
    func everythingSurvivesReopening(_ kind: StoreUnderTest) async throws {
        let location = try kind.newLocation()
        let vectors: [[Float]] = (0..<50).map { i in (0..<4).map { Float(sin(Double(i * 4 + $0))) } }
        var before: [String] = []
        do {
            let store = try await kind.open(location)
            _ = try await store.openCollection("c", model: Self.model)
            try await store.upsert(vectors.enumerated().map { Self.item("i\($0.offset)", $0.element) }, into: "c")
            before = try await store.search("c", vector: [0.3, -0.2, 0.5, 0.1], model: Self.model, k: 10, filters: []).map(\.item.id)
            try await store.flush()
        }
        let reopened = try await kind.open(location)
        #expect(try await reopened.search("c", vector: [0.3, -0.2, 0.5, 0.1], model: Self.model, k: 10, filters: []).map(\.item.id) == before)
        #expect(try await reopened.contentHashes(in: "c").count == 50)
        try await reopened.deleteCollection("c")
        #expect(try await reopened.collections().isEmpty)
        await #expect(throws: StoreError.noSuchCollection("c")) { try await reopened.deleteCollection("c") }
    }
}

/// No store call holds a thread of Swift's concurrency pool while it waits: with the database's write
/// lock held by another connection, more writes than the pool has threads wait for it, and other work
/// still runs meanwhile. (Were the waits on the pool, the probe would run only after every write gave up
/// at its lock timeout, and the writes would have failed.)
@Suite struct StoreConcurrencyTests {
    @Test(arguments: [StoreUnderTest.embedded(.exact), .postgres])
    func writesWaitingForALockLeaveThePoolFree(_ kind: StoreUnderTest) async throws {
        let location = try kind.newLocation()
        let store = try await kind.open(location)
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        let lock = try kind.holdWriteLock(location)
        let writers = 3 * ProcessInfo.processInfo.activeProcessorCount
        let events = Outcomes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    try await store.upsert([StoreBehaviourTests.item("w\(writer)", [1, Float(writer), 0, 0])], into: "c")
                    events.add("write")
                }
            }
            // Gives the writers time to reach the lock: the probe must not win only by starting first.
            try await Task.sleep(for: .milliseconds(200))
            let probe = Task.detached { (0..<1000).reduce(0, +) }
            #expect(await probe.value == 499_500)
            events.add("probe")
            try lock.release()
            try await group.waitForAll()
        }
        #expect(events.values.first == "probe")
        #expect(events.values.count == writers + 1)
        #expect(try await store.collection("c")?.itemCount == writers)
    }
}

@Suite struct EmbeddedMigrationTests {
    /// A data folder from before the full-text index (schema version 3) gains it, filled from the items.
    @Test func aVersionThreeDatabaseGainsTheTextIndex() async throws {
        let folder = StoreUnderTest.newFolder()
        let model = StoreBehaviourTests.model
        do {
            let store = try CollectionStore.embedded(folder: folder)
            _ = try await store.openCollection("c", model: model)
            try await store.upsert([StoreBehaviourTests.item("house", [0, 1, 0, 0], metadata: ["TITLE": "The blue house"]),
                              StoreBehaviourTests.item("near", [1, 0, 0, 0], metadata: ["TITLE": "Harbour"])], into: "c")
            let database = try SQLiteDatabase(path: folder.appendingPathComponent("loupe.sqlite").path)
            try database.execute("DROP TABLE items_text")
            try database.execute("PRAGMA user_version = 3")
        }
        let reopened = try CollectionStore.embedded(folder: folder)
        let hybrid = try await reopened.hybridSearch("c", vector: [1, 0, 0, 0], text: "blue house", model: model, k: 2, filters: [], vectorWeight: 0.3)
        #expect(hybrid.map(\.item.id) == ["house", "near"])
    }
}

@Suite struct HNSWPersistenceTests {
    /// Items added to an HNSW store go into the graph as they arrive: a flush without any search saves it,
    /// and a reopened store searches from the saved file.
    @Test func graphsAreKeptCurrentWhileItemsArrive() async throws {
        let folder = StoreUnderTest.newFolder()
        let kind = IndexKind.hnsw(HNSWIndex.Parameters())
        let model = StoreBehaviourTests.model
        let vectors: [[Float]] = (0..<200).map { i in (0..<4).map { Float(sin(Double(i * 5 + $0))) } }
        do {
            let store = try CollectionStore.embedded(folder: folder, index: kind)
            _ = try await store.openCollection("c", model: model)
            for start in stride(from: 0, to: 200, by: 50) {
                try await store.upsert((start..<start + 50).map { StoreBehaviourTests.item("i\($0)", vectors[$0]) }, into: "c")
            }
            try await store.flush()
        }
        // Four changes after the collection's random first generation.
        let saved = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("indexes").path)
        #expect(saved.count == 1)
        let graph = try HNSWIndex.read(from: folder.appendingPathComponent("indexes/\(saved[0])"))
        #expect(graph.count == 200)
        let reopened = try CollectionStore.embedded(folder: folder, index: kind)
        #expect(try await reopened.search("c", vector: vectors[17], model: model, k: 1, filters: []).first?.item.id == "i17")
    }

    /// The graph is saved under the collection's generation and read back; a file that missed a change is
    /// not used.
    @Test func savedGraphsAreReusedOnlyWhileCurrent() async throws {
        let folder = StoreUnderTest.newFolder()
        let kind = IndexKind.hnsw(HNSWIndex.Parameters())
        let model = StoreBehaviourTests.model
        let vectors: [[Float]] = (0..<300).map { i in (0..<4).map { Float(cos(Double(i * 7 + $0))) } }
        let query: [Float] = [0.2, 0.4, -0.1, 0.3]
        var before: [String] = []
        do {
            let store = try CollectionStore.embedded(folder: folder, index: kind)
            _ = try await store.openCollection("c", model: model)
            try await store.upsert(vectors.enumerated().map { StoreBehaviourTests.item("i\($0.offset)", $0.element) }, into: "c")
            before = try await store.search("c", vector: query, model: model, k: 5, filters: []).map(\.item.id)
            try await store.flush()
        }
        let files = { try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("indexes").path).sorted() }
        /// The generations of the saved graphs, from their names `c.<generation>.hnsw`.
        let generations = { try files().map { Int64($0.split(separator: ".")[1]) } }
        let first = try #require(try generations().first ?? nil)
        #expect(try generations() == [first])
        do {
            let reopened = try CollectionStore.embedded(folder: folder, index: kind)
            #expect(try await reopened.search("c", vector: query, model: model, k: 5, filters: []).map(\.item.id) == before)
            // A change without a flush: the saved graph is now stale.
            try await reopened.upsert([StoreBehaviourTests.item("new", query)], into: "c")
        }
        let third = try CollectionStore.embedded(folder: folder, index: kind)
        #expect(try await third.search("c", vector: query, model: model, k: 1, filters: []).first?.item.id == "new")
        try await third.flush()
        #expect(try generations() == [first + 1])
        try await third.deleteCollection("c")
        #expect(try files().isEmpty)
    }
}

/// What threads report, gathered under a lock.
final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var list = [String]()
    var values: [String] { lock.withLock { list } }
    func add(_ value: String) { lock.withLock { list.append(value) } }
}

/// A lock another connection holds: released by `release`, or on its own after a while, so that a store
/// blocking the pool makes the test fail instead of hang.
final class HeldLock: @unchecked Sendable {
    private let lock = NSLock()
    private var unlock: (() throws -> Void)?

    init(after timeout: DispatchTimeInterval, _ unlock: @escaping () throws -> Void) {
        self.unlock = unlock
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { try? self.release() }
    }

    func release() throws {
        try lock.withLock {
            defer { unlock = nil }
            try unlock?()
        }
    }
}

final class OpenedStores: @unchecked Sendable {
    private let lock = NSLock()
    private var list = [CollectionStore]()
    var values: [CollectionStore] { lock.withLock { list } }
    func add(_ store: CollectionStore) { lock.withLock { list.append(store) } }
}

/// A server and a `loupe ingest` share one data folder: each process's store sees what the other wrote.
@Suite struct SharedDataFolderTests {
    @Test(arguments: [IndexKind.exact, .hnsw(HNSWIndex.Parameters())])
    func aStoreSeesItemsAnotherProcessAddedOrDeleted(_ kind: IndexKind) async throws {
        let folder = StoreUnderTest.newFolder()
        let model = StoreBehaviourTests.model
        let server = try CollectionStore.embedded(folder: folder, index: kind)
        _ = try await server.openCollection("s", model: model)
        try await server.upsert([StoreBehaviourTests.item("first", [0, 0, 1, 0])], into: "s")
        #expect(try await server.search("s", vector: [1, 0, 0, 0], model: model, k: 10, filters: []).map(\.item.id) == ["first"])
        // Another process (its own connection and index) adds items, then the server adds one of its own.
        let ingest = try CollectionStore.embedded(folder: folder, index: kind)
        try await ingest.upsert((0..<20).map { StoreBehaviourTests.item("added-\($0)", [1, Float($0) / 100, 0, 0]) }, into: "s")
        #expect(try await server.search("s", vector: [1, 0, 0, 0], model: model, k: 1, filters: []).map(\.item.id) == ["added-0"])
        try await server.upsert([StoreBehaviourTests.item("upload", [0, 1, 0, 0])], into: "s")
        try await ingest.upsert([StoreBehaviourTests.item("late", [0, 0, 0, 1])], into: "s")
        try await server.upsert([StoreBehaviourTests.item("upload-2", [0, 1, 0.1, 0])], into: "s")
        #expect(try await server.search("s", vector: [1, 1, 1, 1], model: model, k: 30, filters: []).count == 24)
        try await ingest.deleteItem("added-0", in: "s")
        #expect(try await server.search("s", vector: [1, 0, 0, 0], model: model, k: 1, filters: []).map(\.item.id) == ["added-1"])
        // Deleted and made again elsewhere: never answered from the old index.
        try await ingest.deleteCollection("s")
        _ = try await ingest.openCollection("s", model: model)
        try await ingest.upsert([StoreBehaviourTests.item("new", [0, 0, 1, 0])], into: "s")
        #expect(try await server.search("s", vector: [1, 0, 0, 0], model: model, k: 10, filters: []).map(\.item.id) == ["new"])
    }

    /// Two ingests started together on a new data folder: both migrate, create the collection and add
    /// their items; neither fails on the other's schema steps (10 trials, the two released at once).
    @Test func twoStoresOpeningANewFolderAtOnceBothSucceed() async throws {
        for _ in 0..<10 {
            let folder = StoreUnderTest.newFolder()
            let start = DispatchSemaphore(value: 0)
            let finished = DispatchGroup()
            let results = Outcomes()
            let opened = OpenedStores()
            for _ in 0..<2 {
                finished.enter()
                Thread {
                    start.wait()
                    do {
                        opened.add(try CollectionStore.embedded(folder: folder))
                    } catch {
                        results.add("\(error)")
                    }
                    finished.leave()
                }.start()
            }
            start.signal()
            start.signal()
            finished.wait()
            // Both create the collection and write at once.
            await withTaskGroup(of: Void.self) { group in
                for (process, store) in opened.values.enumerated() {
                    group.addTask {
                        do {
                            _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
                            try await store.upsert([StoreBehaviourTests.item("from-\(process)", [1, Float(process), 0, 0])], into: "c")
                            results.add("ok")
                        } catch {
                            results.add("\(error)")
                        }
                    }
                }
            }
            #expect(results.values == ["ok", "ok"])
            await #expect(try CollectionStore.embedded(folder: folder).collection("c")?.itemCount == 2)
        }
    }
}

@Suite struct FlatIndexTests {
    /// Compact precisions through adds, replacements and removals: the same neighbours as float32 and
    /// similarities within float16's or int8's rounding.
    @Test(arguments: [VectorPrecision.float16, .int8])
    func compactIndexesTrackChanges(_ precision: VectorPrecision) throws {
        var full = FlatIndex(dimension: 48), compact = FlatIndex(dimension: 48, precision: precision)
        let vectors = ClusteredVectors.make(count: 400, dimension: 48, clusters: 8, seed: 5)
        for (key, vector) in vectors.enumerated() {
            try full.add(key: Int64(key), vector: vector)
            try compact.add(key: Int64(key), vector: vector)
        }
        for key in stride(from: 0, to: 400, by: 3) {
            full.remove(key: Int64(key))
            compact.remove(key: Int64(key))
        }
        for key in stride(from: 1, to: 400, by: 5) {
            try full.add(key: Int64(key), vector: vectors[(key * 7) % 400])
            try compact.add(key: Int64(key), vector: vectors[(key * 7) % 400])
        }
        #expect(compact.count == full.count)
        let tolerance: Float = precision == .float16 ? 2e-3 : 2e-2
        for query in vectors.prefix(20) {
            let truth = try full.search(query, k: 400)
            let found = try compact.search(query, k: 400)
            #expect(Set(found.map(\.key)) == Set(truth.map(\.key)))
            let exact = Dictionary(uniqueKeysWithValues: truth.map { ($0.key, $0.similarity) })
            #expect(found.allSatisfy { abs($0.similarity - exact[$0.key]!) <= tolerance })
        }
    }

    @Test func exactSearchEqualsBruteForce() async throws {
        var index = FlatIndex(dimension: 32)
        var vectors = [Int64: [Float]]()
        var state: UInt64 = 9
        func random() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
        for key in 0..<500 {
            let vector = (0..<32).map { _ in random() }
            vectors[Int64(key)] = vector
            try index.add(key: Int64(key), vector: vector)
        }
        for key in stride(from: 0, to: 500, by: 7) {
            index.remove(key: Int64(key))
            vectors[Int64(key)] = nil
        }
        let query = (0..<32).map { _ in random() }
        func cosine(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).map(*).reduce(0, +) / (sqrt(a.map { $0 * $0 }.reduce(0, +)) * sqrt(b.map { $0 * $0 }.reduce(0, +)))
        }
        let expected = vectors.map { ($0.key, cosine($0.value, query)) }.sorted { $0.1 > $1.1 }.prefix(10).map(\.0)
        #expect(try index.search(query, k: 10).map(\.key) == Array(expected))
        #expect(index.count == vectors.count)
        #expect(throws: VectorIndexError.dimensionMismatch(expected: 32, got: 3)) { try index.search([1, 2, 3], k: 1) }
        #expect(throws: VectorIndexError.notNormalized) { try index.add(key: 1, vector: [Float](repeating: 0, count: 32)) }
    }
}

/// What only the Milvus store has.
@Suite struct MilvusStoreTests {
    static func store(requestBytes: Int) async throws -> CollectionStore {
        CollectionStore(try await MilvusStore(url: try TestMilvus.freshURL(), parameters: .init(requestBytes: requestBytes)))
    }

    static func item(_ id: String, thumbnail bytes: Int) -> Item {
        Item(id: id, source: "/images/\(id)", contentHash: "hash-\(id)", metadata: ["n": id], vector: [1, Float(id.count), 0, 0],
             thumbnail: Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
    }

    /// A write larger than one request is sent in several and lands whole, thumbnails included.
    @Test func writesLargerThanOneRequestLandWhole() async throws {
        let store = try await Self.store(requestBytes: 4096)
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        let items = (0..<9).map { Self.item("item-\($0)", thumbnail: 1500) }
        try await store.upsert(items, into: "c")
        #expect(try await store.contentHashes(in: "c") == Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0.contentHash) }))
        for item in items { #expect(try await store.thumbnail(item.id, in: "c") == item.thumbnail) }
    }

    /// A write that fails after its first request leaves its first item without a content hash, so an
    /// ingest run again takes nothing of it for unchanged; the same write then lands whole.
    @Test func aWriteFailingHalfWayLeavesItsFirstItemUnfinished() async throws {
        let store = try await Self.store(requestBytes: 4096)
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        let items = (0..<4).map { Self.item("item-\($0)", thumbnail: 1500) }
        // Milvus refuses an id longer than its VARCHAR (65,535 bytes): the last request fails.
        let tooLong = Self.item(String(repeating: "x", count: 70_000), thumbnail: 10)
        await #expect(throws: StoreError.self) { try await store.upsert(items + [tooLong], into: "c") }
        let stored = try await store.contentHashes(in: "c")
        #expect(stored["item-0"] == "")
        try await store.upsert(items, into: "c")
        #expect(try await store.contentHashes(in: "c") == Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0.contentHash) }))
    }

    /// A thumbnail whose base64 is longer than a VARCHAR is left out; the item is stored.
    @Test func aThumbnailTooLargeForMilvusIsLeftOut() async throws {
        let store = try await Self.store(requestBytes: 16 << 20)
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        try await store.upsert([Self.item("big", thumbnail: 60_000), Self.item("small", thumbnail: 49_000)], into: "c")
        #expect(try await store.thumbnail("big", in: "c") == nil)
        #expect(try await store.thumbnail("small", in: "c")?.count == 49_000)
        #expect(try await store.item("big", in: "c")?.contentHash == "hash-big")
    }

    @Test func collectionNamesMapToMilvusNamesOneToOne() {
        for name in ["paintings", "a-b", "a_b", "a_db", "a__d", "-", "_", "x-_-y"] {
            let milvusName = MilvusNames.collection(name)
            #expect(milvusName.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }, "\(milvusName)")
            #expect(MilvusNames.loupeName(milvusName) == name)
        }
        #expect(MilvusNames.collection("a-b") != MilvusNames.collection("a_b"))
        #expect(MilvusNames.loupeName("someone_elses") == nil && MilvusNames.loupeName("loupe_a_x") == nil)
        #expect(MilvusNames.literal("say \"hi\"\\\n") == #""say \"hi\"\\\n""#)
    }

    /// `milvus+https://` reaches a cluster behind TLS (here nginx in front of Milvus Lite) when its
    /// certificate is trusted, and refuses one that is not, or a plain-text address to a TLS port.
    @Test func aClusterBehindTLSIsReachedOverMilvusHTTPS() async throws {
        let plain = try TestMilvus.freshURL()
        let upstream = try #require(plain.firstMatch(of: /milvus:\/\/([^\/]+)\//)?.1)
        let proxy = try TLSProxy.grpc(upstream: String(upstream))
        defer { proxy.stop() }
        let database = plain.split(separator: "/").last.map(String.init) ?? ""
        let secure = "milvus+https://127.0.0.1:\(proxy.port)/\(database)"
        let store = try await CollectionStore.milvus(url: secure, certificateAuthorities: proxy.certificate)
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        try await store.upsert([StoreBehaviourTests.item("a", [1, 0, 0, 0]), StoreBehaviourTests.item("b", [0, 1, 0, 0])], into: "c")
        #expect(try await store.search("c", vector: [0, 1, 0, 0], model: StoreBehaviourTests.model, k: 1, filters: []).first?.item.id == "b")
        // The same database read without TLS: the proxy changed nothing.
        #expect(try await CollectionStore.milvus(url: plain).collection("c")?.itemCount == 2)
        await #expect(throws: StoreError.self) { _ = try await CollectionStore.milvus(url: secure, certificateAuthorities: nil) }
        await #expect(throws: StoreError.self) { _ = try await CollectionStore.milvus(url: "milvus://127.0.0.1:\(proxy.port)/\(database)") }
        #expect(try MilvusStore.Address(url: "milvus+https://example.com:443/db") .tls)
        #expect(try !MilvusStore.Address(url: "milvus://example.com:19530").tls)
    }

    @Test func hybridSearchIsRefusedClearly() async throws {
        let store = try await StoreUnderTest.milvus.make()
        _ = try await store.openCollection("c", model: StoreBehaviourTests.model)
        await #expect(throws: StoreError.unsupported("Milvus ranks no text in Loupe's collections: hybrid search needs the embedded store or PostgreSQL")) {
            try await store.hybridSearch("c", vector: [1, 0, 0, 0], text: "house", model: StoreBehaviourTests.model, k: 3, filters: [], vectorWeight: 0.5)
        }
    }
}
