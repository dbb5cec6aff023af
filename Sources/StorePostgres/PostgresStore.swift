import Foundation
import ImageCollections
import NIOCore
import NIOFoundationCompat
import PostgresNIO
import Synchronization

/// Collections in PostgreSQL with pgvector, for collections that outgrow one machine.
///
/// One items table for every collection, keyed by (collection, id), so a distributed PostgreSQL (Citus,
/// Azure Cosmos DB for PostgreSQL) can shard it by `collection` (see the README). Vectors are a `vector`
/// column; each collection gets a partial HNSW index (`vector_cosine_ops`) over the column cast to its
/// dimension, which is how pgvector indexes a column whose rows have different dimensions. With
/// `vectors: .float16` a new collection's index holds `halfvec`s instead (`halfvec_cosine_ops`: half the
/// index's memory, and up to 4,000 dimensions), the table keeps float32, and the best candidates the
/// index finds are rescored with the float32 vectors (pgvector's half-precision indexing). Full-text
/// search uses a `tsvector` of the metadata values, folded to lower case without accents by Loupe (so no
/// `unaccent` extension is needed) and indexed with GIN.
public final class PostgresStore: StoreBackend, Sendable {
    public struct Parameters: Sendable, Equatable {
        /// HNSW links per node and build-time candidates (pgvector's `m`, `ef_construction`).
        public var m: Int
        public var efConstruction: Int
        /// Candidates kept while searching (`hnsw.ef_search`).
        public var efSearch: Int
        /// Connections kept open.
        public var connections: Int
        /// What a new collection's index holds: float32 (`vector`) or float16 (`halfvec`). A collection
        /// keeps the choice it was made with.
        public var vectors: IndexVectors

        public init(m: Int = 16, efConstruction: Int = 128, efSearch: Int = 96, connections: Int = 4, vectors: IndexVectors = .float32) {
            self.m = m
            self.efConstruction = efConstruction
            self.efSearch = efSearch
            self.connections = connections
            self.vectors = vectors
        }
    }

    /// The vectors in a collection's HNSW index.
    public enum IndexVectors: String, Sendable, Equatable {
        case float32, float16

        /// pgvector's type (its cosine operator class is the type's name with `_cosine_ops`).
        var type: String { self == .float32 ? "vector" : "halfvec" }
        /// The most dimensions pgvector's HNSW indexes for the type; larger vectors are searched exactly.
        var largestIndexedDimension: Int { self == .float32 ? 2000 : 4000 }
        /// The distance the index orders by, between the stored vector and the query ($2). The query is
        /// read as a `vector` first: PostgreSQL gives a parameter the type of its first cast, and a query
        /// read as `halfvec` would round the float32 rescoring's query too.
        func distance(_ dimension: Int) -> String {
            "embedding::\(type)(\(dimension)) <=> $2::vector(\(dimension))" + (self == .float32 ? "" : "::halfvec(\(dimension))")
        }
    }

    public let parameters: Parameters
    private let database: PostgresDatabase
    /// What each collection's index holds, as last read with its model. `CollectionStore` reads the model
    /// just before every search, so a search takes this from that read instead of asking again.
    private let lastIndexVectors = Mutex<[String: IndexVectors]>([:])

    /// Connects, bringing the schema up to date first; a bad URL or an unreachable server fails here.
    public static func connect(url: String, parameters: Parameters = Parameters()) async throws -> PostgresStore {
        PostgresStore(database: try await PostgresDatabase.connect(url: url, connections: parameters.connections, prepare: migrate),
                      parameters: parameters)
    }

    private init(database: PostgresDatabase, parameters: Parameters) {
        self.database = database
        self.parameters = parameters
    }

    // MARK: Schema

    /// Schema versions, applied in order under an advisory lock (two Loupe processes may start at once)
    /// and recorded in `loupe_schema`.
    static let migrations: [[String]] = [
        [
            "CREATE EXTENSION IF NOT EXISTS vector",
            """
            CREATE TABLE loupe_collections (
                name text COLLATE "C" PRIMARY KEY, model_id text NOT NULL, model_revision text NOT NULL,
                dimension integer NOT NULL CHECK (dimension > 0), created_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE loupe_items (
                collection text COLLATE "C" NOT NULL REFERENCES loupe_collections (name),
                id text COLLATE "C" NOT NULL, source text NOT NULL, content_hash text NOT NULL,
                metadata jsonb NOT NULL, embedding vector NOT NULL, thumbnail bytea, search_text text NOT NULL,
                search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED,
                PRIMARY KEY (collection, id))
            """,
            "CREATE INDEX loupe_items_search ON loupe_items USING gin (search)",
        ],
        [
            """
            ALTER TABLE loupe_collections ADD COLUMN index_vectors text NOT NULL DEFAULT 'float32'
                CHECK (index_vectors IN ('float32', 'float16'))
            """,
        ],
    ]

