import Crypto
import Embedding
import Foundation
import ImageCollections
import ImageIO

/// The one way an image becomes a stored item, for `loupe ingest` and the server's add-item route alike:
/// hash its bytes, let the embedder prepare it (with a thumbnail), embed a batch, upsert the batch in
/// one transaction.
public struct ItemWriter: Sendable {
    public let embedder: any Embedder
    public let store: CollectionStore
    /// The bound on decodes in flight, shared by everything that decodes in this process.
    public let decodes: DecodeGate

    public init(embedder: any Embedder, store: CollectionStore, decodes: DecodeGate) {
        self.embedder = embedder
        self.store = store
        self.decodes = decodes
    }

    /// An image ready to embed, with what its item records.
    public struct Prepared: Sendable {
        public let id: String
        public let source: String
        public let metadata: [String: String]
        public let contentHash: String
        public let image: PreparedImage
    }

    public static func contentHash(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hex(hasher.finalize())
    }

    /// A file's bytes and their hash, hashed piece by piece as the file is read (one pass, not two).
    public static func readAndHash(fileAt path: String) throws -> (bytes: [UInt8], contentHash: String) {
        var hasher = SHA256()
        let bytes = try ImageDecoder().readFile(at: path) { hasher.update(bufferPointer: $0) }
        return (bytes, hex(hasher.finalize()))
    }

    /// The same hash read from a file a few megabytes at a time (videos can be larger than memory). Only
    /// a regular file is read: the open does not wait, so a named pipe is refused at once.
    public static func contentHash(ofFileAt path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw CocoaError(.fileReadNoSuchFile) }
        let file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { throw CocoaError(.fileReadUnknown) }
        var hasher = SHA256()
        while let chunk = try file.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    public func prepare(id: String, source: String, metadata: [String: String], bytes: [UInt8], contentHash: String? = nil)
        async throws(EmbeddingError) -> Prepared
    {
        let image = try await embedder.prepare(image: bytes, decodes: decodes, thumbnail: true)
        return Prepared(id: id, source: source, metadata: metadata, contentHash: contentHash ?? Self.contentHash(bytes), image: image)
    }

    /// Embeds a batch: the items to store, and the inputs that got no vector (or a vector of the wrong
    /// length, which is never stored) with their error.
    public func embed(_ batch: [Prepared]) async -> (items: [Item], failed: [(Prepared, EmbeddingError)]) {
        guard !batch.isEmpty else { return ([], []) }
        var items = [Item](), failed = [(Prepared, EmbeddingError)]()
        for (entry, result) in zip(batch, await embedder.embed(batch.map { .image($0.image) })) {
            switch result {
            case .success(let vector) where vector.count == embedder.dimension && vector.allSatisfy(\.isFinite):
                items.append(Item(id: entry.id, source: entry.source, contentHash: entry.contentHash, metadata: entry.metadata,
                                  vector: vector, thumbnail: entry.image.thumbnail))
            case .success(let vector):
                failed.append((entry, EmbeddingError(.badResponse, code: "InvalidVector",
                                                     message: "the embedder returned \(vector.count) numbers, not \(embedder.dimension) finite ones")))
            case .failure(let error):
                failed.append((entry, error))
            }
        }
        return (items, failed)
    }

    /// Stores a batch, in one transaction where the store has transactions (Milvus has none).
    public func upsert(_ items: [Item], into collection: String, removing: [String] = []) async throws {
        guard !items.isEmpty || !removing.isEmpty else { return }
        try await store.upsert(items, into: collection, removing: removing)
    }
}

/// Runs blocking work (a store transaction, a model batch) on a thread of its own, so the decoding
/// tasks keep the concurrency pool.
func runOffThePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
