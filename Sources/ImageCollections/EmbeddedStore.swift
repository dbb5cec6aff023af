import Foundation
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
/// searched and kept current as items change. An HNSW graph is saved as
/// `indexes/<collection>.<generation>.hnsw`; the generation counts changes to the collection, so a file
/// that missed changes (a crash before `flush`) is never used: the graph is rebuilt from the vectors.
public final class EmbeddedStore: CollectionStore, @unchecked Sendable {
    public let folder: URL
    public let indexKind: IndexKind
    private let database: SQLiteDatabase
    private let lock = NSLock()
    private var indexes: [String: LoadedIndex] = [:]

    enum LoadedIndex {
        case flat(FlatIndex)
        case hnsw(HNSWIndex, savedGeneration: Int64?)

        mutating func add(key: Int64, vector: [Float]) throws {
            switch self {
            case .flat(var index):
                try index.add(key: key, vector: vector)
                self = .flat(index)
            case .hnsw(let index, _):
                try index.add(key: key, vector: vector)
            }
        }

        mutating func remove(key: Int64) {
            switch self {
            case .flat(var index):
                index.remove(key: key)
                self = .flat(index)
            case .hnsw(let index, _):
                index.remove(key: key)
            }
        }

        func search(_ query: [Float], k: Int, allowed: ((Int64) -> Bool)?) throws -> [SearchHit] {
            switch self {
            case .flat(let index): try index.search(query, k: k, allowed: allowed)
            case .hnsw(let index, _): try index.search(query, k: k, allowed: allowed)
            }
        }
    }

