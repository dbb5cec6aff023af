import Foundation
import ImageCollections
import VectorIndex

/// Which vector index answers searches.
public enum IndexKind: Sendable, Equatable {
    /// Every vector compared: exact, and fast enough to about 100,000 items.
    case exact
    /// An HNSW graph: approximate, for larger collections; persisted in `indexes/`.
    case hnsw(HNSWIndex.Parameters)
}

/// The default store: one data folder with a SQLite database (collections, items, metadata, vectors)
/// and Loupe's vector index, built in memory from the stored vectors when a collection is first
/// searched and kept current as items change. The collection's generation counts its changes (from a
/// random start, so a collection deleted and made again never repeats one): an index in memory is used
/// only while the stored generation is the one it reflects, so changes another process made (a
/// `loupe ingest` beside a running server) are always seen. An HNSW graph is saved as
/// `indexes/<collection>.<generation>.hnsw`, so a file that missed changes (a crash before `flush`) is
/// never used: the graph is rebuilt from the vectors.
public final class EmbeddedStore: StoreBackend, @unchecked Sendable {
    public let folder: URL
    public let indexKind: IndexKind
    public let vectorPrecision: VectorPrecision
    private let database: SQLiteDatabase
    private let lock = NSLock()
    private var indexes: [String: CachedIndex] = [:]
    private let work = BlockingWork(label: "loupe.embedded-store")

    /// An index in memory and the generation of the collection it holds.
    struct CachedIndex {
        var index: LoadedIndex
        var generation: Int64
    }

    enum LoadedIndex {
        case flat(FlatIndex)
        case hnsw(HNSWIndex, savedGeneration: Int64?)

        // The flat index is taken out of `self` while it changes, so that its storage has one owner and
        // is changed in place, not copied whole on every change.
        mutating func add(keys: [Int64], vectors: [[Float]]) throws {
            switch self {
            case .flat(var index):
                self = .flat(FlatIndex(dimension: index.dimension))
                defer { self = .flat(index) }
                for (key, vector) in zip(keys, vectors) { try index.add(key: key, vector: vector) }
            case .hnsw(let index, _):
                try index.add(keys: keys, vectors: vectors)
            }
        }

        mutating func remove(key: Int64) {
            switch self {
            case .flat(var index):
                self = .flat(FlatIndex(dimension: index.dimension))
                index.remove(key: key)
                self = .flat(index)
            case .hnsw(let index, _):
                index.remove(key: key)
            }
        }

        /// The index as searches see it (a copy of a flat index shares its storage).
        var searching: any VectorSearching {
            switch self {
            case .flat(let index): index
            case .hnsw(let index, _): index
            }
        }

        /// Whether similarities are approximate (compact vectors) and need rescoring.
        var isApproximate: Bool {
            switch self {
            case .flat(let index): index.precision != .float32
            case .hnsw(let index, _): index.precision != .float32
            }
        }

        var count: Int {
            switch self {
            case .flat(let index): index.count
            case .hnsw(let index, _): index.count
            }
        }
    }

