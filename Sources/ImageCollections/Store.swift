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

    public init(name: String, model: ModelIdentity, itemCount: Int) {
        self.name = name
        self.model = model
        self.itemCount = itemCount
    }
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

    /// Whether an item with this metadata passes (the rule every backend follows).
    public func matches(_ metadata: [String: String]) -> Bool {
        switch self {
        case .equals(let field, let value): return metadata[field] == value
        case .atLeast(let field, let value): return Self.number(metadata[field]).map { $0 >= value } ?? false
        case .atMost(let field, let value): return Self.number(metadata[field]).map { $0 <= value } ?? false
        }
    }

    /// The first number in a field: "c. 1889" and "1500-1510" count as 1889 and 1500. Digits, then a
    /// decimal part only when digits follow the point (the PostgreSQL store reads `[0-9]+(\.[0-9]+)?`).
    public static func number(_ text: String?) -> Double? {
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
    /// The backend cannot do this (Milvus has no full-text ranking of metadata, for one).
    case unsupported(String)

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
        case .unsupported(let what): what
        }
    }
}

/// Text is stored exactly as given or refused, never cut short: a NUL character, where C strings (SQLite's
/// parameters) would end and PostgreSQL text cannot hold one, is refused everywhere, so an id such as
/// `victim\0x` can never stand for `victim`. Both databases' parameter binding checks every text.
public enum StoredText {
    public static func check(_ text: String, as what: String) throws {
        guard text.utf8.contains(0) else { return }
        throw StoreError.invalidText("\(what) \"\(text.replacingOccurrences(of: "\0", with: "\\0"))\" holds a NUL character")
    }
}

/// Runs `body` between `begin` and `commit`; when anything fails, rolls back and rethrows the first error
/// (the one worth reporting; a failed rollback would only hide it).
public func runTransaction<T>(begin: () throws -> Void, commit: () throws -> Void, rollback: () throws -> Void, _ body: () throws -> T) throws -> T {
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