    private static func migrate(_ connection: PostgresDatabase.Connection) async throws {
        try await connection.transaction { connection in
            try await connection.execute("SELECT pg_advisory_xact_lock(7_400_211)")  // Loupe's schema lock
            try await connection.execute("CREATE TABLE IF NOT EXISTS loupe_schema (version integer NOT NULL)")
            let version = try await connection.execute("SELECT max(version) FROM loupe_schema").first?.integer(0) ?? 0
            for (index, statements) in migrations.enumerated() where index + 1 > version {
                for statement in statements { try await connection.execute(statement) }
                try await connection.execute("INSERT INTO loupe_schema (version) VALUES ($1)", [.integer(index + 1)])
            }
        }
    }

    /// The collection's HNSW index: named by a hash, because names may be longer than PostgreSQL's 63 bytes.
    static func indexName(_ collection: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in collection.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "loupe_hnsw_" + String(hash, radix: 16)
    }

    // MARK: Collections

    public func createCollection(_ name: String, model: ModelIdentity) async throws {
        try await database.transaction { connection in
            let vectors = parameters.vectors
            let inserted = try await connection.execute("""
                INSERT INTO loupe_collections (name, model_id, model_revision, dimension, index_vectors) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (name) DO NOTHING RETURNING name
                """, [.text(name), .text(model.id), .text(model.revision), .integer(model.dimension), .text(vectors.rawValue)])
            guard !inserted.isEmpty, model.dimension <= vectors.largestIndexedDimension else { return }
            // DDL takes no parameters: CollectionStore allows names of letters, digits, - and _ only.
            try await connection.execute("""
                CREATE INDEX IF NOT EXISTS \(Self.indexName(name)) ON loupe_items
                USING hnsw ((embedding::\(vectors.type)(\(model.dimension))) \(vectors.type)_cosine_ops)
                WITH (m = \(parameters.m), ef_construction = \(parameters.efConstruction)) WHERE collection = '\(name)'
                """)
        }
    }

    public func collections(named name: String?) async throws -> [CollectionInfo] {
        try await database.execute("""
            SELECT c.name, c.model_id, c.model_revision, c.dimension, coalesce(n.items, 0)
            FROM loupe_collections c LEFT JOIN (
                SELECT collection, count(*) AS items FROM loupe_items WHERE $1::text IS NULL OR collection = $1 GROUP BY collection
            ) n ON n.collection = c.name
            WHERE $1::text IS NULL OR c.name = $1 ORDER BY c.name
            """, [name.map { .text($0) } ?? .null]).compactMap { row in
            guard let name = row.text(0), let id = row.text(1), let revision = row.text(2), let dimension = row.integer(3),
                let count = row.integer(4)
            else { return nil }
            return CollectionInfo(name: name, model: ModelIdentity(id: id, revision: revision, dimension: dimension), itemCount: count)
        }
    }

    public func model(of collection: String) async throws -> ModelIdentity? {
        try await recorded(collection)?.model
    }

    /// The collection's model and the vectors its index holds.
    private func recorded(_ collection: String) async throws -> (model: ModelIdentity, vectors: IndexVectors)? {
        let found = try await database.execute(
            "SELECT model_id, model_revision, dimension, index_vectors FROM loupe_collections WHERE name = $1", [.text(collection)]
        ).first.flatMap { row -> (model: ModelIdentity, vectors: IndexVectors)? in
            guard let id = row.text(0), let revision = row.text(1), let dimension = row.integer(2),
                let vectors = row.text(3).flatMap(IndexVectors.init(rawValue:))
            else { return nil }
            return (ModelIdentity(id: id, revision: revision, dimension: dimension), vectors)
        }
        lastIndexVectors.withLock { $0[collection] = found?.vectors }
        return found
    }

    public func deleteCollection(_ name: String) async throws {
        try await database.transaction { connection in
            try await connection.execute("DROP INDEX IF EXISTS \(Self.indexName(name))")
            try await connection.execute("DELETE FROM loupe_items WHERE collection = $1", [.text(name)])
            try await connection.execute("DELETE FROM loupe_collections WHERE name = $1", [.text(name)])
        }
    }

    // MARK: Items

    public func upsert(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) async throws {
        try await database.transaction { connection in
            for id in removing {
                try await connection.execute("DELETE FROM loupe_items WHERE collection = $1 AND id = $2", [.text(collection), .text(id)])
            }
            for item in items {
                let metadata = try MetadataJSON.encode(item.metadata)
                try await connection.execute("""
                    INSERT INTO loupe_items (collection, id, source, content_hash, metadata, embedding, thumbnail, search_text)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6::vector, $7, $8)
                    ON CONFLICT (collection, id) DO UPDATE SET source = excluded.source, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, embedding = excluded.embedding, thumbnail = excluded.thumbnail,
                        search_text = excluded.search_text
                    """, [.text(collection), .text(item.id), .text(item.source), .text(item.contentHash), .text(metadata),
                          .vector(item.vector), item.thumbnail.map { .bytes($0) } ?? .null,
                          .text(Self.foldedForSearch(HybridScore.searchableText(item.metadata)))])
            }
        }
    }