    /// `vectors`: how the index keeps vectors in memory (float16 and int8 take half and a quarter of
    /// float32's bytes; a graph keeps int8 as float16); results are rescored from the stored float32 vectors.
    public init(folder: URL, index: IndexKind = .exact, vectors: VectorPrecision = .float32) throws {
        self.folder = folder
        indexKind = index
        vectorPrecision = vectors
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StoreError.database("cannot create the data folder \(folder.path): \(error.localizedDescription)")
        }
        database = try SQLiteDatabase(path: folder.appendingPathComponent("loupe.sqlite").path)
        try migrate()
    }

    /// Schema versions are applied in order and recorded in `user_version`, all in one write transaction
    /// that reads the version again inside it: a second process opening the same new folder waits for the
    /// first (the busy timeout), then finds the schema current instead of applying the steps again.
    private func migrate() throws {
        try database.transaction {
            let version = try database.execute("PRAGMA user_version").first?.first?.integer ?? 0
            if version < 1 {
                try database.execute("""
                    CREATE TABLE collections (
                        name TEXT PRIMARY KEY, model_id TEXT NOT NULL, model_revision TEXT NOT NULL,
                        dimension INTEGER NOT NULL, created_at TEXT NOT NULL DEFAULT (datetime('now')))
                    """)
                try database.execute("""
                    CREATE TABLE items (
                        key INTEGER PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
                        id TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL, metadata TEXT NOT NULL,
                        vector BLOB NOT NULL, UNIQUE (collection, id))
                    """)
            }
            if version < 2 {
                try database.execute("ALTER TABLE items ADD COLUMN thumbnail BLOB")
            }
            if version < 3 {
                try database.execute("ALTER TABLE collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
            }
            if version < 4 {
                // Full-text index of each item's metadata values, keyed by the item's key.
                try database.execute("CREATE VIRTUAL TABLE items_text USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')")
                for row in try database.execute("SELECT key, metadata FROM items") {
                    guard let key = row[0].integer, let metadata = row[1].text.flatMap(MetadataJSON.decode) else { continue }
                    try database.execute("INSERT INTO items_text (rowid, body) VALUES (?, ?)", [.integer(key), .text(HybridScore.searchableText(metadata))])
                }
            }
            if version < Self.schemaVersion { try database.execute("PRAGMA user_version = \(Self.schemaVersion)") }
        }
    }

    static let schemaVersion: Int64 = 4

    public func createCollection(_ name: String, model: ModelIdentity) async throws {
        try await work.run {
            try self.database.execute("""
                INSERT INTO collections (name, model_id, model_revision, dimension, generation) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (name) DO NOTHING
                """, [.text(name), .text(model.id), .text(model.revision), .integer(Int64(model.dimension)), .integer(Int64.random(in: 1...(1 << 52)))])
        }
    }

    public func collections(named name: String?) async throws -> [CollectionInfo] {
        try await work.run { try self.collections(where: name) }
    }

    private func collections(where name: String?) throws -> [CollectionInfo] {
        let rows = try database.execute("""
            SELECT c.name, c.model_id, c.model_revision, c.dimension, (SELECT count(*) FROM items i WHERE i.collection = c.name)
            FROM collections c WHERE ?1 IS NULL OR c.name = ?1 ORDER BY c.name
            """, [name.map { .text($0) } ?? .null])
        return rows.compactMap { row in
            guard let name = row[0].text, let id = row[1].text, let revision = row[2].text, let dimension = row[3].integer,
                let count = row[4].integer
            else { return nil }
            return CollectionInfo(name: name, model: ModelIdentity(id: id, revision: revision, dimension: Int(dimension)), itemCount: Int(count))
        }
    }

    /// The collection's model, without counting its items (every write and search asks).
    public func model(of collection: String) async throws -> ModelIdentity? {
        try await work.run { try self.storedModel(collection) }
    }

    private func storedModel(_ collection: String) throws -> ModelIdentity? {
        try database.execute("SELECT model_id, model_revision, dimension FROM collections WHERE name = ?", [.text(collection)]).first.flatMap { row in
            guard let id = row[0].text, let revision = row[1].text, let dimension = row[2].integer else { return nil }
            return ModelIdentity(id: id, revision: revision, dimension: Int(dimension))
        }
    }

    public func deleteCollection(_ name: String) async throws {
        try await work.run { try self.deleteCollectionNow(name) }
    }

    private func deleteCollectionNow(_ name: String) throws {
        try database.transaction {
            try database.execute("DELETE FROM items_text WHERE rowid IN (SELECT key FROM items WHERE collection = ?)", [.text(name)])
            try database.execute("DELETE FROM collections WHERE name = ?", [.text(name)])
        }
        lock.withLock { _ = indexes.removeValue(forKey: name) }
        removeIndexFiles(name, except: nil)
    }

    public func upsert(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) async throws {
        try await work.run { try self.upsertNow(items, into: collection, model: model, removing: removing) }
    }

    private func upsertNow(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) throws {
        // An HNSW graph is kept current while items arrive, so `flush` (at the end of an ingest) saves it
        // and the first search does not have to build it from every vector.
        if case .hnsw = indexKind { _ = try loadedIndex(collection, dimension: model.dimension) }
        let (removed, keys, change) = try database.transaction { () -> ([Int64], [Int64], (before: Int64, after: Int64)) in
            let before = try generation(collection)
            let removed = try removing.compactMap { try deleteRow($0, in: collection) }
            let keys = try items.map { item -> Int64 in
                let metadata = try MetadataJSON.encode(item.metadata)
                let rows = try database.execute("""
                    INSERT INTO items (collection, id, source, content_hash, metadata, vector, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (collection, id) DO UPDATE SET source = excluded.source, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, vector = excluded.vector, thumbnail = excluded.thumbnail
                    RETURNING key
                    """, [.text(collection), .text(item.id), .text(item.source), .text(item.contentHash), .text(metadata),
                          .blob(Self.encode(item.vector)), item.thumbnail.map { .blob($0) } ?? .null])
                guard let key = rows.first?.first?.integer else { throw StoreError.database("no key returned for \(item.id)") }
                try database.execute("DELETE FROM items_text WHERE rowid = ?", [.integer(key)])
                try database.execute("INSERT INTO items_text (rowid, body) VALUES (?, ?)", [.integer(key), .text(HybridScore.searchableText(item.metadata))])
                return key
            }
            return (removed, keys, (before, try bumpGeneration(collection)))
        }
        try updateCachedIndex(collection, change: change) { index in
            for key in removed { index.remove(key: key) }
            try index.add(keys: keys, vectors: items.map(\.vector))
        }
    }

    /// Applies this process's own change to the index in memory when it held exactly the generation the
    /// change started from; otherwise another process changed the collection too, and the index is dropped
    /// to be rebuilt from what is stored.
    private func updateCachedIndex(_ collection: String, change: (before: Int64, after: Int64), _ apply: (inout LoadedIndex) throws -> Void) throws {
        try lock.withLock {
            // Taken out of the dictionary while it changes (one owner: changed in place, not copied).
            guard var cached = indexes.removeValue(forKey: collection), cached.generation == change.before else { return }
            try apply(&cached.index)
            cached.generation = change.after
            indexes[collection] = cached
        }
    }

    public func item(_ id: String, in collection: String) async throws -> Item? {
        try await work.run {
            try self.database.execute("SELECT \(Self.itemColumns) FROM items WHERE collection = ? AND id = ?",
                                      [.text(collection), .text(id)]).first.map(Self.item)
        }
    }

    public func thumbnail(_ id: String, in collection: String) async throws -> Data? {
        try await work.run {
            try self.database.execute("SELECT thumbnail FROM items WHERE collection = ? AND id = ?", [.text(collection), .text(id)]).first?.first?.blob
        }
    }

    public func contentHashes(in collection: String) async throws -> [String: String] {
        try await work.run {
            var hashes = [String: String]()
            for row in try self.database.execute("SELECT id, content_hash FROM items WHERE collection = ?", [.text(collection)]) {
                if let id = row[0].text, let hash = row[1].text { hashes[id] = hash }
            }
            return hashes
        }
    }

    public func items(in collection: String, after: String, limit: Int) async throws -> [Item] {
        try await work.run {
            try self.database.execute("SELECT \(Self.itemColumns) FROM items WHERE collection = ? AND id > ? ORDER BY id LIMIT ?",
                                      [.text(collection), .text(after), .integer(Int64(limit))]).map(Self.item)
        }
    }

    public func deleteItem(_ id: String, in collection: String) async throws -> Bool {
        try await work.run {
            let deleted = try self.database.transaction { () -> (key: Int64, change: (before: Int64, after: Int64))? in
                let before = try self.generation(collection)
                guard let key = try self.deleteRow(id, in: collection) else { return nil }
                return (key, (before, try self.bumpGeneration(collection)))
            }
            guard let deleted else { return false }
            try self.updateCachedIndex(collection, change: deleted.change) { $0.remove(key: deleted.key) }
            return true
        }
    }

    /// Deletes an item's row and its full-text row (inside the caller's transaction); its key, or nil
    /// when there was none.
    private func deleteRow(_ id: String, in collection: String) throws -> Int64? {
        guard let key = try database.execute("DELETE FROM items WHERE collection = ? AND id = ? RETURNING key",
                                             [.text(collection), .text(id)]).first?.first?.integer else { return nil }
        try database.execute("DELETE FROM items_text WHERE rowid = ?", [.integer(key)])
        return key
    }

    /// Counts a change to the collection (inside the caller's transaction); returns the new generation.
    private func bumpGeneration(_ collection: String) throws -> Int64 {
        try database.execute("UPDATE collections SET generation = generation + 1 WHERE name = ? RETURNING generation",
                             [.text(collection)]).first?.first?.integer ?? 0
    }

    private func generation(_ collection: String) throws -> Int64 {
        try database.execute("SELECT generation FROM collections WHERE name = ?", [.text(collection)]).first?.first?.integer ?? 0
    }

    private var indexFolder: URL { folder.appendingPathComponent("indexes") }

    private func indexFile(_ collection: String, generation: Int64) -> URL {
        indexFolder.appendingPathComponent("\(collection).\(generation).hnsw")
    }

    /// Saves every loaded HNSW graph that changed since it was last saved, and removes older files.
    public func flush() async throws {
        try await work.run { try self.flushNow() }
    }

    private func flushNow() throws {
        let loaded = lock.withLock { indexes }
        for (collection, cached) in loaded {
            // Saved under the generation the graph holds, which a newer stored one makes unused.
            guard case .hnsw(let graph, let saved) = cached.index, saved != cached.generation else { continue }
            let generation = cached.generation
            do {
                try FileManager.default.createDirectory(at: indexFolder, withIntermediateDirectories: true)
                try graph.write(to: indexFile(collection, generation: generation))
            } catch {
                throw StoreError.database("cannot save the index of \(collection): \(error)")
            }
            lock.withLock {
                if indexes[collection]?.generation == generation { indexes[collection]?.index = .hnsw(graph, savedGeneration: generation) }
            }
            removeIndexFiles(collection, except: generation)
        }
    }

    private func removeIndexFiles(_ collection: String, except keep: Int64?) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: indexFolder.path)) ?? []
        for file in files where file.hasPrefix("\(collection).") && file.hasSuffix(".hnsw") && file != keep.map({ "\(collection).\($0).hnsw" }) {
            try? FileManager.default.removeItem(at: indexFolder.appendingPathComponent(file))
        }
    }

    public func search(_ query: VectorQuery) async throws -> [SearchResult] {
        try await work.run {
            let hits = try self.vectorHits(query, k: query.k).hits
            return try hits.compactMap { hit in try self.storedItem(key: hit.key).map { SearchResult(item: $0, similarity: hit.similarity) } }
        }
    }

    public func hybridSearch(_ query: VectorQuery, text: String, vectorWeight: Float) async throws -> [SearchResult] {
        try await work.run { try self.hybridSearchNow(query, text: text, vectorWeight: vectorWeight) }
    }

    private func hybridSearchNow(_ query: VectorQuery, text: String, vectorWeight: Float) throws -> [SearchResult] {
        let (collection, vector, k) = (query.collection, query.vector, query.k)
        let pool = HybridScore.candidates(k)
        let (hits, allowed) = try vectorHits(query, k: pool)
        // BM25 from SQLite is negative, more negative is better.
        var textScores = [Int64: Double]()
        if let match = Self.matchQuery(text) {
            let rows = try database.execute("""
                SELECT t.rowid, bm25(items_text) FROM items_text t JOIN items i ON i.key = t.rowid
                WHERE items_text MATCH ? AND i.collection = ? ORDER BY bm25(items_text) LIMIT ?
                """, [.text(match), .text(collection), .integer(Int64(pool))])
            for row in rows {
                guard let key = row[0].integer, case .real(let score) = row[1], allowed?.contains(key) ?? true else { continue }
                textScores[key] = score
            }
        }
        let best = textScores.values.min() ?? 0
        var similarities = Dictionary(hits.map { ($0.key, $0.similarity) }, uniquingKeysWith: { a, _ in a })
        for key in textScores.keys where similarities[key] == nil {
            similarities[key] = try storedSimilarity(of: key, to: vector)
        }
        let ranked = similarities.map { key, similarity -> (Int64, Float, Float) in
            let textScore = best < 0 ? Float((textScores[key] ?? 0) / best) : 0
            return (key, similarity, HybridScore.blend(similarity: similarity, text: textScore, vectorWeight: vectorWeight))
        }.sorted { $0.2 > $1.2 }.prefix(k)
        return try ranked.compactMap { key, similarity, score in
            try storedItem(key: key).map { SearchResult(item: $0, similarity: similarity, relevance: score) }
        }
    }

    /// The best `k` vector matches among the items the filters allow (and the allowed set, if filtered).
    private func vectorHits(_ query: VectorQuery, k: Int) throws -> (hits: [SearchHit], allowed: Set<Int64>?) {
        let (collection, vector, filters) = (query.collection, query.vector, query.filters)
        let index = try loadedIndex(collection, dimension: query.model.dimension)
        var allowed: Set<Int64>?
        if !filters.isEmpty {
            allowed = []
            for row in try database.execute("SELECT key, metadata FROM items WHERE collection = ?", [.text(collection)]) {
                guard let key = row[0].integer, let metadata = row[1].text.flatMap(MetadataJSON.decode) else { continue }
                if filters.allSatisfy({ $0.matches(metadata) }) { allowed!.insert(key) }
            }
        }
        // Compact vectors give approximate similarities: more candidates are taken and the best rescored
        // from the float32 vectors the database keeps.
        let wanted = index.isApproximate ? max(4 * k, k + 32) : k
        var hits: [SearchHit]
        do {
            let searching = index.searching
            hits = try allowed.map { try searching.search(vector, k: wanted, filteredTo: $0) } ?? searching.search(vector, k: wanted, allowed: nil)
        } catch {
            throw StoreError.invalidVector("\(error)")
        }
        if index.isApproximate {
            hits = try hits.map { SearchHit(key: $0.key, similarity: try storedSimilarity(of: $0.key, to: vector)) }
                .sorted { $0.similarity > $1.similarity }.prefix(k).map { $0 }
        }
        return (hits, allowed)
    }

    /// Cosine similarity of one stored item to a query, from its stored vector (for text-only candidates).
    private func storedSimilarity(of key: Int64, to query: [Float]) throws -> Float {
        guard let blob = try database.execute("SELECT vector FROM items WHERE key = ?", [.integer(key)]).first?.first?.blob else { return -1 }
        let stored = Self.decode(blob)
        var dot: Double = 0, a: Double = 0, b: Double = 0
        for (x, y) in zip(stored, query) {
            dot += Double(x) * Double(y)
            a += Double(x) * Double(x)
            b += Double(y) * Double(y)
        }
        return a > 0 && b > 0 ? Float(dot / (a.squareRoot() * b.squareRoot())) : -1
    }

    private func storedItem(key: Int64) throws -> Item? {
        try database.execute("SELECT \(Self.itemColumns) FROM items WHERE key = ?", [.integer(key)]).first.map(Self.item)
    }

    /// The collection's index as stored now: the one in memory while its generation is current, else
    /// the saved graph of the current generation, else one built from the stored vectors. (Vectors read
    /// after the generation can only be newer; the next search then sees a newer generation and rebuilds.)
    private func loadedIndex(_ collection: String, dimension: Int) throws -> LoadedIndex {
        let current = try generation(collection)
        if let cached = lock.withLock({ indexes[collection] }), cached.generation == current { return cached.index }
        var index: LoadedIndex
        switch indexKind {
        case .exact:
            index = .flat(FlatIndex(dimension: dimension, precision: vectorPrecision))
        case .hnsw(let parameters):
            if let saved = try? HNSWIndex.read(from: indexFile(collection, generation: current), precision: vectorPrecision), saved.dimension == dimension {
                saved.parameters.efSearch = parameters.efSearch
                lock.withLock { indexes[collection] = CachedIndex(index: .hnsw(saved, savedGeneration: current), generation: current) }
                return .hnsw(saved, savedGeneration: current)
            }
            index = .hnsw(HNSWIndex(dimension: dimension, parameters: parameters, precision: vectorPrecision), savedGeneration: nil)
        }
        var keys = [Int64](), vectors = [[Float]]()
        for row in try database.execute("SELECT key, vector FROM items WHERE collection = ? ORDER BY key", [.text(collection)]) {
            guard let key = row[0].integer, let blob = row[1].blob else { continue }
            keys.append(key)
            vectors.append(Self.decode(blob))
        }
        try index.add(keys: keys, vectors: vectors)
        lock.withLock { indexes[collection] = CachedIndex(index: index, generation: current) }
        return index
    }

    /// An FTS5 query that matches any of the words: each is quoted, so no text is read as query syntax.
    static func matchQuery(_ text: String) -> String? {
        let words = text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).prefix(32)
        guard !words.isEmpty else { return nil }
        return words.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: " OR ")
    }

    /// The columns `item(_:)` reads, in its order.
    static let itemColumns = "id, source, content_hash, metadata, vector"

    static func encode(_ vector: [Float]) -> Data { vector.withUnsafeBufferPointer { Data(buffer: $0) } }

    static func decode(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }

    static func item(_ row: [SQLiteDatabase.Value]) -> Item {
        Item(id: row[0].text ?? "", source: row[1].text ?? "", contentHash: row[2].text ?? "",
             metadata: row[3].text.flatMap(MetadataJSON.decode) ?? [:], vector: row[4].blob.map(decode) ?? [])
    }
}

extension CollectionStore {
    /// The embedded store in `folder`, behind the policy every store shares.
    public static func embedded(folder: URL, index: IndexKind = .exact, vectors: VectorPrecision = .float32) throws -> CollectionStore {
        CollectionStore(try EmbeddedStore(folder: folder, index: index, vectors: vectors))
    }
}
