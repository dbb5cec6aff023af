import Crypto
import Foundation
import ImageCollections

/// Loads checked rows into a collection under a model identity, in batches of one transaction each: a
/// row whose stored item already has its vector and metadata is skipped, so a run killed at any moment
/// and started again ends with every row exactly once.
public struct VectorImporter: Sendable {
    public let store: CollectionStore
    public let identity: ModelIdentity

    public init(store: CollectionStore, identity: ModelIdentity) {
        self.store = store
        self.identity = identity
    }

    public func run(_ rows: [ImportRow], problems: [SourceProblem], into collection: String, batch: Int = 500,
                    progress report: @escaping @Sendable (IngestProgress) -> Void = { _ in }) async throws -> IngestSummary {
        _ = try await store.openCollection(collection, model: identity)
        let stored = try await store.contentHashes(in: collection)
        var progress = IngestProgress(total: rows.count + problems.count)
        progress.failed = problems.count
        report(progress)
        for start in stride(from: 0, to: rows.count, by: max(1, batch)) {
            var items = [Item](), added = 0, skipped = 0
            for row in rows[start..<min(start + max(1, batch), rows.count)] {
                let hash = Self.contentHash(row)
                if stored[row.id] == hash {
                    skipped += 1
                    continue
                }
                if stored[row.id] == nil { added += 1 }
                items.append(Item(id: row.id, source: row.source, contentHash: hash, metadata: row.metadata, vector: row.vector))
            }
            if !items.isEmpty { try await store.upsert(items, into: collection) }
            progress.added += added
            progress.updated += items.count - added
            progress.skipped += skipped
            report(progress)
        }
        return IngestSummary(progress: progress, problems: problems)
    }

    /// Names an imported item by what it holds (there is no file to hash): its vector's bytes and metadata.
    static func contentHash(_ row: ImportRow) -> String {
        var hasher = SHA256()
        row.vector.withUnsafeBufferPointer { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        for key in row.metadata.keys.sorted() { hasher.update(data: Data("\0\(key)\0\(row.metadata[key]!)".utf8)) }
        hasher.update(data: Data("\0\(row.source)".utf8))
        return "import:" + ItemWriter.hex(hasher.finalize())
    }
}
