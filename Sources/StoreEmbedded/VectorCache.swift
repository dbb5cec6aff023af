import Foundation
import ImageCollections

/// Vectors a remote embedder already paid for, by a key naming the embedder and the input's content, in
/// a SQLite file of the data folder: re-runs and repeated queries send nothing, across restarts. The
/// key is a hash, never the input (texts and images stay out of the file).
public final class VectorCache: Sendable {
    private let database: SQLiteDatabase
    /// SQLite's calls block: they run off the concurrency pool.
    private let work = BlockingWork(label: "loupe.vector-cache")

    public init(file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        database = try SQLiteDatabase(path: file.path)
        try database.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
    }

    /// The stored vector, if one of `dimension` numbers is stored under `key`.
    public func vector(for key: String, dimension: Int) async -> [Float]? {
        let database = self.database
        return try? await work.run {
            guard let blob = try database.execute("SELECT vector FROM vectors WHERE key = ?", [.text(key)]).first?.first?.blob,
                blob.count == dimension * MemoryLayout<Float>.size else { return nil }
            return EmbeddedStore.decode(blob)
        }
    }

    public func store(_ vector: [Float], for key: String) async throws {
        let database = self.database
        try await work.run {
            try database.execute("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", [.text(key), .blob(EmbeddedStore.encode(vector))])
        }
    }

    public var count: Int { (try? database.execute("SELECT count(*) FROM vectors").first?.first?.integer).flatMap { $0 }.map(Int.init) ?? 0 }
}
