import Foundation
import Testing

@testable import ImageCollections
@testable import VectorIndex

/// Behaviour every store must have, with either index. The embedded store runs it here.
@Suite struct EmbeddedStoreTests {
    static let kinds: [IndexKind] = [.exact, .hnsw(HNSWIndex.Parameters())]

    static func temporaryStore(_ kind: IndexKind = .exact) throws -> EmbeddedStore {
        try EmbeddedStore(folder: FileManager.default.temporaryDirectory.appendingPathComponent("loupe-store-\(UUID())"), index: kind)
    }

    static let model = ModelIdentity(id: "test/model", revision: "abc", dimension: 4)

    static func item(_ id: String, _ vector: [Float], metadata: [String: String] = [:]) -> Item {
        Item(id: id, source: "/images/\(id)", contentHash: "hash-\(id)", metadata: metadata, vector: vector)
    }

    @Test(arguments: kinds)
    func itemsRoundTripAndSearchRanksByCosine(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        _ = try store.openCollection("paintings", model: Self.model)
        try store.upsert([
            Self.item("a", [1, 0, 0, 0], metadata: ["TITLE": "A"]), Self.item("b", [0.9, 0.1, 0, 0]), Self.item("c", [0, 1, 0, 0]),
            Self.item("d", [-1, 0, 0, 0]),
        ], into: "paintings")
        #expect(try store.item("a", in: "paintings") == Self.item("a", [1, 0, 0, 0], metadata: ["TITLE": "A"]))
        let results = try store.search("paintings", vector: [1, 0, 0, 0], model: Self.model, k: 3, filters: [])
        #expect(results.map(\.item.id) == ["a", "b", "c"])
        #expect(abs(results[0].relevance - 1) < 1e-6 && abs(results[2].relevance - 0.5) < 1e-6)
        #expect(try store.collection("paintings")?.itemCount == 4)
    }

