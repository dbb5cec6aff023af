import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import ImageCollections
import MilvusGRPC
import Synchronization

/// Collections in Milvus (standalone, distributed, Zilliz Cloud, or Milvus Lite), over its gRPC protocol.
///
/// Each Loupe collection is one Milvus collection, `loupe_` and its name (`_` doubled, `-` as `_d`), so
/// dropping one drops its data and index at once and collections of different dimensions never meet.
/// Its fields: `id` (the primary key), `vector` (an HNSW index, COSINE), `source`, `content_hash`,
/// `metadata` (JSON), `numbers` (JSON: each metadata field's first number, written with the item, so
/// `DATE>=1800` is the expression `numbers["DATE"] >= 1800`) and `thumbnail` (base64 JPEG). The model
/// identity is kept in the collection's properties. A thumbnail is kept when its base64 fits a VARCHAR
/// (65,535 bytes), and ids and sources may be as long. Reads are strongly consistent: a search sees every
/// write before it.
///
/// Milvus has no transactions. A write deletes the items it replaces first and then writes the new ones,
/// in requests of up to 16 MB; when one write needs several requests, its first item is stored with an
/// empty content hash until the last request has landed, so an ingest killed half way never takes the
/// half-written video for unchanged and writes it again. Milvus ranks no text: hybrid search is refused.
public final class MilvusStore: StoreBackend, Sendable {
    public struct Parameters: Sendable, Equatable {
        /// HNSW links per node and build-time candidates (Milvus's `M`, `efConstruction`).
        public var m: Int
        public var efConstruction: Int
        /// Candidates kept while searching (`ef`); at least the results asked for.
        public var efSearch: Int
        /// The most bytes of items one write request carries (Milvus takes up to 64 MB by default).
        public var requestBytes: Int

        public init(m: Int = 16, efConstruction: Int = 128, efSearch: Int = 96, requestBytes: Int = 16 << 20) {
            self.m = m
            self.efConstruction = efConstruction
            self.efSearch = efSearch
            self.requestBytes = requestBytes
        }
    }

    /// `milvus://HOST:PORT[/DATABASE]`, or `milvus+https://…` for a cluster behind TLS (Zilliz Cloud's
    /// public endpoints, a TLS-terminating proxy).
    public struct Address: Sendable, Equatable {
        public let host: String
        public let port: Int
        public let database: String?
        public let tls: Bool

        public init(url: String) throws {
            guard let components = URLComponents(string: url), let scheme = components.scheme, ["milvus", "milvus+https"].contains(scheme),
                let host = components.host, !host.isEmpty
            else {
                throw StoreError.database("\(url) is not a Milvus address: use milvus://HOST:PORT[/DATABASE], or milvus+https://… for TLS")
            }
            tls = scheme == "milvus+https"
            guard components.user == nil, components.password == nil, components.query == nil else {
                throw StoreError.database("a Milvus address holds no user, password or options: the token goes in MILVUS_TOKEN")
            }
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard !path.contains("/") else { throw StoreError.database("\(url): the path names one database") }
            self.host = host
            port = components.port ?? 19530
            database = path.isEmpty ? nil : path
        }

        /// Where gRPC connects. An address given as an IP literal is one (a name to resolve would also be
        /// sent as TLS's server name, which may not be an IP address); TLS then checks the certificate
        /// against the address itself.
        var target: any ResolvableTarget {
            let literal = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            var ipv4 = in_addr(), ipv6 = in6_addr()
            if inet_pton(AF_INET, literal, &ipv4) == 1 { return .ipv4(host: literal, port: port) }
            if inet_pton(AF_INET6, literal, &ipv6) == 1 { return .ipv6(host: literal, port: port) }
            return .dns(host: host, port: port)
        }
    }

    public let address: Address
    public let parameters: Parameters
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let service: Milvus_Proto_Milvus_MilvusService.Client<HTTP2ClientTransport.Posix>
    private let headers: Metadata
    /// Collections this process has asked Milvus to load (search and query need it; loading is idempotent).
    private let loaded = Mutex<Set<String>>([])