    public init(folder: URL, index: IndexKind = .exact) throws {
        self.folder = folder
        indexKind = index
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StoreError.database("cannot create the data folder \(folder.path): \(error.localizedDescription)")
        }
        database = try SQLiteDatabase(path: folder.appendingPathComponent("loupe.sqlite").path)
        try migrate()
    }

    /// Schema versions are applied in order and recorded in `user_version`.
    private func migrate() throws {
        let version = try database.execute("PRAGMA user_version").first?.first?.integer ?? 0
        if version < 1 {
            try database.transaction {
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
                try database.execute("PRAGMA user_version = 1")
            }
        }
        if version < 2 {
            try database.transaction {
                try database.execute("ALTER TABLE items ADD COLUMN thumbnail BLOB")
                try database.execute("PRAGMA user_version = 2")
            }
        }
        if version < 3 {
            try database.transaction {
                try database.execute("ALTER TABLE collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
                try database.execute("PRAGMA user_version = 3")
            }
        }
    }

    public func openCollection(_ name: String, model: ModelIdentity) throws -> CollectionInfo {
        try Self.validate(name: name)
        if let existing = try collection(name) {
            guard existing.model == model else { throw StoreError.modelMismatch(collection: name, expected: existing.model, got: model) }
            return existing
        }
        try database.execute("INSERT INTO collections (name, model_id, model_revision, dimension) VALUES (?, ?, ?, ?)",
                             [.text(name), .text(model.id), .text(model.revision), .integer(Int64(model.dimension))])
        return CollectionInfo(name: name, model: model, itemCount: 0)
    }

    public func collection(_ name: String) throws -> CollectionInfo? {
        try collections(where: name).first
    }

    public func collections() throws -> [CollectionInfo] { try collections(where: nil) }

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

    public func deleteCollection(_ name: String) throws {
        guard try collection(name) != nil else { throw StoreError.noSuchCollection(name) }
        try database.execute("DELETE FROM collections WHERE name = ?", [.text(name)])
        lock.withLock { _ = indexes.removeValue(forKey: name) }
        removeIndexFiles(name, except: nil)
    }

    public func upsert(_ items: [Item], into collection: String) throws {
        guard let info = try self.collection(collection) else { throw StoreError.noSuchCollection(collection) }
        for item in items where item.vector.count != info.model.dimension || !item.vector.allSatisfy(\.isFinite) {
            throw StoreError.invalidVector("item \(item.id) has \(item.vector.count) values for a \(info.model.dimension)-d collection")
        }
        let keys = try database.transaction { () -> [Int64] in
            let keys = try items.map { item -> Int64 in
                let metadata = String(decoding: try JSONSerialization.data(withJSONObject: item.metadata, options: [.sortedKeys]), as: UTF8.self)
                let rows = try database.execute("""
                    INSERT INTO items (collection, id, source, content_hash, metadata, vector, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (collection, id) DO UPDATE SET source = excluded.source, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, vector = excluded.vector, thumbnail = excluded.thumbnail
                    RETURNING key
                    """, [.text(collection), .text(item.id), .text(item.source), .text(item.contentHash), .text(metadata),
                          .blob(Self.encode(item.vector)), item.thumbnail.map { .blob($0) } ?? .null])
                guard let key = rows.first?.first?.integer else { throw StoreError.database("no key returned for \(item.id)") }
                return key
            }
            _ = try bumpGeneration(collection)
            return keys
        }
        try lock.withLock {
            guard indexes[collection] != nil else { return }
            for (key, item) in zip(keys, items) { try indexes[collection]!.add(key: key, vector: item.vector) }
        }
    }

    public func item(_ id: String, in collection: String) throws -> Item? {
        try database.execute("SELECT id, source, content_hash, metadata, vector FROM items WHERE collection = ? AND id = ?",
                             [.text(collection), .text(id)]).first.map(Self.item)
    }

    public func thumbnail(_ id: String, in collection: String) throws -> Data? {
        try database.execute("SELECT thumbnail FROM items WHERE collection = ? AND id = ?", [.text(collection), .text(id)]).first?.first?.blob
    }

    public func contentHashes(in collection: String) throws -> [String: String] {
        var hashes = [String: String]()
        for row in try database.execute("SELECT id, content_hash FROM items WHERE collection = ?", [.text(collection)]) {
            if let id = row[0].text, let hash = row[1].text { hashes[id] = hash }
        }
        return hashes
    }

    public func forEachItem(in collection: String, _ body: (Item) throws -> Void) throws {
        guard try self.collection(collection) != nil else { throw StoreError.noSuchCollection(collection) }
        var after = ""
        while true {
            let rows = try database.execute("""
                SELECT id, source, content_hash, metadata, vector FROM items WHERE collection = ? AND id > ? ORDER BY id LIMIT 1000
                """, [.text(collection), .text(after)])
            for row in rows { try body(Self.item(row)) }
            guard let last = rows.last?[0].text else { return }
            after = last
        }
    }

    public func deleteItem(_ id: String, in collection: String) throws {
        let key = try database.transaction { () -> Int64 in
            let rows = try database.execute("DELETE FROM items WHERE collection = ? AND id = ? RETURNING key", [.text(collection), .text(id)])
            guard let key = rows.first?.first?.integer else { throw StoreError.noSuchItem(collection: collection, id: id) }
            _ = try bumpGeneration(collection)
            return key
        }
        lock.withLock { indexes[collection]?.remove(key: key) }
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
    public func flush() throws {
        let loaded = lock.withLock { indexes }
        for (collection, index) in loaded {
            guard case .hnsw(let graph, let saved) = index else { continue }
            let current = try generation(collection)
            guard saved != current else { continue }
            do {
                try FileManager.default.createDirectory(at: indexFolder, withIntermediateDirectories: true)
                try graph.write(to: indexFile(collection, generation: current))
            } catch {
                throw StoreError.database("cannot save the index of \(collection): \(error)")
            }
            lock.withLock { indexes[collection] = .hnsw(graph, savedGeneration: current) }
            removeIndexFiles(collection, except: current)
        }
    }

    private func removeIndexFiles(_ collection: String, except keep: Int64?) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: indexFolder.path)) ?? []
        for file in files where file.hasPrefix("\(collection).") && file.hasSuffix(".hnsw") && file != keep.map({ "\(collection).\($0).hnsw" }) {
            try? FileManager.default.removeItem(at: indexFolder.appendingPathComponent(file))
        }
    }

    public func search(_ collection: String, vector: [Float], model: ModelIdentity, k: Int, filters: [MetadataFilter]) throws -> [SearchResult] {
        guard let info = try self.collection(collection) else { throw StoreError.noSuchCollection(collection) }
        guard info.model == model else { throw StoreError.modelMismatch(collection: collection, expected: info.model, got: model) }
        let index = try loadedIndex(collection, dimension: info.model.dimension)
        var allowed: Set<Int64>?
        if !filters.isEmpty {
            allowed = []
            for row in try database.execute("SELECT key, metadata FROM items WHERE collection = ?", [.text(collection)]) {
                guard let key = row[0].integer, let metadata = row[1].text.flatMap(Self.metadata) else { continue }
                if filters.allSatisfy({ $0.matches(metadata) }) { allowed!.insert(key) }
            }
        }
        let hits: [SearchHit]
        do {
            hits = try index.search(vector, k: max(0, min(k, 1000)), allowed: allowed.map { set in { set.contains($0) } })
        } catch {
            throw StoreError.invalidVector("\(error)")
        }
        return try hits.compactMap { hit in
            try database.execute("SELECT id, source, content_hash, metadata, vector FROM items WHERE key = ?", [.integer(hit.key)])
                .first.map { SearchResult(item: Self.item($0), similarity: hit.similarity) }
        }
    }

    private func loadedIndex(_ collection: String, dimension: Int) throws -> LoadedIndex {
        if let index = lock.withLock({ indexes[collection] }) { return index }
        var index: LoadedIndex
        switch indexKind {
        case .exact:
            index = .flat(FlatIndex(dimension: dimension))
        case .hnsw(let parameters):
            let current = try generation(collection)
            if let saved = try? HNSWIndex.read(from: indexFile(collection, generation: current)), saved.dimension == dimension {
                saved.parameters.efSearch = parameters.efSearch
                lock.withLock { indexes[collection] = .hnsw(saved, savedGeneration: current) }
                return .hnsw(saved, savedGeneration: current)
            }
            index = .hnsw(HNSWIndex(dimension: dimension, parameters: parameters), savedGeneration: nil)
        }
        for row in try database.execute("SELECT key, vector FROM items WHERE collection = ? ORDER BY key", [.text(collection)]) {
            guard let key = row[0].integer, let blob = row[1].blob else { continue }
            try index.add(key: key, vector: Self.decode(blob))
        }
        lock.withLock { indexes[collection] = index }
        return index
    }

    static func encode(_ vector: [Float]) -> Data { vector.withUnsafeBufferPointer { Data(buffer: $0) } }

    static func decode(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }

    static func metadata(_ json: String) -> [String: String]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: String]
    }

    static func item(_ row: [SQLiteDatabase.Value]) -> Item {
        Item(id: row[0].text ?? "", source: row[1].text ?? "", contentHash: row[2].text ?? "",
             metadata: row[3].text.flatMap(metadata) ?? [:], vector: row[4].blob.map(decode) ?? [])
    }
}
