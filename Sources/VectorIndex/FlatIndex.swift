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

/// How an index keeps its vectors: float32 as given, or compact (half or a quarter of the bytes, so a
/// scan that is bound by memory reads runs up to 2× or 4× faster), with similarities then approximate
/// (within about 1e-3 for float16, 1e-2 for int8) and best rescored from the float32 vectors kept elsewhere.
public enum VectorPrecision: String, Sendable, CaseIterable {
    case float32, float16
    /// Scalar quantisation per vector: codes of −127…127 and one scale (its largest magnitude / 127).
    case int8

    /// Bytes each vector of `dimension` takes in memory.
    public func bytes(dimension: Int) -> Int {
        switch self {
        case .float32: 4 * dimension
        case .float16: 2 * dimension
        case .int8: dimension + 4
        }
    }
}

/// Exact search: every stored vector is compared with the query. Vectors are L2-normalised on the way
/// in, so the inner product is the cosine similarity. Storage is one contiguous array in the chosen
/// precision; removal moves the last vector into the freed slot.
public struct FlatIndex: Sendable {
    public let dimension: Int
    public let precision: VectorPrecision
    private var vectors: [Float] = []
    private var halves: [Float16] = []
    private var codes: [Int8] = []
    private var scales: [Float] = []
    private var keys: [Int64] = []
    private var slots: [Int64: Int] = [:]

    public init(dimension: Int, precision: VectorPrecision = .float32) {
        self.dimension = dimension
        self.precision = precision
    }

    public var count: Int { keys.count }
    public func contains(_ key: Int64) -> Bool { slots[key] != nil }

    /// Adds or replaces the vector stored under `key`.
    public mutating func add(key: Int64, vector: [Float]) throws {
        let normalized = try Self.normalized(vector, dimension: dimension)
        let slot: Int
        if let existing = slots[key] {
            slot = existing
        } else {
            slot = keys.count
            slots[key] = slot
            keys.append(key)
            switch precision {
            case .float32: vectors.append(contentsOf: repeatElement(0, count: dimension))
            case .float16: halves.append(contentsOf: repeatElement(0, count: dimension))
            case .int8:
                codes.append(contentsOf: repeatElement(0, count: dimension))
                scales.append(0)
            }
        }
        let range = (slot * dimension)..<((slot + 1) * dimension)
        switch precision {
        case .float32: vectors.replaceSubrange(range, with: normalized)
        case .float16: halves.replaceSubrange(range, with: normalized.map { Float16($0) })
        case .int8:
            let scale = max(normalized.map(abs).max() ?? 0, .leastNormalMagnitude) / 127
            codes.replaceSubrange(range, with: normalized.map { Int8(($0 / scale).rounded()) })
            scales[slot] = scale
        }
    }

    public mutating func remove(key: Int64) {
        guard let slot = slots.removeValue(forKey: key) else { return }
        let last = keys.count - 1
        if slot != last {
            let moved = keys[last]
            keys[slot] = moved
            slots[moved] = slot
            switch precision {
            case .float32: for i in 0..<dimension { vectors[slot * dimension + i] = vectors[last * dimension + i] }
            case .float16: for i in 0..<dimension { halves[slot * dimension + i] = halves[last * dimension + i] }
            case .int8:
                for i in 0..<dimension { codes[slot * dimension + i] = codes[last * dimension + i] }
                scales[slot] = scales[last]
            }
        }
        keys.removeLast()
        switch precision {
        case .float32: vectors.removeLast(dimension)
        case .float16: halves.removeLast(dimension)
        case .int8:
            codes.removeLast(dimension)
            scales.removeLast()
        }
    }

    /// Scores `rows` rows from `start` into `scores`, in this index's precision.
    private func score(_ query: UnsafePointer<Float>, start: Int, rows: Int, into scores: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32:
            vectors.withUnsafeBufferPointer { stored in
                Distances.dots(query, stored.baseAddress! + start * dimension, rowCount: rows, count: dimension, into: scores)
            }
        case .float16:
            halves.withUnsafeBufferPointer { stored in
                for row in 0..<rows { scores[row] = Distances.dot(query, stored.baseAddress! + (start + row) * dimension, count: dimension) }
            }
        case .int8:
            codes.withUnsafeBufferPointer { stored in
                for row in 0..<rows {
                    scores[row] = scales[start + row] * Distances.dot(query, stored.baseAddress! + (start + row) * dimension, count: dimension)
                }
            }
        }
    }

    /// The `k` most similar vectors, best first; `allowed` narrows the candidates (metadata filters).
    /// The vectors are scored in blocks by the processor's widest kernel, on every compute thread when
    /// there are many (exact search reads them all: it runs at the memory's speed); `allowed` is asked
    /// only about vectors that would enter the best k.
    public func search(_ query: [Float], k: Int, allowed: (@Sendable (Int64) -> Bool)? = nil) throws -> [SearchHit] {
        let q = try Self.normalized(query, dimension: dimension)
        guard k > 0, !keys.isEmpty else { return [] }
        let count = keys.count
        // Below a few megabytes a second thread costs more than it saves.
        let parts = count * dimension >= 1 << 20 ? max(1, min(ComputeThreads.count, count / 1024)) : 1
        let partial = PartialResults(parts)
        keys.withUnsafeBufferPointer { keys in
            q.withUnsafeBufferPointer { query in
                nonisolated(unsafe) let (keys, query) = (keys, query)
                ComputeThreads.parallel(parts) { part in
                    var best = TopK(k)
                    let block = 256
                    var scores = [Float](repeating: 0, count: block)
                    let range = ComputeThreads.share(part, of: parts, count: count)
                    scores.withUnsafeMutableBufferPointer { scores in
                        var start = range.lowerBound
                        while start < range.upperBound {
                            let rows = min(block, range.upperBound - start)
                            score(query.baseAddress!, start: start, rows: rows, into: scores.baseAddress!)
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
        var best = TopK(k)
        for hit in partial.all.joined() { best.offer(hit) }
        return best.sorted()
    }

    /// The `k` most similar among the vectors stored under `candidates` (keys not stored are ignored): a
    /// selective filter's items, scored one by one.
    public func search(_ query: [Float], k: Int, among candidates: some Sequence<Int64>) throws -> [SearchHit] {
        let q = try Self.normalized(query, dimension: dimension)
        var best = TopK(k)
        var score: Float = 0
        q.withUnsafeBufferPointer { query in
            for key in candidates {
                guard let slot = slots[key] else { continue }
                self.score(query.baseAddress!, start: slot, rows: 1, into: &score)
                best.offer(SearchHit(key: key, similarity: score))
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

    /// `vector` scaled to length 1; refused when its length is wrong or it is zero or not finite.
    public static func normalized(_ vector: [Float], dimension: Int) throws -> [Float] {
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
