import Foundation
import LoupeTestSupport
import Testing

@testable import VectorIndex

@Suite struct HNSWIndexTests {
    static func recall(_ index: HNSWIndex, _ exact: FlatIndex, queries: [[Float]], k: Int = 10) throws -> Double {
        var found = 0
        for query in queries {
            let truth = Set(try exact.search(query, k: k).map(\.key))
            found += try index.search(query, k: k).filter { truth.contains($0.key) }.count
        }
        return Double(found) / Double(queries.count * k)
    }

    /// The same vectors in an HNSW graph and in an exact index, keyed by position.
    static func indexes(_ vectors: [[Float]], dimension: Int) throws -> (HNSWIndex, FlatIndex) {
        let index = HNSWIndex(dimension: dimension)
        var exact = FlatIndex(dimension: dimension)
        for (key, vector) in vectors.enumerated() {
            try index.add(key: Int64(key), vector: vector)
            try exact.add(key: Int64(key), vector: vector)
        }
        return (index, exact)
    }

    /// Batches linked on every thread while other threads search: every answer holds only keys added
    /// so far with their true similarity, and the finished graph has every key and the usual recall.
    @Test func addsWhileSearchingStayCorrect() throws {
        let vectors = ClusteredVectors.make(count: 6_000, dimension: 64, clusters: 60, seed: 3)
        let queries = ClusteredVectors.make(count: 100, dimension: 64, clusters: 60, seed: 4)
        let index = HNSWIndex(dimension: 64, parameters: .init(m: 12, efConstruction: 64, efSearch: 64))
        try index.add(keys: (0..<1_000).map(Int64.init), vectors: Array(vectors[0..<1_000]))
        let problems = LockedValue<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                if worker == 0 {
                    for start in stride(from: 1_000, to: 6_000, by: 500) {
                        try index.add(keys: (start..<start + 500).map(Int64.init), vectors: Array(vectors[start..<start + 500]))
                    }
                } else {
                    for round in 0..<300 {
                        let query = queries[(round * 7 + worker) % queries.count]
                        for hit in try index.search(query, k: 10) {
                            let expected = try FlatIndex.normalized(vectors[Int(hit.key)], dimension: 64)
                            let normalizedQuery = try FlatIndex.normalized(query, dimension: 64)
                            let similarity = zip(expected, normalizedQuery).reduce(0) { $0 + $1.0 * $1.1 }
                            if !(0..<6_000).contains(hit.key) || abs(similarity - hit.similarity) > 1e-4 {
                                problems.withLock { $0.append("key \(hit.key): \(hit.similarity) against \(similarity)") }
                            }
                        }
                    }
                }
            } catch {
                problems.withLock { $0.append("\(error)") }
            }
        }
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(5) })")
        #expect(index.count == 6_000)
        var exact = FlatIndex(dimension: 64)
        for (key, vector) in vectors.enumerated() { try exact.add(key: Int64(key), vector: vector) }
        #expect(try Self.recall(index, exact, queries: queries) >= 0.95)
    }

    /// A float16 graph: recall@10 of its own (approximate) answers against exact search stays high, and
    /// it reads back from a file with the same answers.
    @Test func aFloat16GraphSearchesAndReadsBack() throws {
        let vectors = ClusteredVectors.make(count: 5_000, dimension: 96, clusters: 50, seed: 8)
        let queries = ClusteredVectors.make(count: 100, dimension: 96, clusters: 50, seed: 9)
        let index = HNSWIndex(dimension: 96, parameters: .init(), precision: .float16)
        try index.add(keys: vectors.indices.map(Int64.init), vectors: vectors)
        var exact = FlatIndex(dimension: 96)
        for (key, vector) in vectors.enumerated() { try exact.add(key: Int64(key), vector: vector) }
        #expect(try Self.recall(index, exact, queries: queries) >= 0.95)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hnsw16-\(UUID()).index")
        defer { try? FileManager.default.removeItem(at: file) }
        try index.write(to: file)
        let reopened = try HNSWIndex.read(from: file, precision: .float16)
        #expect(reopened.precision == .float16)
        for query in queries.prefix(20) { #expect(try reopened.search(query, k: 10) == index.search(query, k: 10)) }
    }

    /// recall@10 against exact search at the default parameters on 100,000 clustered 512-d vectors.
    @Test func recallAtDefaultsOn100kClusteredVectors() throws {
        let vectors = ClusteredVectors.make(count: 100_000, dimension: 512, clusters: 500, seed: 1)
        let queries = ClusteredVectors.make(count: 200, dimension: 512, clusters: 500, seed: 2)
        let (index, exact) = try Self.indexes(vectors, dimension: 512)
        let recall = try Self.recall(index, exact, queries: queries)
        #expect(recall >= 0.95, "recall@10 = \(recall)")

        // The same results after saving and reading back.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hnsw-\(UUID()).index")
        defer { try? FileManager.default.removeItem(at: file) }
        try index.write(to: file)
        let reopened = try HNSWIndex.read(from: file)
        for query in queries.prefix(50) {
            #expect(try reopened.search(query, k: 10) == index.search(query, k: 10))
        }
    }

    @Test func addsReplacementsAndDeletesAfterTheBuild() throws {
        let vectors = ClusteredVectors.make(count: 3_000, dimension: 64, clusters: 30, seed: 3)
        var (index, exact) = try Self.indexes(vectors, dimension: 64)
        for key in stride(from: 0, to: 3_000, by: 3) {
            index.remove(key: Int64(key))
            exact.remove(key: Int64(key))
        }
        let extra = ClusteredVectors.make(count: 500, dimension: 64, clusters: 30, seed: 4)
        for (offset, vector) in extra.enumerated() {
            try index.add(key: Int64(10_000 + offset), vector: vector)
            try exact.add(key: Int64(10_000 + offset), vector: vector)
        }
        // Replacing a key moves it: the old vector is no longer found under it.
        try index.add(key: 1, vector: extra[0])
        try exact.add(key: 1, vector: extra[0])
        #expect(index.count == exact.count)
        let queries = ClusteredVectors.make(count: 100, dimension: 64, clusters: 30, seed: 5)
        for query in queries {
            #expect(try index.search(query, k: 10).allSatisfy { $0.key % 3 != 0 || $0.key >= 10_000 })
        }
        #expect(try Self.recall(index, exact, queries: queries) >= 0.95)
        #expect(try index.search(extra[0], k: 2).map(\.key).sorted() == [1, 10_000])
    }

    /// A filter that refuses the query's whole neighbourhood (it keeps whole clusters, none of them the
    /// query's): the walk goes on through refused nodes until it has ef allowed ones, so it returns k
    /// allowed items close to the best. A walk bounded by every node it saw stopped inside the refused
    /// cluster and found 0.6 of them on the benchmark.
    @Test func aFilterRefusingTheQuerysNeighbourhoodStillFindsTheNearestAllowed() throws {
        let clusters = 40
        let vectors = ClusteredVectors.make(count: 4_000, dimension: 32, clusters: clusters, seed: 5)
        let index = HNSWIndex(dimension: 32, parameters: .init(m: 16, efConstruction: 64, efSearch: 64))
        try index.add(keys: vectors.indices.map(Int64.init), vectors: vectors)
        var exact = FlatIndex(dimension: 32)
        for (key, vector) in vectors.enumerated() { try exact.add(key: Int64(key), vector: vector) }
        // Key k is in cluster k % 40; queries come from the refused clusters.
        let allowedKeys = Set(vectors.indices.map(Int64.init).filter { $0 % Int64(clusters) < Int64(clusters / 2) })
        let queries = ClusteredVectors.make(count: 40, dimension: 32, clusters: clusters, seed: 6).enumerated()
            .filter { $0.offset % clusters >= clusters / 2 }.map(\.element)
        var found = 0
        for query in queries {
            let hits = try index.search(query, k: 10) { allowedKeys.contains($0) }
            #expect(hits.count == 10 && hits.allSatisfy { allowedKeys.contains($0.key) })
            let truth = Set(try exact.search(query, k: 10, among: allowedKeys).map(\.key))
            found += hits.filter { truth.contains($0.key) }.count
        }
        #expect(Double(found) / Double(queries.count * 10) >= 0.9)
    }

    @Test func filtersAndBadInput() throws {
        let index = HNSWIndex(dimension: 8)
        for key in 0..<200 { try index.add(key: Int64(key), vector: (0..<8).map { Float(sin(Double(key * 8 + $0))) }) }
        #expect(try index.search((0..<8).map { Float($0) }, k: 5) { $0 % 2 == 0 }.allSatisfy { $0.key % 2 == 0 })
        #expect(throws: VectorIndexError.dimensionMismatch(expected: 8, got: 3)) { try index.search([1, 2, 3], k: 1) }
        #expect(try HNSWIndex(dimension: 8).search([1, 0, 0, 0, 0, 0, 0, 0], k: 3).isEmpty)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hnsw-\(UUID()).index")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("not an index".utf8).write(to: file)
        #expect(throws: HNSWIndex.PersistenceError.notAnIndex) { try HNSWIndex.read(from: file) }
        try index.write(to: file)
        let whole = try Data(contentsOf: file)
        try whole.prefix(whole.count - 5).write(to: file)
        #expect(throws: HNSWIndex.PersistenceError.self) { try HNSWIndex.read(from: file) }
    }
}
