import Foundation
import Tensor

/// Approximate nearest-neighbour search with a hierarchical navigable small-world graph (Malkov and
/// Yashunin), cosine similarity on normalised vectors, laid out as hnswlib lays it out: one block per node
/// holding its layer-0 links (a count and up to 2·M neighbours) and then its vector, so the links of a
/// node whose similarity was just computed are usually in cache already; upper layers per node;
/// the metric from Tensor's `Distances`. Adds run concurrently with each other and with searches: a
/// node's links are written under its stripe lock and read without one (each read is a whole, valid
/// node id, so a search that races a write walks an older or newer neighbour, never outside the graph).
/// Removal leaves a tombstone that search walks through but never returns; re-adding a key replaces
/// its node.
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
    /// float32, or float16 (half the memory and half the bytes read per hop; similarities then approximate,
    /// to be rescored by the caller). int8 is kept as float16 in a graph.
    public let precision: VectorPrecision
    /// `m` and `efConstruction` are fixed when the index is made; `efSearch` may change at any time.
    public var parameters: Parameters {
        get { settings.withLock { $0 } }
        set { settings.withLock { $0.efSearch = newValue.efSearch } }
    }
    private let settings: LockedValue<Parameters>
    private let m: Int
    /// Ints of layer-0 links in a node's block: the count, then up to 2·M neighbours.
    private let stride0: Int
    /// Bytes per node block: layer-0 links, then the vector.
    private let blockBytes: Int
    private var isHalf: Bool { precision == .float16 }
    /// Ints per upper layer of a node: the count, then up to M neighbours.
    private var strideUpper: Int { m + 1 }

    // Storage for `capacity` nodes; it grows only under `growth`'s write lock, everything else holds its read lock.
    private let growth = ReadWriteLock()
    private var capacity = 0
    /// Node blocks, bound to Float (links are read and written as raw 32-bit values).
    private var blocks: UnsafeMutableRawPointer
    private var keys: UnsafeMutablePointer<Int64>
    private var levels: UnsafeMutablePointer<Int32>
    private var deleted: UnsafeMutablePointer<UInt8>
    private var upper: UnsafeMutablePointer<UnsafeMutablePointer<Int32>?>

    /// Node allocation, the key map, the level generator, the entry point.
    private let nodes = NSLock()
    private var nodeCount = 0
    private var nodeOfKey: [Int64: Int32] = [:]
    private var tombstones = 0
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var entryPoint: Int32 = -1
    private var topLevel: Int32 = -1

    /// Writers of a node's links hold its stripe.
    private let stripes = StripedLocks(count: 1024)
    /// Visited marks for searches in flight, reused.
    private let visitedPool = VisitedPool()

    public init(dimension: Int, parameters: Parameters = Parameters(), precision: VectorPrecision = .float32) {
        self.dimension = dimension
        self.precision = precision == .float32 ? .float32 : .float16
        settings = LockedValue(parameters)
        m = parameters.m
        stride0 = 2 * parameters.m + 1
        blockBytes = stride0 * 4 + (precision == .float32 ? 4 : 2) * dimension
        blocks = PageAllocation.allocate(byteCount: 0)
        keys = .allocate(capacity: 0)
        levels = .allocate(capacity: 0)
        deleted = .allocate(capacity: 0)
        upper = .allocate(capacity: 0)
    }

    deinit {
        for node in 0..<nodeCount { upper[node]?.deallocate() }
        PageAllocation.free(blocks)
        for pointer in [UnsafeMutableRawPointer(keys), UnsafeMutableRawPointer(levels),
                        UnsafeMutableRawPointer(deleted), UnsafeMutableRawPointer(upper)] {
            pointer.deallocate()
        }
    }

    /// Live keys.
    public var count: Int { nodes.withLock { nodeOfKey.count } }

    // MARK: - Adding and removing

    public func add(key: Int64, vector: [Float]) throws {
        try add(keys: [key], vectors: [vector])
    }

    /// Adds or replaces many vectors, linking them on every compute thread (hnswlib's parallel build).
    public func add(keys newKeys: [Int64], vectors newVectors: [[Float]]) throws {
        precondition(newKeys.count == newVectors.count, "one key per vector")
        let normalized = try newVectors.map { try FlatIndex.normalized($0, dimension: dimension) }
        growth.readLock()
        defer { growth.unlock() }
        var first = allocate(keys: newKeys, vectors: normalized)
        while case .needsRoom(let total) = first {
            growth.unlock()
            reserve(total)
            growth.readLock()
            first = allocate(keys: newKeys, vectors: normalized)
        }
        guard case .allocated(let start) = first else { return }
        let count = newKeys.count
        let parts = count >= 64 ? ComputeThreads.count : 1
        let next = AtomicCounter()
        ComputeThreads.parallel(parts) { _ in
            while true {
                let index = next.take()
                guard index < count else { return }
                self.link(start + Int32(index))
            }
        }
    }

    public func remove(key: Int64) {
        nodes.withLock {
            guard let node = nodeOfKey.removeValue(forKey: key) else { return }
            deleted[Int(node)] = 1
            tombstones += 1
        }
    }

    /// Room for `total` nodes, growing by half again at least.
    private func reserve(_ total: Int) {
        guard total > capacity else { return }
        growth.writeLock()
        defer { growth.unlock() }
        guard total > capacity else { return }
        let newCapacity = max(total, capacity + capacity / 2, 64)
        func grown<T>(_ old: UnsafeMutablePointer<T>, per: Int, fill: T) -> UnsafeMutablePointer<T> {
            let new = UnsafeMutablePointer<T>.allocate(capacity: newCapacity * per)
            new.moveInitialize(from: old, count: capacity * per)
            (new + capacity * per).initialize(repeating: fill, count: (newCapacity - capacity) * per)
            old.deallocate()
            return new
        }
        let newBlocks = PageAllocation.allocate(byteCount: newCapacity * blockBytes)
        newBlocks.copyMemory(from: blocks, byteCount: capacity * blockBytes)
        (newBlocks + capacity * blockBytes).initializeMemory(as: UInt8.self, repeating: 0, count: (newCapacity - capacity) * blockBytes)
        newBlocks.bindMemory(to: Float.self, capacity: newCapacity * blockBytes / 4)
        PageAllocation.free(blocks)
        blocks = newBlocks
        keys = grown(keys, per: 1, fill: 0)
        levels = grown(levels, per: 1, fill: 0)
        deleted = grown(deleted, per: 1, fill: 0)
        upper = grown(upper, per: 1, fill: nil)
        capacity = newCapacity
    }

    private enum Allocation {
        case allocated(first: Int32)
        case needsRoom(total: Int)
    }

    /// Gives each vector a node (its key, vector and level written before any link can lead to it) and
    /// tombstones the nodes the keys had; the caller holds `growth`'s read lock.
    private func allocate(keys newKeys: [Int64], vectors normalized: [[Float]]) -> Allocation {
        nodes.withLock {
            guard nodeCount + newKeys.count <= capacity else { return .needsRoom(total: nodeCount + newKeys.count) }
            let first = Int32(nodeCount)
            for (offset, (key, vector)) in zip(newKeys, normalized).enumerated() {
                let node = nodeCount + offset
                if let old = nodeOfKey[key] {
                    deleted[Int(old)] = 1
                    tombstones += 1
                }
                nodeOfKey[key] = Int32(node)
                keys[node] = key
                store(vector, at: Int32(node))
                let level = randomLevel()
                levels[node] = level
                if level > 0 {
                    let links = UnsafeMutablePointer<Int32>.allocate(capacity: Int(level) * strideUpper)
                    links.initialize(repeating: 0, count: Int(level) * strideUpper)
                    upper[node] = links
                }
            }
            nodeCount += newKeys.count
            return .allocated(first: first)
        }
    }

    /// Links a new node into every layer up to its level, as hnswlib's addPoint does.
    private func link(_ node: Int32) {
        let level = levels[Int(node)]
        let (entry, top): (Int32, Int32) = nodes.withLock {
            if entryPoint < 0 {
                entryPoint = node
                topLevel = level
            }
            return (entryPoint, topLevel)
        }
        guard entry != node else { return }
        withVector(node) { query in linkFrom(entry, top: top, node: node, level: level, query: query) }
    }

    private func linkFrom(_ entry: Int32, top: Int32, node: Int32, level: Int32, query: UnsafePointer<Float>) {
        var current = entry
        var layer = top
        while layer > level {
            current = greedy(query, from: current, layer: layer)
            layer -= 1
        }
        let efConstruction = parameters.efConstruction
        var entries = [current]
        for layer in stride(from: min(level, top), through: 0, by: -1) {
            let candidates = searchLayer(query, entries: entries, ef: efConstruction, layer: layer, filter: nil, excluding: node)
            let chosen = selectNeighbours(candidates, limit: m)
            stripes.withLock(node) { write(chosen.map(\.node), to: links(node, layer)) }
            let limit = layer == 0 ? 2 * m : m
            for neighbour in chosen { connect(neighbour.node, to: node, layer: layer, limit: limit) }
            // The next layer down starts from the closest neighbour chosen here, as hnswlib's does.
            entries = [chosen.first?.node ?? current]
        }
        if level > top {
            nodes.withLock {
                if level > topLevel {
                    entryPoint = node
                    topLevel = level
                }
            }
        }
    }

    private func connect(_ node: Int32, to newNode: Int32, layer: Int32, limit: Int) {
        stripes.withLock(node) {
            let list = links(node, layer)
            let count = Int(list[0])
            if count < limit {
                list[1 + count] = newNode
                list[0] = Int32(count + 1)
                return
            }
            var scored = withVector(node) { base in
                (0..<count).map { Scored(node: list[1 + $0], similarity: similarity(base, list[1 + $0])) }
                    + [Scored(node: newNode, similarity: similarity(base, newNode))]
            }
            scored.sort { $0.similarity > $1.similarity }
            write(selectNeighbours(scored, limit: limit).map(\.node), to: list)
        }
    }

    // MARK: - Search

    public func search(_ query: [Float], k: Int, allowed: (@Sendable (Int64) -> Bool)? = nil) throws -> [SearchHit] {
        let q = try FlatIndex.normalized(query, dimension: dimension)
        guard k > 0 else { return [] }
        growth.readLock()
        defer { growth.unlock() }
        let (entry, top, hasTombstones) = nodes.withLock { (entryPoint, topLevel, tombstones > 0) }
        guard entry >= 0 else { return [] }
        let ef = max(parameters.efSearch, k)
        return q.withUnsafeBufferPointer { queryBuffer -> [SearchHit] in
            let query = queryBuffer.baseAddress!
            var current = entry
            var layer = top
            while layer > 0 {
                current = greedy(query, from: current, layer: layer)
                layer -= 1
            }
            let filter: ((Int32) -> Bool)? = allowed == nil && !hasTombstones ? nil : { node in
                self.deleted[Int(node)] == 0 && (allowed?(self.keys[Int(node)]) ?? true)
            }
            let found = searchLayer(query, entries: [current], ef: ef, layer: 0, filter: filter, excluding: -1)
            return found.prefix(k).map { SearchHit(key: keys[Int($0.node)], similarity: $0.similarity) }
        }
    }

    /// The `k` most similar among the live vectors stored under `candidates`, compared one by one (a
    /// filter that keeps few items: a graph walk would pass through many refused nodes to find them).
    public func search(_ query: [Float], k: Int, among candidates: some Sequence<Int64>) throws -> [SearchHit] {
        let q = try FlatIndex.normalized(query, dimension: dimension)
        growth.readLock()
        defer { growth.unlock() }
        let nodesOfCandidates: [(Int64, Int32)] = nodes.withLock { candidates.compactMap { key in nodeOfKey[key].map { (key, $0) } } }
        var best = TopK(k)
        q.withUnsafeBufferPointer { query in
            for (key, node) in nodesOfCandidates { best.offer(SearchHit(key: key, similarity: similarity(query.baseAddress!, node))) }
        }
        return best.sorted()
    }

    // MARK: - Graph

    struct Scored {
        let node: Int32
        let similarity: Float
    }

    @inline(__always)
    private func similarity(_ query: UnsafePointer<Float>, _ node: Int32) -> Float {
        isHalf ? Distances.dot(query, halfVector(node), count: dimension) : Distances.dot(query, vector(node), count: dimension)
    }

    @inline(__always)
    private func vector(_ node: Int32) -> UnsafeMutablePointer<Float> {
        (blocks + Int(node) * blockBytes + stride0 * 4).assumingMemoryBound(to: Float.self)
    }

    @inline(__always)
    private func halfVector(_ node: Int32) -> UnsafeMutablePointer<Float16> {
        (blocks + Int(node) * blockBytes + stride0 * 4).assumingMemoryBound(to: Float16.self)
    }

    private func store(_ values: [Float], at node: Int32) {
        if isHalf {
            for i in 0..<dimension { halfVector(node)[i] = Float16(values[i]) }
        } else {
            values.withUnsafeBufferPointer { vector(node).update(from: $0.baseAddress!, count: dimension) }
        }
    }

    /// A node's vector as float32 (widened into a buffer when the graph keeps float16).
    private func withVector<T>(_ node: Int32, _ body: (UnsafePointer<Float>) -> T) -> T {
        guard isHalf else { return body(vector(node)) }
        let half = halfVector(node)
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: dimension) { buffer in
            Distances.widen(half, count: dimension, into: buffer.baseAddress!)
            return body(buffer.baseAddress!)
        }
    }

    /// A node's list on one layer: the count, then the neighbours.
    @inline(__always)
    private func links(_ node: Int32, _ layer: Int32) -> LinkList {
        LinkList(raw: layer == 0 ? blocks + Int(node) * blockBytes : UnsafeMutableRawPointer(upper[Int(node)]! + Int(layer - 1) * strideUpper))
    }

    /// Writes the neighbours first and the count last, so a reader without the lock sees valid ids.
    private func write(_ neighbours: [Int32], to list: LinkList) {
        for (index, neighbour) in neighbours.enumerated() { list[1 + index] = neighbour }
        list[0] = Int32(neighbours.count)
    }

    /// Moves to the most similar neighbour until none is closer.
    private func greedy(_ query: UnsafePointer<Float>, from start: Int32, layer: Int32) -> Int32 {
        var current = start
        var best = similarity(query, current)
        var improved = true
        while improved {
            improved = false
            let list = links(current, layer)
            for index in 0..<Int(list[0]) {
                let neighbour = list[1 + index]
                let s = similarity(query, neighbour)
                if s > best {
                    best = s
                    current = neighbour
                    improved = true
                }
            }
        }
        return current
    }

    /// Best-first search on one layer; returns up to `ef` nodes that `filter` accepts (all when nil), most
    /// similar first. Refused nodes (tombstones, filtered keys) are still walked through.
    private func searchLayer(
        _ query: UnsafePointer<Float>, entries: [Int32], ef: Int, layer: Int32, filter: ((Int32) -> Bool)?, excluding excluded: Int32
    ) -> [Scored] {
        let visited = visitedPool.take(capacity: capacity)
        defer { visitedPool.give(visited) }
        var candidates = ScoredHeap<MostSimilarFirst>()
        var results = ScoredHeap<LeastSimilarFirst>()  // the ef best accepted: the walk's bound
        let filtering = filter != nil || excluded >= 0
        func accept(_ node: Int32) -> Bool { !filtering || (node != excluded && (filter?(node) ?? true)) }
        func offer(_ scored: Scored) {
            guard accept(scored.node) else { return }
            results.push(scored)
            if results.count > ef { results.pop() }
        }
        for entry in entries where visited.visit(entry) {
            let scored = Scored(node: entry, similarity: similarity(query, entry))
            candidates.push(scored)
            offer(scored)
        }
        // The unvisited neighbours of the node being expanded, scored together (the kernel prefetches
        // each next vector while it scores the last).
        let fresh = UnsafeMutablePointer<Int32>.allocate(capacity: stride0)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: stride0)
        defer {
            fresh.deallocate()
            scores.deallocate()
        }
        // The walk ends when ef accepted nodes are found and no candidate left is closer than the worst of
        // them. Refused nodes are walked through without counting, so a filter that refuses a query's whole
        // neighbourhood sends the walk on until it has found ef that pass (as hnswlib does).
        while let candidate = candidates.pop() {
            if results.count >= ef, candidate.similarity < results.top!.similarity { break }
            // The next candidate's links are likely read after this one's neighbours are scored: ask for
            // them now (hnswlib does the same; a node's links sit apart from the vector just scored).
            if layer == 0, let next = candidates.top { Distances.prefetch(blocks + Int(next.node) * blockBytes, bytes: stride0 * 4) }
            let list = links(candidate.node, layer)
            var freshCount = 0
            for index in 0..<min(Int(list[0]), stride0 - 1) {
                let neighbour = list[1 + index]
                if visited.visit(neighbour) {
                    fresh[freshCount] = neighbour
                    freshCount += 1
                }
            }
            if isHalf {
                Distances.dots(query, halfVector(0), stride: blockBytes / 2, dimension: dimension, ids: fresh, count: freshCount, into: scores)
            } else {
                Distances.dots(query, vector(0), stride: blockBytes / 4, dimension: dimension, ids: fresh, count: freshCount, into: scores)
            }
            for index in 0..<freshCount {
                let s = scores[index]
                guard results.count < ef || s > results.top!.similarity else { continue }
                let scored = Scored(node: fresh[index], similarity: s)
                candidates.push(scored)
                offer(scored)
            }
        }
        return results.elements.sorted { $0.similarity > $1.similarity }
    }

    /// hnswlib's heuristic: keep a candidate only if it is closer to the new node than to every
    /// neighbour already kept, which spreads links across clusters; fewer candidates than the limit are
    /// all kept, as hnswlib keeps them.
    private func selectNeighbours(_ candidates: [Scored], limit: Int) -> [Scored] {
        if candidates.count < limit { return candidates }
        var chosen = [Scored]()
        for candidate in candidates {
            if chosen.count >= limit { break }
            if withVector(candidate.node, { base in chosen.allSatisfy { similarity(base, $0.node) < candidate.similarity } }) {
                chosen.append(candidate)
            }
        }
        return chosen
    }

    /// Levels drawn with probability 1/M per step up (mL = 1 / ln M), from a seeded generator so that a
    /// build is repeatable (the order in which parallel adds link nodes is not).
    private func randomLevel() -> Int32 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let uniform = max(Double(random >> 11) / Double(1 << 53), 1e-12)
        return Int32(min(16, Int(-log(uniform) / log(Double(m)))))
    }

    // MARK: - Persistence

    static let magic = Array("LOUPEHNSW".utf8)
    static let version: UInt32 = 1

    /// Writes the whole index: magic, version, parameters, then nodes (key, level, tombstone, vector, links).
    public func write(to url: URL) throws {
        growth.readLock()
        defer { growth.unlock() }
        let data: Data = nodes.withLock {
            var out = Data(Self.magic)
            func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
            let parameters = self.parameters
            put(Self.version)
            put(UInt32(dimension)); put(UInt32(parameters.m)); put(UInt32(parameters.efConstruction)); put(UInt32(parameters.efSearch))
            put(UInt64(nodeCount)); put(entryPoint); put(random)
            for node in 0..<nodeCount {
                put(keys[node]); put(levels[node]); put(deleted[node])
                withVector(Int32(node)) { out.append(UnsafeBufferPointer(start: $0, count: dimension)) }
                for layer in 0...levels[node] {
                    stripes.withLock(Int32(node)) {
                        let list = links(Int32(node), layer)
                        put(UInt32(list[0]))
                        for index in 0..<Int(list[0]) { put(list[1 + index]) }
                    }
                }
            }
            return out
        }
        try data.write(to: url, options: .atomic)
    }

    public enum PersistenceError: Error, Equatable { case notAnIndex, unsupportedVersion(UInt32), truncated, inconsistent }

    /// `precision`: how the graph keeps the vectors read (files hold float32 values).
    public static func read(from url: URL, precision: VectorPrecision = .float32) throws -> HNSWIndex {
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
        let index = HNSWIndex(dimension: dimension, parameters: parameters, precision: precision)
        index.reserve(count)
        let entryPoint = try take(Int32.self)
        index.random = try take(UInt64.self)
        for node in 0..<count {
            let key = try take(Int64.self)
            let level = try take(Int32.self)
            let isDeleted = try take(UInt8.self) == 1
            guard (0...16).contains(level), offset + dimension * 4 <= data.count else { throw PersistenceError.inconsistent }
            index.store(data.withUnsafeBytes { raw in (0..<dimension).map { raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: Float.self) } },
                        at: Int32(node))
            offset += dimension * 4
            index.keys[node] = key
            index.levels[node] = level
            index.deleted[node] = isDeleted ? 1 : 0
            if level > 0 {
                let links = UnsafeMutablePointer<Int32>.allocate(capacity: Int(level) * index.strideUpper)
                links.initialize(repeating: 0, count: Int(level) * index.strideUpper)
                index.upper[node] = links
            }
            index.nodeCount = node + 1
            for layer in 0...level {
                let linkCount = Int(try take(UInt32.self))
                guard linkCount <= (layer == 0 ? 2 * parameters.m : parameters.m) else { throw PersistenceError.inconsistent }
                let neighbours = try (0..<linkCount).map { _ in
                    let neighbour = try take(Int32.self)
                    guard neighbour >= 0, Int(neighbour) < count else { throw PersistenceError.inconsistent }
                    return neighbour
                }
                index.write(neighbours, to: index.links(Int32(node), layer))
            }
            if isDeleted { index.tombstones += 1 } else { index.nodeOfKey[key] = Int32(node) }
        }
        guard offset == data.count, entryPoint < Int32(count), (count == 0) == (entryPoint < 0) else { throw PersistenceError.inconsistent }
        index.entryPoint = entryPoint
        index.topLevel = entryPoint >= 0 ? index.levels[Int(entryPoint)] : -1
        return index
    }
}

