import Foundation
import VectorIndex

/// The default store: one data folder with a SQLite database (collections, items, metadata, vectors)
/// and Loupe's exact vector index, built in memory from the stored vectors when a collection is first
/// searched and kept current as items change.
public final class EmbeddedStore: CollectionStore, @unchecked Sendable {
    public let folder: URL
    private let database: SQLiteDatabase
    private let lock = NSLock()
    private var indexes: [String: FlatIndex] = [:]

    public init(folder: URL) throws {
        self.folder = folder
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
    }

    public func upsert(_ items: [Item], into collection: String) throws {
        guard let info = try self.collection(collection) else { throw StoreError.noSuchCollection(collection) }
        for item in items where item.vector.count != info.model.dimension || !item.vector.allSatisfy(\.isFinite) {
            throw StoreError.invalidVector("item \(item.id) has \(item.vector.count) values for a \(info.model.dimension)-d collection")
        }
        let keys = try database.transaction {
            try items.map { item -> Int64 in
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
        let rows = try database.execute("DELETE FROM items WHERE collection = ? AND id = ? RETURNING key", [.text(collection), .text(id)])
        guard let key = rows.first?.first?.integer else { throw StoreError.noSuchItem(collection: collection, id: id) }
        lock.withLock { indexes[collection]?.remove(key: key) }
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

    private func loadedIndex(_ collection: String, dimension: Int) throws -> FlatIndex {
        if let index = lock.withLock({ indexes[collection] }) { return index }
        var index = FlatIndex(dimension: dimension)
        for row in try database.execute("SELECT key, vector FROM items WHERE collection = ?", [.text(collection)]) {
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
