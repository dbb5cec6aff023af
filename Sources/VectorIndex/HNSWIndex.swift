import Foundation
import Tensor

/// Approximate nearest-neighbour search with a hierarchical navigable small-world graph (Malkov and
/// Yashunin), cosine similarity on normalised vectors. Graph, vector storage and metric are kept apart:
/// `vectors` holds rows by node, `links` the graph, `Operations.dot` (Tensor) the metric. Removal leaves a tombstone
/// that search walks through but never returns; re-adding a key replaces its node.
public final class HNSWIndex: @unchecked Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Links per node on upper layers (twice as many on layer 0).
        public var m = 16
        public var efConstruction = 128
        public var efSearch = 96
        public init(m: Int = 16, efConstruction: Int = 128, efSearch: Int = 96) {
            self.m = max(2, m)
            self.efConstruction = max(1, efConstruction)
            self.efSearch = max(1, efSearch)
        }
    }

    public let dimension: Int
    public var parameters: Parameters
    private var vectors: [Float] = []
    private var keys: [Int64] = []
    private var levels: [Int32] = []
    /// links[node][level] = neighbour nodes.
    private var links: [[[Int32]]] = []
    private var deleted: [Bool] = []
    private var nodeOfKey: [Int64: Int32] = [:]
    private var entryPoint: Int32 = -1
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private let lock = NSLock()
    /// Marks of the nodes one layer search has visited: a node is visited when its mark equals `visit`.
    private var marks: [UInt32] = []
    private var visit: UInt32 = 0

    public init(dimension: Int, parameters: Parameters = Parameters()) {
        self.dimension = dimension
        self.parameters = parameters
    }

    public var count: Int { lock.withLock { nodeOfKey.count } }

    // MARK: - Adding and removing

    public func add(key: Int64, vector: [Float]) throws {
        let normalized = try FlatIndex.normalized(vector, dimension: dimension)
        lock.lock()
        defer { lock.unlock() }
        if let old = nodeOfKey[key] { deleted[Int(old)] = true }
        let node = Int32(keys.count)
        let level = randomLevel()
        keys.append(key)
        vectors.append(contentsOf: normalized)
        levels.append(level)
        links.append(Array(repeating: [], count: Int(level) + 1))
        deleted.append(false)
        nodeOfKey[key] = node
        guard entryPoint >= 0 else {
            entryPoint = node
            return
        }
        var current = entryPoint
        let top = levels[Int(entryPoint)]
        var layer = top
        while layer > level {
            current = greedy(from: current, to: node, layer: layer)
            layer -= 1
        }
        var entries = [current]
        for layer in stride(from: min(level, top), through: 0, by: -1) {
            let candidates = searchLayer(query: node, entries: entries, ef: parameters.efConstruction, layer: layer)
            let limit = layer == 0 ? 2 * parameters.m : parameters.m
            let chosen = selectNeighbours(candidates, limit: parameters.m)
            links[Int(node)][Int(layer)] = chosen.map(\.node)
            for neighbour in chosen {
                connect(neighbour.node, to: node, layer: layer, limit: limit)
            }
            entries = candidates.map(\.node)
        }
        if level > top { entryPoint = node }
    }

    public func remove(key: Int64) {
        lock.withLock {
            guard let node = nodeOfKey.removeValue(forKey: key) else { return }
            deleted[Int(node)] = true
        }
    }

    // MARK: - Search

    public func search(_ query: [Float], k: Int, allowed: ((Int64) -> Bool)? = nil) throws -> [SearchHit] {
        let q = try FlatIndex.normalized(query, dimension: dimension)
        lock.lock()
        defer { lock.unlock() }
        guard k > 0, entryPoint >= 0 else { return [] }
        return q.withUnsafeBufferPointer { queryPointer -> [SearchHit] in
            let similarity = { (node: Int32) -> Float in self.similarity(queryPointer.baseAddress!, node) }
            var current = entryPoint
            var layer = levels[Int(entryPoint)]
            while layer > 0 {
                current = greedy(from: current, layer: layer, similarity: similarity)
                layer -= 1
            }
            let found = searchLayer(entries: [current], ef: max(parameters.efSearch, k), layer: 0, similarity: similarity) { node in
                !self.deleted[Int(node)] && (allowed?(self.keys[Int(node)]) ?? true)
            }
            return found.prefix(k).map { SearchHit(key: keys[Int($0.node)], similarity: $0.similarity) }
        }
    }

    // MARK: - Graph

    struct Scored: Comparable {
        let node: Int32
        let similarity: Float
        static func < (a: Scored, b: Scored) -> Bool { a.similarity < b.similarity }
    }

    private func similarity(_ a: Int32, _ b: Int32) -> Float {
        vectors.withUnsafeBufferPointer { v in
            Operations.dot(v.baseAddress! + Int(a) * dimension, v.baseAddress! + Int(b) * dimension, count: dimension)
        }
    }

    private func similarity(_ query: UnsafePointer<Float>, _ node: Int32) -> Float {
        vectors.withUnsafeBufferPointer { v in Operations.dot(v.baseAddress! + Int(node) * dimension, query, count: dimension) }
    }

    private func greedy(from start: Int32, to node: Int32, layer: Int32) -> Int32 {
        greedy(from: start, layer: layer) { self.similarity($0, node) }
    }

    /// Moves to the most similar neighbour until none is closer.
    private func greedy(from start: Int32, layer: Int32, similarity: (Int32) -> Float) -> Int32 {
        var current = start
        var best = similarity(current)
        var improved = true
        while improved {
            improved = false
            for neighbour in links[Int(current)][Int(layer)] {
                let s = similarity(neighbour)
                if s > best {
                    best = s
                    current = neighbour
                    improved = true
                }
            }
        }
        return current
    }

    private func searchLayer(query node: Int32, entries: [Int32], ef: Int, layer: Int32) -> [Scored] {
        searchLayer(entries: entries, ef: ef, layer: layer, similarity: { self.similarity($0, node) }) { $0 != node }
    }

    /// Best-first search on one layer; returns up to `ef` accepted nodes, most similar first. Nodes that
    /// `accept` refuses (tombstones, filtered keys) are still walked through.
    private func searchLayer(
        entries: [Int32], ef: Int, layer: Int32, similarity: (Int32) -> Float, accept: (Int32) -> Bool
    ) -> [Scored] {
        if marks.count < keys.count { marks.append(contentsOf: repeatElement(0, count: keys.count - marks.count)) }
        visit &+= 1
        if visit == 0 {
            for i in marks.indices { marks[i] = 0 }
            visit = 1
        }
        func firstVisit(_ node: Int32) -> Bool {
            if marks[Int(node)] == visit { return false }
            marks[Int(node)] = visit
            return true
        }
        var candidates = Heap<Scored>(order: >)     // most similar on top
        var results = Heap<Scored>(order: <)        // least similar on top
        var walked = Heap<Scored>(order: <)         // bound of the walk, accepted or not
        for entry in entries where firstVisit(entry) {
            let scored = Scored(node: entry, similarity: similarity(entry))
            candidates.push(scored)
            walked.push(scored)
            if accept(entry) { results.push(scored) }
        }
        while walked.count > ef { walked.pop() }
        while let candidate = candidates.pop() {
            if walked.count >= ef, let worst = walked.top, candidate.similarity < worst.similarity { break }
            for neighbour in links[Int(candidate.node)][Int(layer)] where firstVisit(neighbour) {
                let scored = Scored(node: neighbour, similarity: similarity(neighbour))
                if walked.count < ef || scored.similarity > walked.top!.similarity {
                    candidates.push(scored)
                    walked.push(scored)
                    if walked.count > ef { walked.pop() }
                    if accept(neighbour) {
                        results.push(scored)
                        if results.count > ef { results.pop() }
                    }
                }
            }
        }
        return results.elements.sorted { $0.similarity > $1.similarity }
    }

    /// hnswlib's heuristic: keep a candidate only if it is closer to the new node than to every
    /// neighbour already kept, which spreads links across clusters.
    private func selectNeighbours(_ candidates: [Scored], limit: Int) -> [Scored] {
        var chosen = [Scored]()
        for candidate in candidates {
            if chosen.count >= limit { break }
            if chosen.allSatisfy({ similarity($0.node, candidate.node) < candidate.similarity }) { chosen.append(candidate) }
        }
        return chosen
    }

    private func connect(_ node: Int32, to newNode: Int32, layer: Int32, limit: Int) {
        var neighbours = links[Int(node)][Int(layer)]
        neighbours.append(newNode)
        if neighbours.count > limit {
            let scored = neighbours.map { Scored(node: $0, similarity: similarity(node, $0)) }.sorted { $0.similarity > $1.similarity }
            neighbours = selectNeighbours(scored, limit: limit).map(\.node)
        }
        links[Int(node)][Int(layer)] = neighbours
    }

    /// Levels drawn with probability 1/M per step up (mL = 1 / ln M), from a seeded generator so that a
    /// build is repeatable.
    private func randomLevel() -> Int32 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let uniform = max(Double(random >> 11) / Double(1 << 53), 1e-12)
        return Int32(min(16, Int(-log(uniform) / log(Double(parameters.m)))))
    }

    // MARK: - Persistence

    static let magic = Array("LOUPEHNSW".utf8)
    static let version: UInt32 = 1

    /// Writes the whole index: magic, version, parameters, then nodes (key, level, tombstone, vector, links).
    public func write(to url: URL) throws {
        lock.lock()
        defer { lock.unlock() }
        var out = Data(Self.magic)
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        put(Self.version)
        put(UInt32(dimension)); put(UInt32(parameters.m)); put(UInt32(parameters.efConstruction)); put(UInt32(parameters.efSearch))
        put(UInt64(keys.count)); put(entryPoint); put(random)
        for node in keys.indices {
            put(keys[node]); put(levels[node]); put(UInt8(deleted[node] ? 1 : 0))
            vectors[(node * dimension)..<((node + 1) * dimension)].withUnsafeBufferPointer { out.append(Data(buffer: $0)) }
            for layer in links[node] {
                put(UInt32(layer.count))
                for neighbour in layer { put(neighbour) }
            }
        }
        try out.write(to: url, options: .atomic)
    }

    public enum PersistenceError: Error, Equatable { case notAnIndex, unsupportedVersion(UInt32), truncated, inconsistent }

    public static func read(from url: URL) throws -> HNSWIndex {
        let data = try Data(contentsOf: url)
        var offset = 0
        func take<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard offset + MemoryLayout<T>.size <= data.count else { throw PersistenceError.truncated }
            defer { offset += MemoryLayout<T>.size }
            return T(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) })
        }
        guard data.count >= magic.count, Array(data.prefix(magic.count)) == magic else { throw PersistenceError.notAnIndex }
        offset = magic.count
        let version = try take(UInt32.self)
        guard version == Self.version else { throw PersistenceError.unsupportedVersion(version) }
        let dimension = Int(try take(UInt32.self))
        let parameters = Parameters(m: Int(try take(UInt32.self)), efConstruction: Int(try take(UInt32.self)), efSearch: Int(try take(UInt32.self)))
        let count = Int(try take(UInt64.self))
        guard dimension > 0, dimension <= 65_536, count <= (data.count - offset) / (dimension * 4 + 13) + 1 else { throw PersistenceError.inconsistent }
        let index = HNSWIndex(dimension: dimension, parameters: parameters)
        index.entryPoint = try take(Int32.self)
        index.random = try take(UInt64.self)
        for node in 0..<count {
            let key = try take(Int64.self)
            let level = try take(Int32.self)
            let isDeleted = try take(UInt8.self) == 1
            guard (0...16).contains(level), offset + dimension * 4 <= data.count else { throw PersistenceError.inconsistent }
            index.vectors.append(contentsOf: data.withUnsafeBytes { raw in
                (0..<dimension).map { raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: Float.self) }
            })
            offset += dimension * 4
            var layers = [[Int32]]()
            for _ in 0...level {
                let linkCount = Int(try take(UInt32.self))
                guard linkCount <= 4 * parameters.m + 1 else { throw PersistenceError.inconsistent }
                layers.append(try (0..<linkCount).map { _ in
                    let neighbour = try take(Int32.self)
                    guard neighbour >= 0, Int(neighbour) < count else { throw PersistenceError.inconsistent }
                    return neighbour
                })
            }
            index.keys.append(key)
            index.levels.append(level)
            index.deleted.append(isDeleted)
            index.links.append(layers)
            if !isDeleted { index.nodeOfKey[key] = Int32(node) }
        }
        guard offset == data.count, index.entryPoint < Int32(count), (count == 0) == (index.entryPoint < 0) else { throw PersistenceError.inconsistent }
        return index
    }
}

/// A binary heap ordered by `order` (the element for which `order(a, b)` holds for all others is on top).
struct Heap<Element> {
    private(set) var elements: [Element] = []
    let order: (Element, Element) -> Bool

    init(order: @escaping (Element, Element) -> Bool) { self.order = order }

    var count: Int { elements.count }
    var top: Element? { elements.first }

    mutating func push(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard order(elements[child], elements[parent]) else { break }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Element? {
        guard !elements.isEmpty else { return nil }
        elements.swapAt(0, elements.count - 1)
        let removed = elements.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < elements.count && order(elements[left], elements[best]) { best = left }
            if right < elements.count && order(elements[right], elements[best]) { best = right }
            if best == parent { break }
            elements.swapAt(parent, best)
            parent = best
        }
        return removed
    }
}