    public func item(_ id: String, in collection: String) async throws -> Item? {
        try await database.execute("SELECT \(Self.itemColumns) FROM loupe_items WHERE collection = $1 AND id = $2",
                                   [.text(collection), .text(id)]).first.map(Self.item)
    }

    public func thumbnail(_ id: String, in collection: String) async throws -> Data? {
        try await database.execute("SELECT thumbnail FROM loupe_items WHERE collection = $1 AND id = $2",
                                   [.text(collection), .text(id)]).first?.bytes(0)
    }

    public func contentHashes(in collection: String) async throws -> [String: String] {
        var hashes = [String: String]()
        for row in try await database.execute("SELECT id, content_hash FROM loupe_items WHERE collection = $1", [.text(collection)]) {
            if let id = row.text(0), let hash = row.text(1) { hashes[id] = hash }
        }
        return hashes
    }

    public func items(in collection: String, after: String, limit: Int) async throws -> [Item] {
        try await database.execute("SELECT \(Self.itemColumns) FROM loupe_items WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3",
                                   [.text(collection), .text(after), .integer(limit)]).map(Self.item)
    }

    public func deleteItem(_ id: String, in collection: String) async throws -> Bool {
        try await database.execute("DELETE FROM loupe_items WHERE collection = $1 AND id = $2 RETURNING id",
                                   [.text(collection), .text(id)]).isEmpty == false
    }

    // MARK: Search

    public func search(_ query: VectorQuery) async throws -> [SearchResult] {
        let (collection, vector, k, filters, dimension) = (query.collection, query.vector, query.k, query.filters, query.model.dimension)
        let vectors = try await indexVectors(collection)
        // A float16 index gives approximate distances: more candidates, rescored with the float32 vectors.
        let candidates = vectors == .float32 ? k : max(4 * k, k + 32)
        var parameters: [PostgresDatabase.Value] = [.text(collection), .vector(vector), .integer(k), .integer(candidates)]
        let condition = Self.condition(filters, parameters: &parameters)
        let efSearch = searchBreadth(candidates)
        return try await database.transaction { connection in
            try await tuneSearch(connection, filtered: !filters.isEmpty, efSearch: efSearch)
            return try await connection.execute("""
                SELECT \(Self.itemColumns), 1 - (embedding::vector(\(dimension)) <=> $2::vector(\(dimension))) AS similarity
                FROM (SELECT * FROM loupe_items WHERE collection = $1 AND \(condition)
                      ORDER BY \(vectors.distance(dimension)) LIMIT $4) AS candidates
                ORDER BY similarity DESC LIMIT $3
                """, parameters)
        }.map { row in SearchResult(item: Self.item(row), similarity: Float(row.double(5) ?? -1)) }
    }

    public func hybridSearch(_ query: VectorQuery, text: String, vectorWeight: Float) async throws -> [SearchResult] {
        let (collection, vector, k, filters, dimension) = (query.collection, query.vector, query.k, query.filters, query.model.dimension)
        let vectors = try await indexVectors(collection)
        let candidates = HybridScore.candidates(k)
        // Words only, joined by OR: nothing the user typed is read as tsquery syntax.
        let words = Self.foldedForSearch(text).split(whereSeparator: { !$0.isLetter && !$0.isNumber }).prefix(32)
        let query = words.map(String.init).joined(separator: " | ")
        var parameters: [PostgresDatabase.Value] = [.text(collection), .vector(vector), .integer(candidates), .text(query)]
        let condition = Self.condition(filters, parameters: &parameters)
        let efSearch = searchBreadth(candidates)
        let rows = try await database.transaction { connection in
            try await tuneSearch(connection, filtered: !filters.isEmpty, efSearch: efSearch)
            return try await connection.execute("""
                WITH query AS (SELECT to_tsquery('simple', $4) AS words),
                vector_hits AS (
                    SELECT id FROM loupe_items WHERE collection = $1 AND \(condition)
                    ORDER BY \(vectors.distance(dimension)) LIMIT $3),
                text_hits AS (
                    SELECT id FROM loupe_items, query WHERE $4 <> '' AND collection = $1 AND search @@ words AND \(condition)
                    ORDER BY ts_rank(search, words) DESC LIMIT $3)
                SELECT \(Self.itemColumns), 1 - (embedding::vector(\(dimension)) <=> $2::vector(\(dimension))),
                    CASE WHEN $4 <> '' AND search @@ words THEN ts_rank(search, words)::float8 ELSE 0 END
                FROM loupe_items, query
                WHERE collection = $1 AND id IN (SELECT id FROM vector_hits UNION SELECT id FROM text_hits)
                """, parameters)
        }
        let best = rows.compactMap { $0.double(6) }.max() ?? 0
        return rows.map { row -> SearchResult in
            let similarity = Float(row.double(5) ?? -1)
            let textScore = best > 0 ? Float((row.double(6) ?? 0) / best) : 0
            return SearchResult(item: Self.item(row), similarity: similarity,
                                relevance: HybridScore.blend(similarity: similarity, text: textScore, vectorWeight: vectorWeight))
        }.sorted { $0.relevance > $1.relevance }.prefix(k).map { $0 }
    }