// MARK: - Pieces

/// One node's neighbours on one layer: the count, then the ids, as raw 32-bit values.
struct LinkList {
    let raw: UnsafeMutableRawPointer

    @inline(__always)
    subscript(index: Int) -> Int32 {
        get { raw.load(fromByteOffset: 4 * index, as: Int32.self) }
        nonmutating set { raw.storeBytes(of: newValue, toByteOffset: 4 * index, as: Int32.self) }
    }
}

protocol HeapOrder {
    static func before(_ a: HNSWIndex.Scored, _ b: HNSWIndex.Scored) -> Bool
}

enum MostSimilarFirst: HeapOrder {
    @inline(__always) static func before(_ a: HNSWIndex.Scored, _ b: HNSWIndex.Scored) -> Bool { a.similarity > b.similarity }
}

enum LeastSimilarFirst: HeapOrder {
    @inline(__always) static func before(_ a: HNSWIndex.Scored, _ b: HNSWIndex.Scored) -> Bool { a.similarity < b.similarity }
}

/// A binary heap of scored nodes, its order fixed by type so that comparisons inline.
struct ScoredHeap<Order: HeapOrder> {
    private(set) var elements: [HNSWIndex.Scored] = []

    var count: Int { elements.count }
    var top: HNSWIndex.Scored? { elements.first }

