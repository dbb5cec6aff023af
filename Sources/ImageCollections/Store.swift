import Foundation

/// Which model made a collection's vectors. Vectors of different models are never mixed.
public struct ModelIdentity: Sendable, Equatable, Codable {
    /// As the user named it: a Hub id or a folder.
    public let id: String
    /// The Hub commit, or a fingerprint of a local folder's configuration and weights header.
    public let revision: String
    public let dimension: Int

    public init(id: String, revision: String, dimension: Int) {
        self.id = id
        self.revision = revision
        self.dimension = dimension
    }
}

public struct CollectionInfo: Sendable, Equatable {
    public let name: String
    public let model: ModelIdentity
    public let itemCount: Int
}

/// One image in a collection.
public struct Item: Sendable, Equatable {
    public let id: String
    public let source: String
    public let contentHash: String
    public let metadata: [String: String]
    public let vector: [Float]
    /// A small JPEG for display.
    public let thumbnail: Data?

    public init(id: String, source: String, contentHash: String, metadata: [String: String], vector: [Float], thumbnail: Data? = nil) {
        self.id = id
        self.source = source
        self.contentHash = contentHash
        self.metadata = metadata
        self.vector = vector
        self.thumbnail = thumbnail
    }
}

/// A metadata condition: equality, or a numeric range on fields such as DATE.
public enum MetadataFilter: Sendable, Equatable {
    case equals(field: String, value: String)
    case atLeast(field: String, value: Double)
    case atMost(field: String, value: Double)

    /// Parses `FIELD=value`, `FIELD>=number`, `FIELD<=number`. The field is everything before the first
    /// `=`, `<` or `>` (spaces and tabs around it ignored; it may not be empty); a number is
    /// `-?[0-9]+(.[0-9]+)?`. `pattern` says the same for the API's description.
    public init(parsing text: String) throws {
        let blanks = CharacterSet(charactersIn: " \t")
        guard let operatorStart = text.firstIndex(where: { $0 == "=" || $0 == "<" || $0 == ">" }) else { throw StoreError.invalidFilter(text) }
        let field = text[..<operatorStart].trimmingCharacters(in: blanks)
        let rest = text[operatorStart...]
        guard !field.isEmpty else { throw StoreError.invalidFilter(text) }
        if rest.hasPrefix("=") {
            self = .equals(field: field, value: rest.dropFirst().trimmingCharacters(in: .whitespaces))
            return
        }
        let number = rest.dropFirst(2).trimmingCharacters(in: blanks)
        guard rest.hasPrefix(">=") || rest.hasPrefix("<="), number.wholeMatch(of: /-?[0-9]+(\.[0-9]+)?/) != nil, let value = Double(number) else {
            throw StoreError.invalidFilter(text)
        }
        self = rest.hasPrefix(">=") ? .atLeast(field: field, value: value) : .atMost(field: field, value: value)
    }

    /// The grammar above as a regular expression (ECMA-262 and Python alike; `(?![\s\S])` is the true end).
    public static let pattern = #"^[ \t]*[^=<> \t][^=<>]*(=[\s\S]*|[<>]=[ \t]*-?[0-9]+(\.[0-9]+)?[ \t]*)(?![\s\S])"#

    func matches(_ metadata: [String: String]) -> Bool {
        switch self {
        case .equals(let field, let value): return metadata[field] == value
        case .atLeast(let field, let value): return Self.number(metadata[field]).map { $0 >= value } ?? false
        case .atMost(let field, let value): return Self.number(metadata[field]).map { $0 <= value } ?? false
        }
    }

