// Loupe's side of the index benchmark (benchmarks/index_bench.sh runs it next to pgvector).
//
//   index-bench COUNT OUT_DIR [QUERIES] [EF_SEARCH,...] [M] [EF_CONSTRUCTION]
//
// Makes COUNT clustered 512-d vectors and QUERIES queries (the tests' generator, fixed seeds), answers
// every query with exact search (the ground truth, on every compute thread) and with an HNSW graph (built on every compute thread) (M and EF_CONSTRUCTION, by
// default 16 and 64 as pgvector's), and prints one JSON object. Writes OUT_DIR/vectors.f32 and queries.f32 (little-endian float32 rows)
// and truth.i32 (the exact top 10 per query) for the pgvector side.
import Foundation
import LoupeTestSupport
import Tensor
import VectorIndex

let arguments = CommandLine.arguments
guard arguments.count >= 3, let count = Int(arguments[1]), count > 0 else {
    FileHandle.standardError.write(Data("usage: index-bench COUNT OUT_DIR [QUERIES] [EF_SEARCH,...] [M] [EF_CONSTRUCTION]\n".utf8))
    exit(2)
}
let output = URL(fileURLWithPath: arguments[2])
let queryCount = arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000
let efValues = arguments.count > 4 ? arguments[4].split(separator: ",").compactMap { Int($0) } : [40, 96, 200]
let m = arguments.count > 5 ? Int(arguments[5]) ?? 16 : 16
let efConstruction = arguments.count > 6 ? Int(arguments[6]) ?? 64 : 64
let dimension = 512, clusters = 1000, k = 10
// LOUPE_THREADS: compute threads for exact search and the graph build (default: every core).
if let threads = ProcessInfo.processInfo.environment["LOUPE_THREADS"].flatMap(Int.init) { ComputeThreads.set(threads) }

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func write(_ rows: [[Float]], to name: String) throws {
    var data = Data(capacity: rows.count * dimension * 4)
    for row in rows { row.withUnsafeBytes { data.append(contentsOf: $0) } }
    try data.write(to: output.appendingPathComponent(name))
}

try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
let vectors = ClusteredVectors.make(count: count, dimension: dimension, clusters: clusters, seed: 1)
let queries = ClusteredVectors.make(count: queryCount, dimension: dimension, clusters: clusters, seed: 2)
try write(vectors, to: "vectors.f32")
try write(queries, to: "queries.f32")

var exact = FlatIndex(dimension: dimension)
for (key, vector) in vectors.enumerated() { try exact.add(key: Int64(key), vector: vector) }
let truth = try queries.map { try exact.search($0, k: k).map(\.key) }
var truthData = Data()
for row in truth { for key in row { withUnsafeBytes(of: Int32(key).littleEndian) { truthData.append(contentsOf: $0) } } }
try truthData.write(to: output.appendingPathComponent("truth.i32"))

let graph = HNSWIndex(dimension: dimension, parameters: HNSWIndex.Parameters(m: m, efConstruction: efConstruction))
let normalizedVectors = try vectors.flatMap { try FlatIndex.normalized($0, dimension: dimension) }
/// The float32 cosine of a stored vector and a normalised query.
func rescore(_ key: Int64, _ query: [Float]) -> Float {
    normalizedVectors.withUnsafeBufferPointer { Distances.dot($0.baseAddress! + Int(key) * dimension, query, count: dimension) }
}

/// Queries per second (the best of three passes over every query, so that a moment's noise on the machine
/// does not decide a ratio) and recall@10 of `search(query, count)` against `expected`. With `rescoring`
/// (compact vectors), the best max(4k, k + 32) it finds are rescored in float32 and the best k kept.
@MainActor func measure(rescoring: Bool, against expected: [[Int64]] = truth, _ search: ([Float], Int) throws -> [SearchHit]) throws -> [String: Double] {
    var found = 0
    var best = Double.infinity
    for _ in 0..<3 {
        found = 0
        let elapsed = try seconds {
            for (query, expected) in zip(queries, expected) {
                let keys: [Int64]
                if rescoring {
                    let q = try FlatIndex.normalized(query, dimension: dimension)
                    keys = try search(query, max(4 * k, k + 32)).map { ($0.key, rescore($0.key, q)) }.sorted { $0.1 > $1.1 }.prefix(k).map(\.0)
                } else {
                    keys = try search(query, k).map(\.key)
                }
                found += Set(expected).intersection(keys).count
            }
        }
        best = min(best, elapsed)
    }
    let expectedCount = expected.reduce(0) { $0 + $1.count }
    return ["qps": Double(queryCount) / best, "recall_at_10": Double(found) / Double(max(1, expectedCount))]
}