    mutating func push(_ element: HNSWIndex.Scored) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Order.before(elements[child], elements[parent]) else { break }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> HNSWIndex.Scored? {
        guard !elements.isEmpty else { return nil }
        elements.swapAt(0, elements.count - 1)
        let removed = elements.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < elements.count && Order.before(elements[left], elements[best]) { best = left }
            if right < elements.count && Order.before(elements[right], elements[best]) { best = right }
            if best == parent { break }
            elements.swapAt(parent, best)
            parent = best
        }
        return removed
    }
}

/// Marks of the nodes one search has visited: a node is visited when its mark equals the search's number.
final class VisitedMarks {
    private var marks = UnsafeMutablePointer<UInt32>.allocate(capacity: 0)
    private var size = 0
    private var current: UInt32 = 0

    deinit { marks.deallocate() }

    func reset(capacity: Int) {
        if size < capacity {
            marks.deallocate()
            marks = .allocate(capacity: capacity)
            marks.initialize(repeating: 0, count: capacity)
            size = capacity
            current = 0
        }
        current &+= 1
        if current == 0 {
            marks.update(repeating: 0, count: size)
            current = 1
        }
    }

    /// True the first time `node` is seen in this search.
    @inline(__always)
    func visit(_ node: Int32) -> Bool {
        if marks[Int(node)] == current { return false }
        marks[Int(node)] = current
        return true
    }
}

