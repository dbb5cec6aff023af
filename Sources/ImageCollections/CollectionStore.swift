import Dispatch
import Foundation

/// What a store backend does: keep collections and items, and find the nearest vectors. Everything a
/// backend is handed was checked by `CollectionStore` first (names, items, the query's model and
/// dimension, k), so a backend holds no policy of its own; each passes the same behaviour suite.
public protocol StoreBackend: Sendable {
    /// Records a new collection; does nothing when one of that name exists (two processes may create it
    /// at once). `CollectionStore` compares the models.
    func createCollection(_ name: String, model: ModelIdentity) async throws
    /// The collection's model, without counting its items (every write and search asks).
    func model(of collection: String) async throws -> ModelIdentity?
    /// Collections with their item counts in name order: all, or the one named.
    func collections(named name: String?) async throws -> [CollectionInfo]
    /// Deletes a collection that exists, with its items.
    func deleteCollection(_ name: String) async throws
    /// Adds or replaces items (their ids are unique) and deletes the items `removing` names (where they
    /// exist), all or none.
    func upsert(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) async throws
    /// The item without its thumbnail.
    func item(_ id: String, in collection: String) async throws -> Item?
    func thumbnail(_ id: String, in collection: String) async throws -> Data?
    /// The stored content hash per item id.
    func contentHashes(in collection: String) async throws -> [String: String]
    /// Up to `limit` items whose ids sort after `after` (byte order), in that order, without thumbnails.
    func items(in collection: String, after: String, limit: Int) async throws -> [Item]
    /// Deletes the item; false when there was none.
    func deleteItem(_ id: String, in collection: String) async throws -> Bool
    /// The best `k` items the filters allow, most similar first.
    func search(_ query: VectorQuery) async throws -> [SearchResult]
    /// Vector similarity blended with a full-text match of `text` on the metadata (see `HybridScore`);
    /// a backend that cannot rank text throws `StoreError.unsupported`.
    func hybridSearch(_ query: VectorQuery, text: String, vectorWeight: Float) async throws -> [SearchResult]
    /// Saves what is only in memory (the embedded store's HNSW graphs).
    func flush() async throws
}

/// A search as a backend receives it: the query has the collection's model and dimension, only finite
/// values, and `k` is in 0…1000.
public struct VectorQuery: Sendable {
    public let collection: String
    public let vector: [Float]
    public let model: ModelIdentity
    public let k: Int
    public let filters: [MetadataFilter]
}

/// Where collections live, as the rest of Loupe sees it: the policy every backend shares (collection
/// names, the model identity that keeps vectors of different models apart, what items may hold, the
/// bounds of a search) in front of one backend (embedded, PostgreSQL, Milvus).
public struct CollectionStore: Sendable {
    public let backend: any StoreBackend

    public init(_ backend: any StoreBackend) {
        self.backend = backend
    }

    /// The most results one search returns.
    public static let largestK = 1000

    /// Creates the collection, or opens it when it exists with the same model; another model is refused.
    public func openCollection(_ name: String, model: ModelIdentity) async throws -> CollectionInfo {
        try Self.validate(name: name)
        if try await backend.model(of: name) == nil { try await backend.createCollection(name, model: model) }
        // Read back: when two processes create it at once, both see the one that was stored.
        guard let stored = try await collection(name) else { throw StoreError.noSuchCollection(name) }
        guard stored.model == model else { throw StoreError.modelMismatch(collection: name, expected: stored.model, got: model) }
        return stored
    }

    public func collection(_ name: String) async throws -> CollectionInfo? {
        try await backend.collections(named: name).first
    }

    /// The collection's model, without counting its items.
    public func model(of collection: String) async throws -> ModelIdentity? {
        try await backend.model(of: collection)
    }

    public func collections() async throws -> [CollectionInfo] {
        try await backend.collections(named: nil)
    }

    public func deleteCollection(_ name: String) async throws {
        _ = try await existingModel(name)
        try await backend.deleteCollection(name)
    }

    /// Adds or replaces items, all or none.
    public func upsert(_ items: [Item], into collection: String) async throws {
        try await upsert(items, into: collection, removing: [])
    }

    /// Adds or replaces items and deletes the items `removing` names (where they exist), all or none: a
    /// video's frames replace its earlier frames in one step.
    public func upsert(_ items: [Item], into collection: String, removing: [String]) async throws {
        let model = try await existingModel(collection)
        try Self.validate(items, dimension: model.dimension)
        for id in removing { try StoredText.check(id, as: "item id") }
        // Of several items with one id, the last is stored, as if each had been written in turn.
        var seen = Set<String>()
        let unique = Array(items.reversed().filter { seen.insert($0.id).inserted }.reversed())
        try await backend.upsert(unique, into: collection, model: model, removing: removing)
    }

    /// The item without its thumbnail (search results and listings do not need it).
    public func item(_ id: String, in collection: String) async throws -> Item? {
        try StoredText.check(id, as: "item id")
        return try await backend.item(id, in: collection)
    }

    public func thumbnail(_ id: String, in collection: String) async throws -> Data? {
        try StoredText.check(id, as: "item id")
        return try await backend.thumbnail(id, in: collection)
    }

    /// The stored content hash per item id, for skipping unchanged files.
    public func contentHashes(in collection: String) async throws -> [String: String] {
        try await backend.contentHashes(in: collection)
    }

    /// Every item in id order, without thumbnails, handed over in pages to bound memory.
    public func forEachItem(in collection: String, _ body: (Item) async throws -> Void) async throws {
        _ = try await existingModel(collection)
        var after = ""
        while true {
            let page = try await backend.items(in: collection, after: after, limit: 1000)
            for item in page { try await body(item) }
            guard let last = page.last?.id else { return }
            after = last
        }
    }

