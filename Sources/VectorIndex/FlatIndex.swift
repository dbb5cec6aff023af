import Tensor

/// One search result: the caller's key and the cosine similarity of its vector to the query.
public struct SearchHit: Sendable, Equatable {
    public let key: Int64
    public let similarity: Float

    public init(key: Int64, similarity: Float) {
        self.key = key
        self.similarity = similarity
    }
}

public enum VectorIndexError: Error, Equatable, CustomStringConvertible {
    case dimensionMismatch(expected: Int, got: Int)
    case notNormalized

    public var description: String {
        switch self {
        case .dimensionMismatch(let expected, let got): "vector has \(got) dimensions, the index holds \(expected)"
        case .notNormalized: "vector is not finite or has zero length"
        }
    }
}

/// Exact search: every stored vector is compared with the query. Vectors are L2-normalised on the way
/// in, so the inner product is the cosine similarity. Storage is one contiguous array; removal moves
/// the last vector into the freed slot.
public struct FlatIndex: Sendable {
    public let dimension: Int
    private var vectors: [Float] = []
    private var keys: [Int64] = []
    private var slots: [Int64: Int] = [:]

    public init(dimension: Int) { self.dimension = dimension }

    public var count: Int { keys.count }
    public func contains(_ key: Int64) -> Bool { slots[key] != nil }

    /// Adds or replaces the vector stored under `key`.
    public mutating func add(key: Int64, vector: [Float]) throws {
        let normalized = try Self.normalized(vector, dimension: dimension)
        if let slot = slots[key] {
            vectors.replaceSubrange((slot * dimension)..<((slot + 1) * dimension), with: normalized)
            return
        }
        slots[key] = keys.count
        keys.append(key)
        vectors.append(contentsOf: normalized)
    }

    public mutating func remove(key: Int64) {
        guard let slot = slots.removeValue(forKey: key) else { return }
        let last = keys.count - 1
        if slot != last {
            let moved = keys[last]
            keys[slot] = moved
            slots[moved] = slot
            for i in 0..<dimension { vectors[slot * dimension + i] = vectors[last * dimension + i] }
        }
        keys.removeLast()
        vectors.removeLast(dimension)
    }

    /// The `k` most similar vectors, best first; `allowed` narrows the candidates (metadata filters).
    public func search(_ query: [Float], k: Int, allowed: ((Int64) -> Bool)? = nil) throws -> [SearchHit] {
        let q = try Self.normalized(query, dimension: dimension)
        guard k > 0, !keys.isEmpty else { return [] }
        var best = TopK(k)
        vectors.withUnsafeBufferPointer { stored in
            q.withUnsafeBufferPointer { query in
                for (slot, key) in keys.enumerated() where allowed?(key) ?? true {
                    best.offer(SearchHit(key: key, similarity: Operations.dot(stored.baseAddress! + slot * dimension, query.baseAddress!, count: dimension)))
                }
            }
        }
        return best.sorted()
    }

    static func normalized(_ vector: [Float], dimension: Int) throws -> [Float] {
        guard vector.count == dimension else { throw VectorIndexError.dimensionMismatch(expected: dimension, got: vector.count) }
        var sum: Double = 0
        for x in vector { sum += Double(x) * Double(x) }
        guard sum.isFinite, sum > 0 else { throw VectorIndexError.notNormalized }
        let scale = Float(1 / sum.squareRoot())
        return vector.map { $0 * scale }
    }
}

/// The k best hits seen so far (a small sorted buffer: k is tens, not thousands).
struct TopK {
    let k: Int
    private(set) var hits: [SearchHit] = []

    init(_ k: Int) { self.k = k }

    var worst: Float { hits.count < k ? -.infinity : hits[hits.count - 1].similarity }

    mutating func offer(_ hit: SearchHit) {
        guard hit.similarity > worst else { return }
        var index = hits.count
        while index > 0 && hits[index - 1].similarity < hit.similarity { index -= 1 }
        hits.insert(hit, at: index)
        if hits.count > k { hits.removeLast() }
    }

    func sorted() -> [SearchHit] { hits }
}