/// Visited marks for the searches in flight: each takes its own and gives it back.
final class VisitedPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [VisitedMarks] = []

    func take(capacity: Int) -> VisitedMarks {
        let marks = lock.withLock { free.popLast() } ?? VisitedMarks()
        marks.reset(capacity: capacity)
        return marks
    }

    func give(_ marks: VisitedMarks) { lock.withLock { free.append(marks) } }
}

/// Memory for the node blocks: in 2 MB pages where the system gives them (Linux's transparent huge
/// pages, asked for with madvise), because a graph walk jumps between pages at every hop and 4 KB pages
/// make each jump a TLB miss (10 % more queries per second at 100k 512-d vectors, measured with
/// index-bench). Freed with `free`.
enum PageAllocation {
    static let hugePage = 2 << 20

    static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        #if os(Linux)
        if byteCount >= hugePage {
            let rounded = (byteCount + hugePage - 1) / hugePage * hugePage
            if let memory = aligned_alloc(hugePage, rounded) {
                _ = madvise(memory, rounded, MADV_HUGEPAGE)  // advice only: 4 KB pages if refused
                return memory
            }
        }
        #endif
        return aligned_alloc(64, max(64, (byteCount + 63) / 64 * 64))!
    }

    static func free(_ memory: UnsafeMutableRawPointer) { Foundation.free(memory) }
}

/// Locks chosen by node number, so that writers of different nodes rarely wait for each other.
final class StripedLocks: @unchecked Sendable {
    private let locks: [NSLock]

    init(count: Int) { locks = (0..<count).map { _ in NSLock() } }

    func withLock<T>(_ node: Int32, _ body: () throws -> T) rethrows -> T {
        try locks[Int(node) % locks.count].withLock(body)
    }
}

/// pthread's read–write lock: many readers, or one writer.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() { pthread_rwlock_init(lock, nil) }
    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func readLock() { pthread_rwlock_rdlock(lock) }
    func writeLock() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
}

/// A value behind a lock.
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&value) } }
}

/// Hands out 0, 1, 2, … to whichever thread asks next.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take() -> Int { lock.withLock { defer { next += 1 }; return next } }
}