    /// The first number in a field: "c. 1889" and "1500-1510" count as 1889 and 1500. Digits, then a
    /// decimal part only when digits follow the point (the PostgreSQL store reads `[0-9]+(\.[0-9]+)?`).
    static func number(_ text: String?) -> Double? {
        guard let text, let start = text.firstIndex(where: \.isASCIIDigit) else { return nil }
        func digitsEnd(from index: String.Index) -> String.Index { text[index...].firstIndex { !$0.isASCIIDigit } ?? text.endIndex }
        var end = digitsEnd(from: start)
        if end < text.endIndex, text[end] == "." {
            let fraction = text.index(after: end)
            if fraction < text.endIndex, text[fraction].isASCIIDigit { end = digitsEnd(from: fraction) }
        }
        return Double(text[start..<end])
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

public struct SearchResult: Sendable, Equatable {
    public let item: Item
    /// Cosine similarity of the vectors, in [-1, 1].
    public let similarity: Float
    /// (1 + cosine) / 2 in [0, 1], or the hybrid score (see `HybridScore`): the figure shown to people.
    public let relevance: Float

    public init(item: Item, similarity: Float, relevance: Float? = nil) {
        self.item = item
        self.similarity = similarity
        self.relevance = relevance ?? (1 + similarity) / 2
    }
}

public enum StoreError: Error, Equatable, CustomStringConvertible {
    case database(String)
    case invalidName(String)
    case noSuchCollection(String)
    case noSuchItem(collection: String, id: String)
    case modelMismatch(collection: String, expected: ModelIdentity, got: ModelIdentity)
    case invalidFilter(String)
    case invalidVector(String)
    case invalidText(String)

    public var description: String {
        switch self {
        case .database(let reason): "the store failed: \(reason)"
        case .invalidName(let name): "\"\(name)\" is not a valid collection name (letters, digits, - and _, up to 64)"
        case .noSuchCollection(let name): "there is no collection \(name)"
        case .noSuchItem(let collection, let id): "collection \(collection) has no item \(id)"
        case .modelMismatch(let collection, let expected, let got):
            "collection \(collection) holds vectors of \(expected.id) (\(expected.revision.prefix(12)), \(expected.dimension)-d); "
                + "\(got.id) (\(got.revision.prefix(12)), \(got.dimension)-d) cannot add to or search it"
        case .invalidFilter(let text): "\"\(text)\" is not a filter: use FIELD=value, FIELD>=number or FIELD<=number"
        case .invalidVector(let reason): "invalid vector: \(reason)"
        case .invalidText(let reason): "invalid text: \(reason)"
        }
    }
}

/// Where collections live. The embedded store is the default; every store passes the same behaviour tests.
public protocol CollectionStore: Sendable {
    /// Creates the collection, or opens it when it exists with the same model; another model is refused.
    func openCollection(_ name: String, model: ModelIdentity) throws -> CollectionInfo
    func collection(_ name: String) throws -> CollectionInfo?
    /// The collection's model, without counting its items (what every search and write asks).
    func model(of collection: String) throws -> ModelIdentity?
    func collections() throws -> [CollectionInfo]
    func deleteCollection(_ name: String) throws
    /// Adds or replaces items and deletes the items `removing` names (where they exist), all or none: a
    /// video's frames replace its earlier frames in one step.
    func upsert(_ items: [Item], into collection: String, removing: [String]) throws
    /// The item without its thumbnail (search results and listings do not need it).
    func item(_ id: String, in collection: String) throws -> Item?
    func thumbnail(_ id: String, in collection: String) throws -> Data?
    /// The stored content hash per item id, for skipping unchanged files.
    func contentHashes(in collection: String) throws -> [String: String]
    /// Every item in id order, without thumbnails, handed over in pages to bound memory.
    func forEachItem(in collection: String, _ body: (Item) throws -> Void) throws
    func deleteItem(_ id: String, in collection: String) throws
    func search(_ collection: String, vector: [Float], model: ModelIdentity, k: Int, filters: [MetadataFilter]) throws -> [SearchResult]
    /// Vector similarity blended with a full-text match of `text` on the metadata (see `HybridScore`).
    func hybridSearch(_ collection: String, vector: [Float], text: String, model: ModelIdentity, k: Int, filters: [MetadataFilter],
                      vectorWeight: Float) throws -> [SearchResult]
    /// Saves what is only in memory (the embedded store's HNSW graphs); a no-op where nothing is.
    func flush() throws
}

/// How hybrid search ranks: `score = w · (1 + cosine) / 2 + (1 − w) · text`, where `text` is the item's
/// full-text score on its metadata (BM25 in the embedded store, `ts_rank` in PostgreSQL) divided by the
/// best such score among the candidates (so in [0, 1], and 0 when the metadata does not match), and `w` is the vector weight (0.7 unless given). Candidates are
/// the union of the best vector matches and the best text matches, 5·k (at least 50) of each.
public enum HybridScore {
    public static let defaultVectorWeight: Float = 0.7

    public static func blend(similarity: Float, text: Float, vectorWeight: Float) -> Float {
        vectorWeight * (1 + similarity) / 2 + (1 - vectorWeight) * text
    }

    /// An FTS5 query that matches any of the words: each is quoted, so no text is read as query syntax.
    static func matchQuery(_ text: String) -> String? {
        let words = text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).prefix(32)
        guard !words.isEmpty else { return nil }
        return words.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: " OR ")
    }
}

extension CollectionStore {
    /// Adds or replaces items, all or none.
    public func upsert(_ items: [Item], into collection: String) throws { try upsert(items, into: collection, removing: []) }

    public func flush() throws {}

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

    /// What full-text search sees of an item: its metadata values.
    static func searchableText(_ metadata: [String: String]) -> String {
        metadata.keys.sorted().compactMap { metadata[$0] }.joined(separator: " \n ")
    }

    static func metadata(_ json: String) -> [String: String]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: String]
    }
}

/// Text is stored exactly as given or refused, never cut short: a NUL character, where C strings (SQLite's
/// and libpq's parameters) would end and PostgreSQL text cannot hold one, is refused everywhere, so an id
/// such as `victim\0x` can never stand for `victim`. Both databases' parameter binding checks every text.
public enum StoredText {
    public static func check(_ text: String, as what: String) throws {
        guard text.utf8.contains(0) else { return }
        throw StoreError.invalidText("\(what) \"\(text.replacingOccurrences(of: "\0", with: "\\0"))\" holds a NUL character")
    }
}

/// Runs `body` between `begin` and `commit`; when anything fails, rolls back and rethrows the first error
/// (the one worth reporting; a failed rollback would only hide it). Both databases' transactions use it.
func runTransaction<T>(begin: () throws -> Void, commit: () throws -> Void, rollback: () throws -> Void, _ body: () throws -> T) throws -> T {
    try begin()
    do {
        let result = try body()
        try commit()
        return result
    } catch {
        try? rollback()
        throw error
    }
}