    /// What the collection's index holds: from the read of its model just before, else read now.
    private func indexVectors(_ collection: String) async throws -> IndexVectors {
        if let vectors = lastIndexVectors.withLock({ $0[collection] }) { return vectors }
        guard let vectors = try await recorded(collection)?.vectors else { throw StoreError.noSuchCollection(collection) }
        return vectors
    }

    /// An index scan returns at most ef_search rows, so it is at least the rows asked for (up to
    /// pgvector's 1,000).
    private func searchBreadth(_ results: Int) -> Int { min(max(parameters.efSearch, results), 1000) }

    /// Search settings for this transaction only. With filters, pgvector 0.8 keeps scanning the graph
    /// until enough rows pass them (`iterative_scan`), instead of filtering only the first ef_search.
    private func tuneSearch(_ connection: PostgresDatabase.Connection, filtered: Bool, efSearch: Int) async throws {
        try await connection.execute("SELECT set_config('hnsw.ef_search', $1, true)", [.text(String(efSearch))])
        if filtered { try await connection.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)") }
    }

    /// The filters as SQL over bound parameters appended to `parameters`. A numeric range reads the
    /// field's first number, as `MetadataFilter.number` does.
    static func condition(_ filters: [MetadataFilter], parameters: inout [PostgresDatabase.Value]) -> String {
        var clauses = ["true"]
        func bind(_ value: PostgresDatabase.Value) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        func firstNumber(_ field: String) -> String {
            "substring(metadata ->> \(bind(.text(field))) from '[0-9]+(?:\\.[0-9]+)?')::float8"
        }
        for filter in filters {
            switch filter {
            case .equals(let field, let value): clauses.append("metadata ->> \(bind(.text(field))) = \(bind(.text(value)))")
            case .atLeast(let field, let value): clauses.append("\(firstNumber(field)) >= \(bind(.number(value)))")
            case .atMost(let field, let value): clauses.append("\(firstNumber(field)) <= \(bind(.number(value)))")
            }
        }
        return clauses.joined(separator: " AND ")
    }

    // MARK: Values

    /// The columns `item(_:)` reads, in its order.
    static let itemColumns = "id, source, content_hash, metadata::text, embedding"

    /// Lower case without accents, so "RÉNOIR" finds "Renoir" as the embedded store's tokenizer does.
    static func foldedForSearch(_ text: String) -> String {
        text.folding(options: [.diacriticInsensitive, .caseInsensitive, .widthInsensitive], locale: nil)
    }

    static func item(_ row: PostgresRandomAccessRow) -> Item {
        Item(id: row.text(0) ?? "", source: row.text(1) ?? "", contentHash: row.text(2) ?? "",
             metadata: row.text(3).flatMap(MetadataJSON.decode) ?? [:], vector: row.vector(4) ?? [])
    }
}

extension PostgresStore {
    public func flush() async throws {}
}

extension CollectionStore {
    /// PostgreSQL with pgvector at `url`, behind the policy every store shares.
    public static func postgres(url: String, parameters: PostgresStore.Parameters = PostgresStore.Parameters()) async throws -> CollectionStore {
        CollectionStore(try await PostgresStore.connect(url: url, parameters: parameters))
    }
}

/// Typed reads of a row's cells; a NULL or a value of another type reads as nil.
extension PostgresRandomAccessRow {
    func text(_ column: Int) -> String? { (try? self[column].decode(String?.self)) ?? nil }
    func integer(_ column: Int) -> Int? { (try? self[column].decode(Int?.self)) ?? nil }
    func double(_ column: Int) -> Double? { (try? self[column].decode(Double?.self)) ?? nil }
    func bytes(_ column: Int) -> Data? { ((try? self[column].decode(ByteBuffer?.self)) ?? nil).map { Data(buffer: $0) } }
    func vector(_ column: Int) -> [Float]? { ((try? self[column].decode(PGVector?.self)) ?? nil)?.values }
}
