import Foundation
import ImageCollections
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
public final class PostgresStore: StoreBackend, @unchecked Sendable {
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
    private let pool: PostgresPool
    private let work = BlockingWork(label: "loupe.postgres-store")
    /// What each collection's index holds, as last read with its model. `CollectionStore` reads the model
    /// just before every search, so a search takes this from that read instead of asking again.
    private let lastIndexVectors = Mutex<[String: IndexVectors]>([:])

    public init(url: String, parameters: Parameters = Parameters()) throws {
        self.parameters = parameters
        pool = try PostgresPool(url: url, size: parameters.connections)
        try migrate()
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

    private func migrate() throws {
        try pool.transaction { connection in
            try connection.execute("SELECT pg_advisory_xact_lock(7_400_211)")  // Loupe's schema lock
            try connection.execute("CREATE TABLE IF NOT EXISTS loupe_schema (version integer NOT NULL)")
            let version = try connection.execute("SELECT max(version) FROM loupe_schema").first?.integer(0) ?? 0
            for (index, statements) in Self.migrations.enumerated() where index + 1 > version {
                for statement in statements { try connection.execute(statement) }
                try connection.execute("INSERT INTO loupe_schema (version) VALUES ($1)", [.text(String(index + 1))])
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
        try await work.run {
            try self.pool.transaction { connection in
                let vectors = self.parameters.vectors
                let inserted = try connection.execute("""
                    INSERT INTO loupe_collections (name, model_id, model_revision, dimension, index_vectors) VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (name) DO NOTHING RETURNING name
                    """, [.text(name), .text(model.id), .text(model.revision), .text(String(model.dimension)), .text(vectors.rawValue)])
                guard !inserted.isEmpty, model.dimension <= vectors.largestIndexedDimension else { return }
                // DDL takes no parameters: CollectionStore allows names of letters, digits, - and _ only.
                try connection.execute("""
                    CREATE INDEX IF NOT EXISTS \(Self.indexName(name)) ON loupe_items
                    USING hnsw ((embedding::\(vectors.type)(\(model.dimension))) \(vectors.type)_cosine_ops)
                    WITH (m = \(self.parameters.m), ef_construction = \(self.parameters.efConstruction)) WHERE collection = '\(name)'
                    """)
            }
        }
    }

    public func collections(named name: String?) async throws -> [CollectionInfo] {
        try await work.run { try self.collections(where: name) }
    }

    private func collections(where name: String?) throws -> [CollectionInfo] {
        let rows = try pool.withConnection { connection in
            try connection.execute("""
                SELECT c.name, c.model_id, c.model_revision, c.dimension, coalesce(n.items, 0)
                FROM loupe_collections c LEFT JOIN (
                    SELECT collection, count(*) AS items FROM loupe_items WHERE $1::text IS NULL OR collection = $1 GROUP BY collection
                ) n ON n.collection = c.name
                WHERE $1::text IS NULL OR c.name = $1 ORDER BY c.name
                """, [name.map { .text($0) } ?? .null])
        }
        return rows.compactMap { row in
            guard let name = row.text(0), let id = row.text(1), let revision = row.text(2), let dimension = row.integer(3),
                let count = row.integer(4)
            else { return nil }
            return CollectionInfo(name: name, model: ModelIdentity(id: id, revision: revision, dimension: Int(dimension)), itemCount: Int(count))
        }
    }

    public func model(of collection: String) async throws -> ModelIdentity? {
        try await work.run { try self.recorded(collection)?.model }
    }

    /// The collection's model and the vectors its index holds.
    private func recorded(_ collection: String) throws -> (model: ModelIdentity, vectors: IndexVectors)? {
        let found = try pool.withConnection { connection in
            try connection.execute("SELECT model_id, model_revision, dimension, index_vectors FROM loupe_collections WHERE name = $1",
                                   [.text(collection)])
        }.first.flatMap { row -> (model: ModelIdentity, vectors: IndexVectors)? in
            guard let id = row.text(0), let revision = row.text(1), let dimension = row.integer(2),
                let vectors = row.text(3).flatMap(IndexVectors.init(rawValue:))
            else { return nil }
            return (ModelIdentity(id: id, revision: revision, dimension: Int(dimension)), vectors)
        }
        lastIndexVectors.withLock { $0[collection] = found?.vectors }
        return found
    }

    public func deleteCollection(_ name: String) async throws {
        try await work.run {
            try self.pool.transaction { connection in
                try connection.execute("DROP INDEX IF EXISTS \(Self.indexName(name))")
                try connection.execute("DELETE FROM loupe_items WHERE collection = $1", [.text(name)])
                try connection.execute("DELETE FROM loupe_collections WHERE name = $1", [.text(name)])
            }
        }
    }

    // MARK: Items

    public func upsert(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) async throws {
        try await work.run { try self.upsertNow(items, into: collection, removing: removing) }
    }

    private func upsertNow(_ items: [Item], into collection: String, removing: [String]) throws {
        try pool.transaction { connection in
            for id in removing {
                try connection.execute("DELETE FROM loupe_items WHERE collection = $1 AND id = $2", [.text(collection), .text(id)])
            }
            for item in items {
                let metadata = try MetadataJSON.encode(item.metadata)
                try connection.execute("""
                    INSERT INTO loupe_items (collection, id, source, content_hash, metadata, embedding, thumbnail, search_text)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6::vector, $7, $8)
                    ON CONFLICT (collection, id) DO UPDATE SET source = excluded.source, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, embedding = excluded.embedding, thumbnail = excluded.thumbnail,
                        search_text = excluded.search_text
                    """, [.text(collection), .text(item.id), .text(item.source), .text(item.contentHash), .text(metadata),
                          .text(Self.vectorLiteral(item.vector)), item.thumbnail.map { .bytes($0) } ?? .null,
                          .text(Self.foldedForSearch(HybridScore.searchableText(item.metadata)))])
            }
        }
    }

    public func item(_ id: String, in collection: String) async throws -> Item? {
        try await work.run {
            try self.pool.withConnection { connection in
                try connection.execute("SELECT \(Self.itemColumns) FROM loupe_items WHERE collection = $1 AND id = $2",
                                       [.text(collection), .text(id)]).first.map(Self.item)
            }
        }
    }

    public func thumbnail(_ id: String, in collection: String) async throws -> Data? {
        try await work.run {
            try self.pool.withConnection { connection in
                try connection.execute("SELECT thumbnail FROM loupe_items WHERE collection = $1 AND id = $2",
                                       [.text(collection), .text(id)], binaryResults: true).first?.bytes(0)
            }
        }
    }

    public func contentHashes(in collection: String) async throws -> [String: String] {
        try await work.run {
            var hashes = [String: String]()
            for row in try self.pool.withConnection({ try $0.execute("SELECT id, content_hash FROM loupe_items WHERE collection = $1", [.text(collection)]) }) {
                if let id = row.text(0), let hash = row.text(1) { hashes[id] = hash }
            }
            return hashes
        }
    }

    public func items(in collection: String, after: String, limit: Int) async throws -> [Item] {
        try await work.run {
            try self.pool.withConnection { connection in
                try connection.execute("""
                    SELECT \(Self.itemColumns) FROM loupe_items WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3::integer
                    """, [.text(collection), .text(after), .text(String(limit))]).map(Self.item)
            }
        }
    }

    public func deleteItem(_ id: String, in collection: String) async throws -> Bool {
        try await work.run {
            try self.pool.withConnection { connection in
                try connection.execute("DELETE FROM loupe_items WHERE collection = $1 AND id = $2 RETURNING id", [.text(collection), .text(id)])
            }.isEmpty == false
        }
    }

    // MARK: Search

    public func search(_ query: VectorQuery) async throws -> [SearchResult] {
        try await work.run { try self.searchNow(query) }
    }

    private func searchNow(_ query: VectorQuery) throws -> [SearchResult] {
        let (collection, vector, k, filters, dimension) = (query.collection, query.vector, query.k, query.filters, query.model.dimension)
        let vectors = try indexVectors(collection)
        // A float16 index gives approximate distances: more candidates, rescored with the float32 vectors.
        let candidates = vectors == .float32 ? k : max(4 * k, k + 32)
        var parameters: [PostgresConnection.Parameter] = [.text(collection), .text(Self.vectorLiteral(vector)), .text(String(k)),
                                                          .text(String(candidates))]
        let condition = Self.condition(filters, parameters: &parameters)
        return try pool.transaction { connection in
            try tuneSearch(connection, filtered: !filters.isEmpty, results: candidates)
            return try connection.execute("""
                SELECT \(Self.itemColumns), 1 - (embedding::vector(\(dimension)) <=> $2::vector(\(dimension))) AS similarity
                FROM (SELECT * FROM loupe_items WHERE collection = $1 AND \(condition)
                      ORDER BY \(vectors.distance(dimension)) LIMIT $4::integer) AS candidates
                ORDER BY similarity DESC LIMIT $3::integer
                """, parameters)
        }.map { row in SearchResult(item: Self.item(row), similarity: Float(row.double(5) ?? -1)) }
    }

    public func hybridSearch(_ query: VectorQuery, text: String, vectorWeight: Float) async throws -> [SearchResult] {
        try await work.run { try self.hybridSearchNow(query, text: text, vectorWeight: vectorWeight) }
    }

    private func hybridSearchNow(_ query: VectorQuery, text: String, vectorWeight: Float) throws -> [SearchResult] {
        let (collection, vector, k, filters, dimension) = (query.collection, query.vector, query.k, query.filters, query.model.dimension)
        let vectors = try indexVectors(collection)
        let candidates = HybridScore.candidates(k)
        // Words only, joined by OR: nothing the user typed is read as tsquery syntax.
        let words = Self.foldedForSearch(text).split(whereSeparator: { !$0.isLetter && !$0.isNumber }).prefix(32)
        let query = words.map(String.init).joined(separator: " | ")
        var parameters: [PostgresConnection.Parameter] = [.text(collection), .text(Self.vectorLiteral(vector)), .text(String(candidates)), .text(query)]
        let condition = Self.condition(filters, parameters: &parameters)
        let rows = try pool.transaction { connection in
            try tuneSearch(connection, filtered: !filters.isEmpty, results: candidates)
            return try connection.execute("""
                WITH query AS (SELECT to_tsquery('simple', $4) AS words),
                vector_hits AS (
                    SELECT id FROM loupe_items WHERE collection = $1 AND \(condition)
                    ORDER BY \(vectors.distance(dimension)) LIMIT $3::integer),
                text_hits AS (
                    SELECT id FROM loupe_items, query WHERE $4 <> '' AND collection = $1 AND search @@ words AND \(condition)
                    ORDER BY ts_rank(search, words) DESC LIMIT $3::integer)
                SELECT \(Self.itemColumns), 1 - (embedding::vector(\(dimension)) <=> $2::vector(\(dimension))),
                    CASE WHEN $4 <> '' AND search @@ words THEN ts_rank(search, words) ELSE 0 END
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
    private func indexVectors(_ collection: String) throws -> IndexVectors {
        if let vectors = lastIndexVectors.withLock({ $0[collection] }) { return vectors }
        guard let vectors = try recorded(collection)?.vectors else { throw StoreError.noSuchCollection(collection) }
        return vectors
    }

    /// Search settings for this transaction only. An index scan returns at most ef_search rows, so it is
    /// at least the rows asked for (up to pgvector's 1,000). With filters, pgvector 0.8 keeps scanning the
    /// graph until enough rows pass them (`iterative_scan`), instead of filtering only the first ef_search.
    private func tuneSearch(_ connection: PostgresConnection, filtered: Bool, results: Int) throws {
        let efSearch = min(max(parameters.efSearch, results), 1000)
        try connection.execute("SELECT set_config('hnsw.ef_search', $1, true)", [.text(String(efSearch))])
        if filtered { try connection.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)") }
    }

    /// The filters as SQL over bound parameters appended to `parameters`. A numeric range reads the
    /// field's first number, as `MetadataFilter.number` does.
    static func condition(_ filters: [MetadataFilter], parameters: inout [PostgresConnection.Parameter]) -> String {
        var clauses = ["true"]
        func bind(_ value: String) -> String {
            parameters.append(.text(value))
            return "$\(parameters.count)"
        }
        func firstNumber(_ field: String) -> String {
            "substring(metadata ->> \(bind(field)) from '[0-9]+(?:\\.[0-9]+)?')::float8"
        }
        for filter in filters {
            switch filter {
            case .equals(let field, let value): clauses.append("metadata ->> \(bind(field)) = \(bind(value))")
            case .atLeast(let field, let value): clauses.append("\(firstNumber(field)) >= \(bind(String(value)))::float8")
            case .atMost(let field, let value): clauses.append("\(firstNumber(field)) <= \(bind(String(value)))::float8")
            }
        }
        return clauses.joined(separator: " AND ")
    }

    // MARK: Values

    /// The columns `item(_:)` reads, in its order.
    static let itemColumns = "id, source, content_hash, metadata::text, embedding::text"

    /// pgvector's text form. Swift prints the shortest decimal that reads back as the same Float, and
    /// pgvector prints the same way, so vectors round-trip exactly.
    static func vectorLiteral(_ vector: [Float]) -> String {
        "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
    }

    static func parseVector(_ text: String) -> [Float] {
        text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").compactMap { Float($0) }
    }

    /// Lower case without accents, so "RÉNOIR" finds "Renoir" as the embedded store's tokenizer does.
    static func foldedForSearch(_ text: String) -> String {
        text.folding(options: [.diacriticInsensitive, .caseInsensitive, .widthInsensitive], locale: nil)
    }

    static func item(_ row: PostgresConnection.Row) -> Item {
        Item(id: row.text(0) ?? "", source: row.text(1) ?? "", contentHash: row.text(2) ?? "",
             metadata: row.text(3).flatMap(MetadataJSON.decode) ?? [:], vector: row.text(4).map(parseVector) ?? [])
    }
}

extension PostgresStore {
    public func flush() async throws {}
}

extension CollectionStore {
    /// PostgreSQL with pgvector at `url`, behind the policy every store shares.
    public static func postgres(url: String, parameters: PostgresStore.Parameters = PostgresStore.Parameters()) throws -> CollectionStore {
        CollectionStore(try PostgresStore(url: url, parameters: parameters))
    }
}