    public func deleteItem(_ id: String, in collection: String) async throws {
        try StoredText.check(id, as: "item id")
        guard try await backend.deleteItem(id, in: collection) else { throw StoreError.noSuchItem(collection: collection, id: id) }
    }

    public func search(_ collection: String, vector: [Float], model: ModelIdentity, k: Int, filters: [MetadataFilter]) async throws -> [SearchResult] {
        try await backend.search(checkedQuery(collection, vector: vector, model: model, k: k, filters: filters))
    }

    /// Vector similarity blended with a full-text match of `text` on the metadata (see `HybridScore`).
    public func hybridSearch(_ collection: String, vector: [Float], text: String, model: ModelIdentity, k: Int, filters: [MetadataFilter],
                             vectorWeight: Float) async throws -> [SearchResult] {
        guard vectorWeight.isFinite, (0...1).contains(vectorWeight) else { throw StoreError.invalidVector("the vector weight must be in 0…1") }
        let query = try await checkedQuery(collection, vector: vector, model: model, k: k, filters: filters)
        return try await backend.hybridSearch(query, text: text, vectorWeight: vectorWeight)
    }

    /// Saves what is only in memory (the embedded store's HNSW graphs); a no-op where nothing is.
    public func flush() async throws {
        try await backend.flush()
    }

    private func existingModel(_ collection: String) async throws -> ModelIdentity {
        guard let model = try await backend.model(of: collection) else { throw StoreError.noSuchCollection(collection) }
        return model
    }

    /// The query, once its model is the collection's and its vector fits.
    private func checkedQuery(_ collection: String, vector: [Float], model: ModelIdentity, k: Int, filters: [MetadataFilter]) async throws
        -> VectorQuery
    {
        let stored = try await existingModel(collection)
        guard stored == model else { throw StoreError.modelMismatch(collection: collection, expected: stored, got: model) }
        guard vector.count == stored.dimension else {
            throw StoreError.invalidVector("the query has \(vector.count) values for a \(stored.dimension)-d collection")
        }
        guard vector.allSatisfy(\.isFinite) else { throw StoreError.invalidVector("the query holds a value that is not finite") }
        return VectorQuery(collection: collection, vector: vector, model: stored, k: max(0, min(k, Self.largestK)), filters: filters)
    }

    static func validate(name: String) throws {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy(allowed.contains) else {
            throw StoreError.invalidName(name)
        }
    }

    /// Every vector has the collection's dimension and only finite values; ids, sources and metadata
    /// can be stored exactly (see `StoredText`).
    static func validate(_ items: [Item], dimension: Int) throws {
        for item in items {
            guard item.vector.count == dimension, item.vector.allSatisfy(\.isFinite) else {
                throw StoreError.invalidVector("item \(item.id) has \(item.vector.count) values for a \(dimension)-d collection, or one not finite")
            }
            try StoredText.check(item.id, as: "item id")
            try StoredText.check(item.source, as: "the source of item \(item.id)")
            for (key, value) in item.metadata {
                try StoredText.check(key, as: "metadata field")
                try StoredText.check(value, as: "metadata field \(key)")
            }
        }
    }
}

/// How hybrid search ranks: `score = w · (1 + cosine) / 2 + (1 − w) · text`, where `text` is the item's
/// full-text score on its metadata (BM25 in the embedded store, `ts_rank` in PostgreSQL) divided by the
/// best such score among the candidates (so in [0, 1], and 0 when the metadata does not match), and `w`
/// is the vector weight (0.7 unless given). Candidates are the union of the best vector matches and the
/// best text matches, `candidates(k)` of each.
public enum HybridScore {
    public static let defaultVectorWeight: Float = 0.7

    public static func blend(similarity: Float, text: Float, vectorWeight: Float) -> Float {
        vectorWeight * (1 + similarity) / 2 + (1 - vectorWeight) * text
    }

    public static func candidates(_ k: Int) -> Int { max(5 * k, 50) }

    /// What full-text search sees of an item: its metadata values.
    public static func searchableText(_ metadata: [String: String]) -> String {
        metadata.keys.sorted().compactMap { metadata[$0] }.joined(separator: " \n ")
    }
}

/// Metadata as every backend stores it: a JSON object of strings, keys sorted.
public enum MetadataJSON {
    public static func encode(_ metadata: [String: String]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]), as: UTF8.self)
    }

    public static func decode(_ json: String) -> [String: String]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: String]
    }
}

/// Runs blocking work (SQLite's calls) on threads of its own, so no thread of Swift's
/// concurrency pool waits on a disk, a lock or a socket while requests queue behind it. (A Dispatch queue
/// would not do: on Linux, Dispatch's worker threads are the pool's, as many as there are cores.)
/// Threads start as work arrives, up to `maximumThreads`, and end after a few seconds without work.
public final class BlockingWork: @unchecked Sendable {
    private let name: String
    private let maximumThreads: Int
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var threads = 0
    private var idle = 0

    public init(label: String, maximumThreads: Int = 32) {
        name = label
        self.maximumThreads = max(1, maximumThreads)
    }

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue { continuation.resume(with: Result { try work() }) }
        }
    }

    private func enqueue(_ job: @escaping () -> Void) {
        condition.withLock {
            jobs.append(job)
            if idle > 0 {
                condition.signal()
            } else if threads < maximumThreads {
                threads += 1
                let thread = Thread { [self] in serve() }
                thread.name = name
                thread.stackSize = 8 << 20
                thread.start()
            }
        }
    }

    private func serve() {
        condition.lock()
        while true {
            while jobs.isEmpty {
                idle += 1
                let woken = condition.wait(until: Date().addingTimeInterval(5))
                idle -= 1
                if !woken && jobs.isEmpty {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
            condition.lock()
        }
    }
}