    /// Connects to Milvus at `url` and checks that it answers. `token` (`MILVUS_TOKEN` unless given) is
    /// sent as Milvus's clients send it: `user:password`, or an API key.
    /// Over TLS the server's certificate is checked against the system's authorities, or against those in
    /// the PEM file `certificateAuthorities` names (`MILVUS_CA_FILE` unless given).
    public init(url: String, token: String? = ProcessInfo.processInfo.environment["MILVUS_TOKEN"],
                certificateAuthorities: String? = ProcessInfo.processInfo.environment["MILVUS_CA_FILE"], parameters: Parameters = Parameters()) async throws {
        address = try Address(url: url)
        self.parameters = parameters
        var headers = Metadata()
        if let token, !token.isEmpty { headers.addString(Data(token.utf8).base64EncodedString(), forKey: "authorization") }
        if let database = address.database { headers.addString(database, forKey: "dbname") }
        self.headers = headers
        do {
            let security: HTTP2ClientTransport.Posix.TransportSecurity = !address.tls ? .plaintext : .tls { tls in
                if let certificateAuthorities, !certificateAuthorities.isEmpty {
                    tls.trustRoots = .certificates([.file(path: certificateAuthorities, format: .pem)])
                }
            }
            let transport = try HTTP2ClientTransport.Posix(target: address.target, transportSecurity: security)
            client = GRPCClient(transport: transport)
        } catch {
            throw StoreError.database("cannot reach Milvus at \(address.host):\(address.port): \(error)")
        }
        service = Milvus_Proto_Milvus_MilvusService.Client(wrapping: client)
        let client = self.client
        Task { try? await client.runConnections() }
        // A first call, so a wrong address or token fails here and not at the first search.
        try await createDatabaseIfMissing()
    }

    /// The database the address names is made when missing, as the other stores make their tables.
    private func createDatabaseIfMissing() async throws {
        let existing = try await databaseNames(waitForReady: false)
        guard let database = address.database, !existing.contains(database) else { return }
        var request = Milvus_Proto_Milvus_CreateDatabaseRequest()
        request.dbName = database
        let status = try await call("create database \(database)") { try await service.createDatabase(request, metadata: headers, options: options()) }
        // Another process may have made it meanwhile.
        if Self.failed(status), try await !databaseNames().contains(database) { try check(status, "create database \(database)") }
    }

    private func databaseNames(waitForReady: Bool = true) async throws -> [String] {
        let reply = try await call("list databases") {
            try await service.listDatabases(Milvus_Proto_Milvus_ListDatabasesRequest(), metadata: headers, options: options(waitForReady: waitForReady))
        }
        try check(reply.status, "list databases")
        return reply.dbNames
    }

    deinit { client.beginGracefulShutdown() }

    /// The database every request names ("" is Milvus's `default`).
    private var databaseName: String { address.database ?? "" }

    // MARK: Calls

