/// What exact and graph indexes share, so that one policy decides how a filter is searched.
public protocol VectorSearching {
    /// Live vectors.
    var count: Int { get }
    /// The best `k` that `allowed` accepts (all when nil), found by the index's own walk or scan.
    func search(_ query: [Float], k: Int, allowed: (@Sendable (Int64) -> Bool)?) throws -> [SearchHit]
    /// The best `k` among the given keys, compared one by one.
    func search(_ query: [Float], k: Int, among candidates: some Sequence<Int64>) throws -> [SearchHit]
}

/// Up to this many filtered items (or a tenth of the index) are compared one by one rather than found by a
/// filtered walk: a walk passes through many refused nodes before it finds rare allowed ones, and at a
/// tenth it costs as much as comparing each (index-bench, 100k vectors) while missing some of the best
/// when the filter keeps whole clusters away from the query.
public let exactFilterLimit = 4_096

extension VectorSearching {
    /// The best `k` among `keys` (the items a metadata filter keeps): compared one by one when they are
    /// few, otherwise a walk that asks the filter at each node; a walk that finds fewer than k while k
    /// match is done again exactly, so k matching items always give k results.
    public func search(_ query: [Float], k: Int, filteredTo keys: Set<Int64>) throws -> [SearchHit] {
        if keys.count <= exactFilterLimit || keys.count * 10 <= count {
            return try search(query, k: k, among: keys)
        }
        let hits = try search(query, k: k, allowed: { keys.contains($0) })
        return hits.count < min(k, keys.count) ? try search(query, k: k, among: keys) : hits
    }
}

extension FlatIndex: VectorSearching {}
extension HNSWIndex: VectorSearching {}