// Exact search, over float32 and compact vectors.
let exactQPS = try measure(rescoring: false) { try exact.search($0, k: $1) }["qps"]!
var compact: [[String: Any]] = [["vectors": "float32", "qps": exactQPS, "recall_at_10": 1.0,
                                 "bytes_per_vector": VectorPrecision.float32.bytes(dimension: dimension)]]
for precision in [VectorPrecision.float16, .int8] {
    var index = FlatIndex(dimension: dimension, precision: precision)
    for (key, vector) in vectors.enumerated() { try index.add(key: Int64(key), vector: vector) }
    let measured = try measure(rescoring: true) { try index.search($0, k: $1) }
    compact.append(["vectors": precision.rawValue, "qps": measured["qps"]!, "recall_at_10": measured["recall_at_10"]!,
                    "bytes_per_vector": precision.bytes(dimension: dimension)])
}

/// Builds a graph in one batch (linked on every compute thread) and measures it at each ef_search.
@MainActor func graphRuns(_ graph: HNSWIndex) throws -> (buildSeconds: Double, runs: [[String: Double]]) {
    let buildSeconds = try seconds { try graph.add(keys: vectors.indices.map(Int64.init), vectors: vectors) }
    let runs = try efValues.map { ef in
        graph.parameters.efSearch = ef
        return try measure(rescoring: graph.precision != .float32) { try graph.search($0, k: $1) }.merging(["ef_search": Double(ef)]) { $1 }
    }
    return (buildSeconds, runs)
}
let (buildSeconds, hnsw) = try graphRuns(graph)

// Filtered search through the policy the embedded store uses (compared one by one when few, else a
// filtered walk), at the default ef_search, with filters keeping 1, 10 and 50 % of the items: "independent"
// picks items by a hash of their key, unrelated to where they lie; "clustered" keeps whole clusters (the
// generator puts key k in cluster k % 1000), so most queries find none of their own cluster allowed,
// the hard case for a graph walk. The exact filtered top 10 goes to truth-KIND-P.i32 for the pgvector side.
graph.parameters.efSearch = HNSWIndex.Parameters().efSearch
var filtered = [[String: Any]]()
for (kind, bucket) in [("independent", { (key: Int64) in Int64((UInt64(key) &* 2_654_435_761) % 4_294_967_296 % 100) }),
                       ("clustered", { (key: Int64) in key % 100 })] {
    for percent in [1, 10, 50] {
        let keys = Set(vectors.indices.map(Int64.init).filter { bucket($0) < Int64(percent) })
        let expected = try queries.map { try exact.search($0, k: k, among: keys).map(\.key) }
        var data = Data()
        for row in expected { for key in row { withUnsafeBytes(of: Int32(key).littleEndian) { data.append(contentsOf: $0) } } }
        try data.write(to: output.appendingPathComponent("truth-\(kind)-\(percent).i32"))
        let measured = try measure(rescoring: false, against: expected) { try graph.search($0, k: $1, filteredTo: keys) }
        var row: [String: Any] = measured.merging(["percent": Double(percent), "ef_search": Double(graph.parameters.efSearch)]) { $1 }
        row["filter"] = kind
        filtered.append(row)
    }
}

// The same graph over float16 vectors (half the bytes per hop), rescored in float32.
let (build16Seconds, hnsw16) = try graphRuns(
    HNSWIndex(dimension: dimension, parameters: HNSWIndex.Parameters(m: m, efConstruction: efConstruction), precision: .float16))

var usage = rusage()
getrusage(RUSAGE_SELF.rawValue, &usage)
let report: [String: Any] = [
    "count": count, "dimension": dimension, "clusters": clusters, "queries": queryCount,
    "exact_qps": exactQPS, "exact_compact": compact,
    "hnsw_build_s": buildSeconds, "build_threads": ComputeThreads.count, "hnsw_m": graph.parameters.m, "hnsw_ef_construction": graph.parameters.efConstruction,
    "hnsw": hnsw, "hnsw_filtered": filtered, "hnsw_float16": hnsw16, "hnsw_float16_build_s": build16Seconds, "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
]
let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
FileHandle.standardOutput.write(json + Data("\n".utf8))