    /// Options of every call: Milvus's replies (a page of vectors and thumbnails) can be far larger than
    /// gRPC's default 4 MB.
    private func options(waitForReady: Bool = true) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = .seconds(60)
        options.maxResponseMessageBytes = 256 << 20
        options.maxRequestMessageBytes = 64 << 20
        options.waitForReady = waitForReady
        return options
    }

    /// Runs one call; transport failures and Milvus's error statuses become `StoreError`s.
    private func call<Reply>(_ what: String, _ body: () async throws -> Reply) async throws -> Reply {
        do {
            return try await body()
        } catch let error as StoreError {
            throw error
        } catch let error as RPCError {
            throw StoreError.database("Milvus at \(address.host):\(address.port) failed to \(what): \(error.code): \(error.message)")
        }
    }

    /// Milvus reports an error in `code` (2.3 on) or the older `error_code`.
    private static func failed(_ status: Milvus_Proto_Common_Status) -> Bool {
        status.code != 0 || status.errorCode != .success
    }

    private func check(_ status: Milvus_Proto_Common_Status, _ what: String) throws {
        guard Self.failed(status) else { return }
        throw StoreError.database("Milvus failed to \(what): \(status.reason)")
    }

    private static func isMissingCollection(_ status: Milvus_Proto_Common_Status) -> Bool {
        status.code == 100 || status.errorCode == .collectionNotExists
    }

    // MARK: Collections

    public func createCollection(_ name: String, model: ModelIdentity) async throws {
        let milvusName = MilvusNames.collection(name)
        var schema = Milvus_Proto_Schema_CollectionSchema()
        schema.name = milvusName
        schema.description_p = "Loupe collection \(name)"
        schema.fields = [
            Self.field("id", .varChar, ["max_length": "65535"], primary: true),
            Self.field("vector", .floatVector, ["dim": String(model.dimension)]),
            Self.field("source", .varChar, ["max_length": "65535"]),
            Self.field("content_hash", .varChar, ["max_length": "1024"]),
            Self.field("metadata", .json),
            Self.field("numbers", .json),
            Self.field("thumbnail", .varChar, ["max_length": "65535"]),
        ]
        var request = Milvus_Proto_Milvus_CreateCollectionRequest()
        request.dbName = databaseName
        request.collectionName = milvusName
        request.schema = try schema.serializedData()
        request.shardsNum = 1
        request.consistencyLevel = .strong
        request.properties = Self.pairs([
            "loupe.model_id": model.id, "loupe.model_revision": model.revision, "loupe.dimension": String(model.dimension),
        ])
        let status = try await call("create \(name)") { try await service.createCollection(request, metadata: headers, options: options()) }
        // Two processes may create it at once: the loser's error is no error when the collection is there.
        if Self.failed(status) {
            if try await self.model(of: name) == nil { try check(status, "create \(name)") }
            return
        }
        var index = Milvus_Proto_Milvus_CreateIndexRequest()
        index.dbName = databaseName
        index.collectionName = milvusName
        index.fieldName = "vector"
        index.indexName = "vector"
        index.extraParams = Self.pairs([
            "index_type": "HNSW", "metric_type": "COSINE",
            "params": #"{"M": \#(parameters.m), "efConstruction": \#(parameters.efConstruction)}"#,
        ])
        try check(try await call("index \(name)") { try await service.createIndex(index, metadata: headers, options: options()) }, "index \(name)")
        try await load(milvusName)
    }

    private static func field(_ name: String, _ type: Milvus_Proto_Schema_DataType, _ parameters: [String: String] = [:], primary: Bool = false)
        -> Milvus_Proto_Schema_FieldSchema
    {
        var field = Milvus_Proto_Schema_FieldSchema()
        field.name = name
        field.dataType = type
        field.isPrimaryKey = primary
        field.typeParams = pairs(parameters)
        return field
    }

    private static func pairs(_ values: [String: String]) -> [Milvus_Proto_Common_KeyValuePair] {
        values.keys.sorted().map { key in
            var pair = Milvus_Proto_Common_KeyValuePair()
            pair.key = key
            pair.value = values[key] ?? ""
            return pair
        }
    }

    private func load(_ milvusName: String) async throws {
        guard !loaded.withLock({ $0.contains(milvusName) }) else { return }
        var request = Milvus_Proto_Milvus_LoadCollectionRequest()
        request.dbName = databaseName
        request.collectionName = milvusName
        let status = try await call("load \(milvusName)") { try await service.loadCollection(request, metadata: headers, options: options()) }
        if Self.isMissingCollection(status) { throw StoreError.noSuchCollection(MilvusNames.loupeName(milvusName) ?? milvusName) }
        try check(status, "load \(milvusName)")
        _ = loaded.withLock { $0.insert(milvusName) }
    }

    public func model(of collection: String) async throws -> ModelIdentity? {
        var request = Milvus_Proto_Milvus_DescribeCollectionRequest()
        request.dbName = databaseName
        request.collectionName = MilvusNames.collection(collection)
        let reply = try await call("describe \(collection)") { try await service.describeCollection(request, metadata: headers, options: options()) }
        if Self.isMissingCollection(reply.status) { return nil }
        try check(reply.status, "describe \(collection)")
        let properties = Dictionary(reply.properties.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let id = properties["loupe.model_id"], let revision = properties["loupe.model_revision"],
            let dimension = properties["loupe.dimension"].flatMap(Int.init)
        else {
            throw StoreError.database("Milvus collection \(request.collectionName) has no Loupe model identity: Loupe did not make it")
        }
        return ModelIdentity(id: id, revision: revision, dimension: dimension)
    }

    private func collectionNames() async throws -> [String] {
        var request = Milvus_Proto_Milvus_ShowCollectionsRequest()
        request.dbName = databaseName
        let reply = try await call("list collections") {
            try await service.showCollections(request, metadata: headers, options: options())
        }
        try check(reply.status, "list collections")
        return reply.collectionNames.compactMap(MilvusNames.loupeName).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    public func collections(named name: String?) async throws -> [CollectionInfo] {
        var infos = [CollectionInfo]()
        for collection in try await collectionNames() where name == nil || collection == name {
            guard let model = try await model(of: collection) else { continue }
            let count = try await query(collection, expression: "", fields: ["count(*)"])
            let items = count.first { $0.fieldName == "count(*)" }?.scalars.longData.data.first ?? 0
            infos.append(CollectionInfo(name: collection, model: model, itemCount: Int(items)))
        }
        return infos
    }

    public func deleteCollection(_ name: String) async throws {
        var request = Milvus_Proto_Milvus_DropCollectionRequest()
        request.dbName = databaseName
        request.collectionName = MilvusNames.collection(name)
        try check(try await call("drop \(name)") { try await service.dropCollection(request, metadata: headers, options: options()) }, "drop \(name)")
        _ = loaded.withLock { $0.remove(request.collectionName) }
    }

    // MARK: Items

    public func upsert(_ items: [Item], into collection: String, model: ModelIdentity, removing: [String]) async throws {
        try await delete(removing, in: collection)
        guard !items.isEmpty else { return }
        var requests = [[Item]](), current = [Item](), bytes = 0
        for item in items {
            let size = 4 * item.vector.count + (item.thumbnail?.count ?? 0) * 4 / 3 + item.id.utf8.count + item.source.utf8.count + 512
                + item.metadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
            if !current.isEmpty, bytes + size > parameters.requestBytes {
                requests.append(current)
                current = []
                bytes = 0
            }
            current.append(item)
            bytes += size
        }
        requests.append(current)
        if requests.count == 1 {
            try await write(items, into: collection, dimension: model.dimension)
            return
        }
        // Several requests: the first item stays unfinished (no content hash) until all have landed.
        var first = items[0]
        first = Item(id: first.id, source: first.source, contentHash: "", metadata: first.metadata, vector: first.vector, thumbnail: first.thumbnail)
        requests[0][0] = first
        for request in requests { try await write(request, into: collection, dimension: model.dimension) }
        try await write([items[0]], into: collection, dimension: model.dimension)
    }

    private func write(_ items: [Item], into collection: String, dimension: Int) async throws {
        var request = Milvus_Proto_Milvus_UpsertRequest()
        request.dbName = databaseName
        request.collectionName = MilvusNames.collection(collection)
        request.numRows = UInt32(items.count)
        var vector = Milvus_Proto_Schema_FieldData()
        vector.type = .floatVector
        vector.fieldName = "vector"
        vector.vectors.dim = Int64(dimension)
        vector.vectors.floatVector.data = items.flatMap(\.vector)
        request.fieldsData = [
            Self.strings("id", items.map(\.id)), vector, Self.strings("source", items.map(\.source)),
            Self.strings("content_hash", items.map(\.contentHash)),
            Self.json("metadata", try items.map { Data(try MetadataJSON.encode($0.metadata).utf8) }),
            Self.json("numbers", try items.map { try JSONSerialization.data(withJSONObject: MilvusNames.numbers($0.metadata), options: [.sortedKeys]) }),
            Self.strings("thumbnail", items.map { Self.thumbnailText($0.thumbnail) }),
        ]
        let reply = try await call("write to \(collection)") { try await service.upsert(request, metadata: headers, options: options()) }
        try check(reply.status, "write to \(collection)")
    }

    /// A thumbnail as its field holds it: base64, or nothing when that is longer than a VARCHAR's 65,535
    /// bytes (a 320-pixel JPEG of more than 48 kB, which the page then shows from the image itself).
    static func thumbnailText(_ thumbnail: Data?) -> String {
        guard let text = thumbnail?.base64EncodedString(), text.utf8.count <= 65535 else { return "" }
        return text
    }

    private static func strings(_ name: String, _ values: [String]) -> Milvus_Proto_Schema_FieldData {
        var field = Milvus_Proto_Schema_FieldData()
        field.type = .varChar
        field.fieldName = name
        field.scalars.stringData.data = values
        return field
    }

    private static func json(_ name: String, _ values: [Data]) -> Milvus_Proto_Schema_FieldData {
        var field = Milvus_Proto_Schema_FieldData()
        field.type = .json
        field.fieldName = name
        field.scalars.jsonData.data = values
        return field
    }

    private func delete(_ ids: [String], in collection: String) async throws {
        for start in stride(from: 0, to: ids.count, by: 1000) {
            var request = Milvus_Proto_Milvus_DeleteRequest()
            request.dbName = databaseName
            request.collectionName = MilvusNames.collection(collection)
            request.expr = MilvusNames.ids(Array(ids[start..<min(start + 1000, ids.count)]))
            let reply = try await call("delete from \(collection)") { try await service.delete(request, metadata: headers, options: options()) }
            try check(reply.status, "delete from \(collection)")
        }
    }

    /// The fields of an item as search and listings return it (no thumbnail).
    static let itemFields = ["id", "source", "content_hash", "metadata", "vector"]

    /// Runs a query; the reply's columns.
    /// `inIDOrder` asks for the first `limit` rows in primary-key order, as pymilvus's QueryIterator does
    /// (`iterator` and `reduce_stop_for_best`); other queries return rows in no set order.
    private func query(_ collection: String, expression: String, fields: [String], limit: Int? = nil, inIDOrder: Bool = false)
        async throws -> [Milvus_Proto_Schema_FieldData]
    {
        let milvusName = MilvusNames.collection(collection)
        try await load(milvusName)
        var request = Milvus_Proto_Milvus_QueryRequest()
        request.dbName = databaseName
        request.collectionName = milvusName
        request.expr = expression
        request.outputFields = fields
        request.useDefaultConsistency = true
        var parameters = [String: String]()
        if let limit { parameters["limit"] = String(limit) }
        if inIDOrder { parameters.merge(["iterator": "True", "reduce_stop_for_best": "True"]) { a, _ in a } }
        request.queryParams = Self.pairs(parameters)
        let reply = try await call("read \(collection)") { try await service.query(request, metadata: headers, options: options()) }
        if Self.isMissingCollection(reply.status) { throw StoreError.noSuchCollection(collection) }
        try check(reply.status, "read \(collection)")
        return reply.fieldsData
    }

    /// The query's columns, or nil when there is no such collection (reads of a missing collection find
    /// nothing, as in the other stores).
    private func columnsIfCollectionExists(_ collection: String, expression: String, fields: [String]) async throws
        -> [Milvus_Proto_Schema_FieldData]?
    {
        do {
            return try await query(collection, expression: expression, fields: fields)
        } catch StoreError.noSuchCollection {
            return nil
        }
    }

    public func item(_ id: String, in collection: String) async throws -> Item? {
        let columns = try await columnsIfCollectionExists(collection, expression: MilvusNames.ids([id]), fields: Self.itemFields)
        return columns.flatMap { Self.items(from: $0).first }
    }

    public func thumbnail(_ id: String, in collection: String) async throws -> Data? {
        guard let columns = try await columnsIfCollectionExists(collection, expression: MilvusNames.ids([id]), fields: ["id", "thumbnail"]),
            let text = columns.first(where: { $0.fieldName == "thumbnail" })?.scalars.stringData.data.first, !text.isEmpty else { return nil }
        return Data(base64Encoded: text)
    }

    public func contentHashes(in collection: String) async throws -> [String: String] {
        let found = try await columnsIfCollectionExists(collection, expression: #"id >= """#, fields: ["id", "content_hash"])
        guard let columns = found else { return [:] }
        let ids = Self.column("id", in: columns), hashes = Self.column("content_hash", in: columns)
        return Dictionary(zip(ids, hashes).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })
    }

    public func items(in collection: String, after: String, limit: Int) async throws -> [Item] {
        let page = try await query(collection, expression: "id > \(MilvusNames.literal(after))", fields: Self.itemFields, limit: limit,
                                   inIDOrder: true)
        // Sorted again in byte order, the order every store pages in.
        return Self.items(from: page).sorted { Array($0.id.utf8).lexicographicallyPrecedes(Array($1.id.utf8)) }
    }

    public func deleteItem(_ id: String, in collection: String) async throws -> Bool {
        guard let columns = try await columnsIfCollectionExists(collection, expression: MilvusNames.ids([id]), fields: ["id"]),
            !Self.column("id", in: columns).isEmpty
        else { return false }
        try await delete([id], in: collection)
        return true
    }

    private static func column(_ name: String, in columns: [Milvus_Proto_Schema_FieldData]) -> [String] {
        columns.first { $0.fieldName == name }?.scalars.stringData.data ?? []
    }

    /// Items from a reply's columns (row i of each column is item i); a search gives the ids apart.
    private static func items(from columns: [Milvus_Proto_Schema_FieldData], ids: [String]? = nil) -> [Item] {
        let ids = ids ?? column("id", in: columns), sources = column("source", in: columns), hashes = column("content_hash", in: columns)
        let metadata = columns.first { $0.fieldName == "metadata" }?.scalars.jsonData.data ?? []
        let vectorField = columns.first { $0.fieldName == "vector" }?.vectors
        let dimension = Int(vectorField?.dim ?? 0)
        let values = vectorField?.floatVector.data ?? []
        return ids.indices.map { row in
            Item(id: ids[row], source: row < sources.count ? sources[row] : "", contentHash: row < hashes.count ? hashes[row] : "",
                 metadata: row < metadata.count ? MetadataJSON.decode(String(decoding: metadata[row], as: UTF8.self)) ?? [:] : [:],
                 vector: dimension > 0 && (row + 1) * dimension <= values.count ? Array(values[(row * dimension)..<((row + 1) * dimension)]) : [])
        }
    }

    // MARK: Search

    public func search(_ query: VectorQuery) async throws -> [SearchResult] {
        guard query.k > 0 else { return [] }
        let milvusName = MilvusNames.collection(query.collection)
        try await load(milvusName)
        var placeholder = Milvus_Proto_Common_PlaceholderValue()
        placeholder.tag = "$0"
        placeholder.type = .floatVector
        placeholder.values = [query.vector.withUnsafeBufferPointer { Data(buffer: $0) }]
        var group = Milvus_Proto_Common_PlaceholderGroup()
        group.placeholders = [placeholder]
        var request = Milvus_Proto_Milvus_SearchRequest()
        request.dbName = databaseName
        request.collectionName = milvusName
        request.dsl = MilvusNames.expression(query.filters) ?? ""
        request.dslType = .boolExprV1
        request.placeholderGroup = try group.serializedData()
        request.nq = 1
        request.outputFields = Self.itemFields
        request.useDefaultConsistency = true
        request.searchParams = Self.pairs([
            "anns_field": "vector", "topk": String(query.k), "metric_type": "COSINE", "round_decimal": "-1",
            "params": #"{"ef": \#(max(parameters.efSearch, query.k))}"#,
        ])
        let reply = try await call("search \(query.collection)") { try await service.search(request, metadata: headers, options: options()) }
        try check(reply.status, "search \(query.collection)")
        // Rows come best first, with their scores (the cosine similarity, for COSINE).
        let items = Self.items(from: reply.results.fieldsData, ids: reply.results.ids.strID.data)
        return zip(items, reply.results.scores).map { SearchResult(item: $0, similarity: $1) }
    }

    public func hybridSearch(_ query: VectorQuery, text: String, vectorWeight: Float) async throws -> [SearchResult] {
        throw StoreError.unsupported("Milvus ranks no text in Loupe's collections: hybrid search needs the embedded store or PostgreSQL")
    }

    public func flush() async throws {}
}

extension CollectionStore {
    /// Milvus at `url` (`milvus://HOST:PORT[/DATABASE]`, `milvus+https://…`), behind the policy every store shares.
    public static func milvus(url: String, token: String? = ProcessInfo.processInfo.environment["MILVUS_TOKEN"],
                              certificateAuthorities: String? = ProcessInfo.processInfo.environment["MILVUS_CA_FILE"],
                              parameters: MilvusStore.Parameters = MilvusStore.Parameters()) async throws -> CollectionStore {
        CollectionStore(try await MilvusStore(url: url, token: token, certificateAuthorities: certificateAuthorities, parameters: parameters))
    }
}