    @Test(arguments: kinds)
    func upsertReplacesAndDeleteRemovesAlsoFromTheLoadedIndex(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        _ = try store.openCollection("c", model: Self.model)
        try store.upsert([Self.item("a", [1, 0, 0, 0]), Self.item("b", [0, 1, 0, 0])], into: "c")
        _ = try store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 1, filters: [])  // loads the index
        try store.upsert([Self.item("a", [0, 0, 1, 0])], into: "c")
        #expect(try store.search("c", vector: [0, 0, 1, 0], model: Self.model, k: 1, filters: []).first?.item.id == "a")
        try store.deleteItem("a", in: "c")
        #expect(try store.search("c", vector: [0, 0, 1, 0], model: Self.model, k: 5, filters: []).map(\.item.id) == ["b"])
        #expect(throws: StoreError.noSuchItem(collection: "c", id: "a")) { try store.deleteItem("a", in: "c") }
        #expect(try store.collection("c")?.itemCount == 1)
    }

    @Test(arguments: kinds)
    func aDifferentModelIsRefusedEverywhere(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        _ = try store.openCollection("c", model: Self.model)
        let other = ModelIdentity(id: "test/model", revision: "def", dimension: 4)
        #expect(throws: StoreError.modelMismatch(collection: "c", expected: Self.model, got: other)) {
            try store.openCollection("c", model: other)
        }
        #expect(throws: StoreError.modelMismatch(collection: "c", expected: Self.model, got: other)) {
            try store.search("c", vector: [1, 0, 0, 0], model: other, k: 1, filters: [])
        }
        #expect(throws: StoreError.self) { try store.upsert([Self.item("x", [1, 0, 0])], into: "c") }
        #expect(throws: StoreError.self) { try store.upsert([Self.item("x", [.nan, 0, 0, 0])], into: "c") }
    }

    @Test(arguments: kinds)
    func filtersOnEqualityAndNumericRanges(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        _ = try store.openCollection("c", model: Self.model)
        try store.upsert([
            Self.item("early", [1, 0, 0, 0], metadata: ["DATE": "c. 1501-1510", "SCHOOL": "Italian"]),
            Self.item("late", [0.9, 0.1, 0, 0], metadata: ["DATE": "1889", "SCHOOL": "Dutch"]),
            Self.item("undated", [0.8, 0.2, 0, 0], metadata: ["DATE": "", "SCHOOL": "Dutch"]),
        ], into: "c")
        func ids(_ filters: [String]) throws -> [String] {
            try store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 10, filters: filters.map(MetadataFilter.init(parsing:))).map(\.item.id)
        }
        #expect(try ids(["SCHOOL=Dutch"]) == ["late", "undated"])
        #expect(try ids(["DATE>=1800"]) == ["late"])
        #expect(try ids(["DATE<=1600"]) == ["early"])
        #expect(try ids(["SCHOOL=Dutch", "DATE>=1800"]) == ["late"])
        #expect(try ids(["SCHOOL=Flemish"]).isEmpty)
        for bad in ["", "=x", "DATE>=soon", "no operator"] {
            #expect(throws: StoreError.invalidFilter(bad)) { try MetadataFilter(parsing: bad) }
        }
    }

    @Test(arguments: kinds)
    func hybridSearchLiftsMetadataMatches(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        _ = try store.openCollection("c", model: Self.model)
        try store.upsert([
            Self.item("near", [1, 0, 0, 0], metadata: ["TITLE": "Harbour at dawn"]),
            Self.item("house", [0.6, 0.8, 0, 0], metadata: ["TITLE": "The blue house", "AUTHOR": "Renoir"]),
            Self.item("far", [0, 0, 1, 0], metadata: ["TITLE": "Still life"]),
        ], into: "c")
        let plain = try store.search("c", vector: [1, 0, 0, 0], model: Self.model, k: 3, filters: []).map(\.item.id)
        #expect(plain == ["near", "house", "far"])
        let hybrid = try store.hybridSearch("c", vector: [1, 0, 0, 0], text: "a blue house", model: Self.model, k: 3, filters: [], vectorWeight: 0.5)
        #expect(hybrid.map(\.item.id) == ["house", "near", "far"])
        // score = 0.5 · (1 + 0.6) / 2 + 0.5 · 1 for the only text match.
        #expect(abs(hybrid[0].relevance - 0.9) < 1e-5)
        #expect(abs(hybrid[1].relevance - 0.5) < 1e-5)
        // Weight 1 is plain vector search; accents and case do not matter to the text match.
        #expect(try store.hybridSearch("c", vector: [1, 0, 0, 0], text: "house", model: Self.model, k: 3, filters: [], vectorWeight: 1).map(\.item.id) == plain)
        #expect(try store.hybridSearch("c", vector: [0, 0, 1, 0], text: "RÉNOIR", model: Self.model, k: 1, filters: [], vectorWeight: 0.2).first?.item.id == "house")
        // Text that looks like query syntax is only words.
        for hostile in ["\"", "NEAR(blue house)", "title:* OR", "'); DROP TABLE items; --", "", "***"] {
            #expect(try store.hybridSearch("c", vector: [1, 0, 0, 0], text: hostile, model: Self.model, k: 3, filters: [], vectorWeight: 0.5).count == 3)
        }
        // Deleted items leave the text index too.
        try store.deleteItem("house", in: "c")
        #expect(try store.hybridSearch("c", vector: [1, 0, 0, 0], text: "blue house", model: Self.model, k: 3, filters: [], vectorWeight: 0.5)
            .map(\.item.id) == ["near", "far"])
    }

    @Test(arguments: kinds)
    func hostileNamesAndValuesAreData(_ kind: IndexKind) throws {
        let store = try Self.temporaryStore(kind)
        for name in ["", "a b", "x'; DROP TABLE items; --", "../etc", String(repeating: "n", count: 65)] {
            #expect(throws: StoreError.invalidName(name)) { try store.openCollection(name, model: Self.model) }
        }
        _ = try store.openCollection("c", model: Self.model)
        let hostile = ["TITLE": "'); DROP TABLE items; --", "NOTE": "<script>alert(1)</script>", "BIG": String(repeating: "é", count: 100_000)]
        try store.upsert([Self.item("x'; DELETE FROM items; --", [1, 0, 0, 0], metadata: hostile)], into: "c")
        #expect(try store.item("x'; DELETE FROM items; --", in: "c")?.metadata == hostile)
        #expect(try store.collections().map(\.name) == ["c"])
    }

    @Test(arguments: kinds)
    func everythingSurvivesReopening(_ kind: IndexKind) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-store-\(UUID())")
        let vectors: [[Float]] = (0..<50).map { i in (0..<4).map { Float(sin(Double(i * 4 + $0))) } }
        var before: [String] = []
        do {
            let store = try EmbeddedStore(folder: folder, index: kind)
            _ = try store.openCollection("c", model: Self.model)
            try store.upsert(vectors.enumerated().map { Self.item("i\($0.offset)", $0.element) }, into: "c")
            before = try store.search("c", vector: [0.3, -0.2, 0.5, 0.1], model: Self.model, k: 10, filters: []).map(\.item.id)
            try store.flush()
        }
        let reopened = try EmbeddedStore(folder: folder, index: kind)
        #expect(try reopened.search("c", vector: [0.3, -0.2, 0.5, 0.1], model: Self.model, k: 10, filters: []).map(\.item.id) == before)
        #expect(try reopened.contentHashes(in: "c").count == 50)
        try reopened.deleteCollection("c")
        #expect(try reopened.collections().isEmpty)
        #expect(throws: StoreError.noSuchCollection("c")) { try reopened.deleteCollection("c") }
    }
}

@Suite struct HNSWPersistenceTests {
    /// The graph is saved under the collection's generation and read back; a file that missed a change is
    /// not used.
    @Test func savedGraphsAreReusedOnlyWhileCurrent() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-store-\(UUID())")
        let kind = IndexKind.hnsw(HNSWIndex.Parameters())
        let model = EmbeddedStoreTests.model
        let vectors: [[Float]] = (0..<300).map { i in (0..<4).map { Float(cos(Double(i * 7 + $0))) } }
        let query: [Float] = [0.2, 0.4, -0.1, 0.3]
        var before: [String] = []
        do {
            let store = try EmbeddedStore(folder: folder, index: kind)
            _ = try store.openCollection("c", model: model)
            try store.upsert(vectors.enumerated().map { EmbeddedStoreTests.item("i\($0.offset)", $0.element) }, into: "c")
            before = try store.search("c", vector: query, model: model, k: 5, filters: []).map(\.item.id)
            try store.flush()
        }
        let files = { try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("indexes").path).sorted() }
        #expect(try files() == ["c.1.hnsw"])
        do {
            let reopened = try EmbeddedStore(folder: folder, index: kind)
            #expect(try reopened.search("c", vector: query, model: model, k: 5, filters: []).map(\.item.id) == before)
            // A change without a flush: the saved graph is now stale.
            try reopened.upsert([EmbeddedStoreTests.item("new", query)], into: "c")
        }
        let third = try EmbeddedStore(folder: folder, index: kind)
        #expect(try third.search("c", vector: query, model: model, k: 1, filters: []).first?.item.id == "new")
        try third.flush()
        #expect(try files() == ["c.2.hnsw"])
        try third.deleteCollection("c")
        #expect(try files().isEmpty)
    }
}

@Suite struct FlatIndexTests {
    @Test func exactSearchEqualsBruteForce() throws {
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
