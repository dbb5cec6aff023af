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
    /// The vectors are scored in blocks by the processor's widest kernel, on every compute thread when
    /// there are many (exact search reads them all: it runs at the memory's speed); `allowed` is asked
    /// only about vectors that would enter the best k.
    public func search(_ query: [Float], k: Int, allowed: (@Sendable (Int64) -> Bool)? = nil) throws -> [SearchHit] {
        let q = try Self.normalized(query, dimension: dimension)
        guard k > 0, !keys.isEmpty else { return [] }
        let count = keys.count, dimension = self.dimension
        // Below a few megabytes a second thread costs more than it saves.
        let parts = count * dimension >= 1 << 20 ? max(1, min(ComputeThreads.count, count / 1024)) : 1
        let partial = PartialResults(parts)
        vectors.withUnsafeBufferPointer { stored in
            keys.withUnsafeBufferPointer { keys in
                q.withUnsafeBufferPointer { query in
                    nonisolated(unsafe) let (stored, keys, query) = (stored, keys, query)
                    ComputeThreads.parallel(parts) { part in
                        var best = TopK(k)
                        let block = 256
                        var scores = [Float](repeating: 0, count: block)
                        let range = ComputeThreads.share(part, of: parts, count: count)
                        scores.withUnsafeMutableBufferPointer { scores in
                            var start = range.lowerBound
                            while start < range.upperBound {
                                let rows = min(block, range.upperBound - start)
                                Distances.dots(query.baseAddress!, stored.baseAddress! + start * dimension, rowCount: rows, count: dimension,
                                               into: scores.baseAddress!)
                                for row in 0..<rows where scores[row] > best.worst {
                                    let key = keys[start + row]
                                    if allowed?(key) ?? true { best.offer(SearchHit(key: key, similarity: scores[row])) }
                                }
                                start += rows
                            }
                        }
                        partial.set(part, best.sorted())
                    }
                }
            }
        }
        var best = TopK(k)
        for hit in partial.all.joined() { best.offer(hit) }
        return best.sorted()
    }

    /// The `k` most similar among the vectors stored under `candidates` (keys not stored are ignored): a
    /// selective filter's items, scored one by one.
    public func search(_ query: [Float], k: Int, among candidates: some Sequence<Int64>) throws -> [SearchHit] {
        let q = try Self.normalized(query, dimension: dimension)
        var best = TopK(k)
        vectors.withUnsafeBufferPointer { stored in
            for key in candidates {
                guard let slot = slots[key] else { continue }
                best.offer(SearchHit(key: key, similarity: Distances.dot(q, stored.baseAddress! + slot * dimension, count: dimension)))
            }
        }
        return best.sorted()
    }

    /// Each part's hits, written by its own thread.
    private final class PartialResults: @unchecked Sendable {
        private var results: [[SearchHit]]
        init(_ parts: Int) { results = Array(repeating: [], count: parts) }
        func set(_ part: Int, _ hits: [SearchHit]) { results[part] = hits }
        var all: [[SearchHit]] { results }
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
