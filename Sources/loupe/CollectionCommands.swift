import ArgumentParser
import CLIP
import Embedding
import Foundation
import ImageCollections
import ImageIO
import Ingest
import StoreEmbedded
import StoreMilvus
import StorePostgres
import VectorIndex

/// Where collections live, shared by every collection command: the embedded store in a data folder,
/// PostgreSQL with pgvector, or Milvus.
struct StoreOptions: ParsableArguments {
    @Option(help: "The data folder: the embedded store, error reports and uploads.") var data = "./loupe-data"
    @Option(help: ArgumentHelp(
        "Keep collections in PostgreSQL with pgvector (postgres://user@host:5432/db) or Milvus (milvus://host:19530[/database], milvus+https://… for TLS) instead.",
        discussion: """
            A PostgreSQL password is best left to PGPASSWORD or ~/.pgpass, and a Milvus token (user:password or an API key) to \
            MILVUS_TOKEN, where other users cannot see them.
            """))
    var store: String?
    @Option(help: "The embedded store's vector index: exact (every vector compared) or hnsw (approximate, for large collections).")
    var index = "exact"
    @Option(help: "HNSW: links per node.") var hnswM = 16
    @Option(help: "HNSW: candidates kept while building.") var efConstruction = 128
    @Option(help: "HNSW: candidates kept while searching.") var efSearch = 96
    @Option(help: ArgumentHelp(
        "The index's vectors: float32, float16 or int8 (half or a quarter of the memory, faster scans); PostgreSQL takes float32 or float16 (halfvec).",
        discussion: """
            Results are rescored from the stored float32 vectors; the database always keeps float32. In PostgreSQL, \
            a collection keeps the index it was made with.
            """))
    var vectors = "float32"

    func validate() throws {
        guard ["exact", "hnsw"].contains(index) else { throw ValidationError("--index is exact or hnsw") }
        guard VectorPrecision(rawValue: vectors) != nil else { throw ValidationError("--vectors is float32, float16 or int8") }
        guard hnswM >= 2, efConstruction >= 1, efSearch >= 1 else { throw ValidationError("HNSW parameters must be positive (M at least 2)") }
        if let store {
            guard isPostgres || store.hasPrefix("milvus://") || store.hasPrefix("milvus+https://") else { throw ValidationError("--store takes a postgres:// or milvus:// URL") }
            if isPostgres, PostgresStore.IndexVectors(rawValue: vectors) == nil {
                throw ValidationError("--vectors is float32 or float16 with PostgreSQL (pgvector indexes no int8 vectors)")
            }
            if !isPostgres, vectors != "float32" { throw ValidationError("--vectors is float32 with Milvus") }
        }
    }

    var dataFolder: URL { URL(fileURLWithPath: (data as NSString).expandingTildeInPath) }

    /// Which store, for the log (never the URL: it may hold a password).
    var description: String {
        guard let store else { return "embedded, \(dataFolder.path)" }
        return isPostgres ? "PostgreSQL" : "Milvus"
    }

    private var isPostgres: Bool { store.map { $0.hasPrefix("postgres://") || $0.hasPrefix("postgresql://") } ?? false }

    func open() async throws -> CollectionStore {
        do {
            if let store, !isPostgres {
                // Milvus always has its HNSW index; --index only chooses for the embedded store.
                return try await CollectionStore.milvus(url: store, parameters: .init(m: hnswM, efConstruction: efConstruction, efSearch: efSearch))
            }
            if let store {
                // PostgreSQL always has pgvector's HNSW index; --index only chooses for the embedded store.
                return try await CollectionStore.postgres(url: store, parameters: .init(m: hnswM, efConstruction: efConstruction, efSearch: efSearch,
                                                                                       vectors: PostgresStore.IndexVectors(rawValue: vectors) ?? .float32))
            }
            let kind: IndexKind = index == "hnsw"
                ? .hnsw(HNSWIndex.Parameters(m: hnswM, efConstruction: efConstruction, efSearch: efSearch)) : .exact
            return CollectionStore(try EmbeddedStore(folder: dataFolder, index: kind, vectors: VectorPrecision(rawValue: vectors) ?? .float32))
        } catch let error as StoreError {
            throw CommandFailure(error.description)
        }
    }
}

/// Loads a model and names it the way collections record it.
enum CollectionModel {
    static func load(_ name: String, precision: Precision = .float32) async throws -> (any ImageTextModel, ModelIdentity) {
        let folder = try await ModelLoading.locate(name)
        let model = try ModelLoading.load(folder, name: name, precision: precision)
        // A local folder is recorded by its absolute path, so later commands find it from anywhere.
        let isLocal = FileManager.default.fileExists(atPath: (name as NSString).expandingTildeInPath)
        let id = isLocal ? folder.standardizedFileURL.path : name
        return (model, ModelFingerprint.identity(of: folder, name: id, dimension: model.dimension))
    }
}

extension Loupe {
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a folder of images and videos, or the files a TSV/CSV manifest lists, to a collection.",
            discussion: """
                A folder is read recursively (jpg, png, webp, gif, bmp, tiff; videos: mp4, m4v, mov, mkv, webm, avi); an \
                item's id is its relative path. A manifest has a header row; the file column is IMAGE_FILE unless \
                --image-column says otherwise, and every column becomes metadata. A video becomes one item per sampled \
                frame (every --frame-interval seconds and at each cut), named VIDEO@SECONDS, with metadata video, \
                video_time and video_interval; its frames are stored together once all are embedded. A video with a \
                keyframe at least every interval has only its keyframes decoded (--decode-all-frames decodes the \
                rest too, for samples exactly on the schedule and cuts between keyframes). Unchanged files \
                are skipped by content hash, so a run can be stopped at any moment and started again. Items that fail \
                are listed in DATA/<collection>-errors.tsv.
                """)

        @Argument(help: "A folder of images or a .tsv/.csv manifest.") var path: String
        @Option(help: "The collection to add to (created on first use).") var collection: String
        @OptionGroup var options: ModelOptions
        @OptionGroup var remote: RemoteOptions
        @OptionGroup var store: StoreOptions
        @Option(help: "Images decoded at once (and requests in flight to a cloud embedder).") var jobs = max(2, ProcessInfo.processInfo.activeProcessorCount)
        @Option(help: "Images per inference batch.") var batch = 32
        @Option(help: "The manifest column naming each image file.") var imageColumn: String?
        @Option(help: "The manifest column holding each item's id (default: the image column).") var idColumn: String?
        @Option(help: "Seconds between the video frames taken (cuts add frames of their own).") var frameInterval = 1.0
        @Flag(help: "Decode every video frame sampling may need, even where keyframes alone would do.") var decodeAllFrames = false
        @Option(help: "Videos longer than this many seconds are refused.") var maxVideoSeconds = VideoLimits().maximumSeconds
        @Option(help: "Video files larger than this many megabytes are refused.") var maxVideoMegabytes = VideoLimits().maximumBytes >> 20

        func validate() throws {
            guard jobs >= 1, batch >= 1 else { throw ValidationError("--jobs and --batch must be positive") }
            guard frameInterval >= 0.05, frameInterval <= 3600 else { throw ValidationError("--frame-interval is between 0.05 and 3600 seconds") }
            guard maxVideoSeconds > 0, maxVideoMegabytes > 0 else { throw ValidationError("--max-video-seconds and --max-video-megabytes must be positive") }
        }

        func run() async throws {
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
                throw CommandFailure("nothing to ingest at \(path)")
            }
            let items: [SourceItem], problems: [SourceProblem]
            do {
                if isFolder.boolValue {
                    (items, problems) = (try FolderSource(root: url).items(), [])
                } else {
                    (items, problems) = try ManifestSource(file: url, imageColumn: imageColumn, idColumn: idColumn).items()
                }
            } catch let error as IngestSourceError {
                throw CommandFailure(error.description)
            }
            var settings = Embedders.Settings(precision: options.precision, exactDecode: options.exactDecode, maxBatch: batch)
            settings.concurrency = jobs
            settings.dataFolder = self.store.dataFolder
            let embedder = try await Embedders.open(options.model, remote: remote, settings: settings)
            defer { Embedders.close(embedder) }
            let store = try await store.open()
            let display = IngestDisplay(remote: embedder as? RemoteEmbedder)
            let ingestOptions = IngestOptions(jobs: jobs, batch: batch, sampling: FrameSampling(interval: frameInterval, decodesAllFrames: decodeAllFrames),
                                        videoLimits: VideoLimits(maximumSeconds: maxVideoSeconds, maximumBytes: maxVideoMegabytes << 20))
            let summary: IngestSummary
            do {
                summary = try await IngestPipeline(embedder: embedder, store: store)
                    .run(items, sourceProblems: problems, into: collection, options: ingestOptions) { display.show($0) }
            } catch let error as StoreError {
                throw CommandFailure(error.description)
            } catch let error as EmbeddingError {
                throw CommandFailure("the embedder refused the work, nothing more was sent: \(error)")
            }
            display.finish(summary.progress)
            try await store.flush()
            try ErrorReport.write(summary.problems, collection: collection, dataFolder: self.store.dataFolder)
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search a collection by text, by an image, or for items like one of its own.",
            discussion: """
                Prints one JSON object per result, best first: id, kind (image, video or frame), relevance = \
                (1 + cosine) / 2 in [0, 1], cosine, source and metadata. With --group-by video (the default), a video's \
                frames come as one result with its moments (stretches of adjacent matching frames: start, end, best \
                in seconds, relevance, frame), the best moment's also at the top level. With --hybrid, relevance = w · (1 + cosine) / 2 + (1 − w) · text, where text is the \
                item's BM25 score on its metadata over the best one (0 without a match) and w is --vector-weight. Filters: FIELD=value, FIELD>=number, FIELD<=number (numbers are read from the \
                start of the field, so DATE>=1850 works on "c. 1889").
                """)

        @Argument(help: "The text to search for.") var text: String?
        @Option(help: "The collection to search.") var collection: String
        @Option(help: "An image file to search with.") var image: String?
        @Option(help: "The id of an item of the collection: find items like it.") var like: String?
        @Option(name: .short, help: "How many results.") var k = 10
        @Option(name: .customLong("filter"), help: "A metadata condition (repeatable).") var filters: [String] = []
        @Option(help: "The model for the query (default: the collection's own; another one is refused).") var model: String?
        @Flag(help: "Blend the text's vector similarity with a full-text match on the metadata.") var hybrid = false
        @Option(help: "video: one result per video with its moments; frame: every video frame on its own.") var groupBy: GroupBy = .video
        @Option(help: "Hybrid: the weight of vector similarity, 0...1 (the rest goes to the text match).")
        var vectorWeight: Float = HybridScore.defaultVectorWeight
        @Option(help: "float32 or int8 for embedding the query (as `loupe ingest --precision`).")
        var precision: Precision = .float32
        @Flag(help: "Decode every pixel of a large JPEG query image (as `loupe ingest --exact-decode`).") var exactDecode = false
        @OptionGroup var remote: RemoteOptions
        @OptionGroup var store: StoreOptions

        /// The model `--model` names, else the collection's own; a cloud collection names its provider's
        /// host (Azure) but not the project (Vertex), which must then be given.
        func queryModel(for collectionModel: ModelIdentity) throws -> String {
            if let model { return model }
            let id = collectionModel.id
            if id.hasPrefix("azure:") { return "azure:https://" + id.dropFirst("azure:".count).split(separator: "/")[0] }
            if id.hasPrefix("vertex:") {
                throw CommandFailure("collection \(collection) holds Vertex AI vectors: give --model vertex:PROJECT/LOCATION to embed the query")
            }
            return id
        }

        func validate() throws {
            guard [text != nil, image != nil, like != nil].filter({ $0 }).count == 1 else {
                throw ValidationError("give exactly one of: a text, --image PATH, --like ITEM_ID")
            }
            guard (1...1000).contains(k) else { throw ValidationError("-k must be between 1 and 1000") }
            if hybrid && text == nil { throw ValidationError("--hybrid needs a text query") }
            guard (0...1).contains(vectorWeight) else { throw ValidationError("--vector-weight is between 0 and 1") }
        }

        func run() async throws {
            let parsedFilters: [MetadataFilter]
            do {
                parsedFilters = try filters.map(MetadataFilter.init(parsing:))
            } catch let error as StoreError {
                throw ValidationError(error.description)
            }
            let store = try await store.open()
            guard let model = try await store.model(of: collection) else { throw CommandFailure(StoreError.noSuchCollection(collection).description) }
            let query: [Float]
            var identity = model
            if let like {
                guard let item = try await store.item(like, in: collection) else {
                    throw CommandFailure(StoreError.noSuchItem(collection: collection, id: like).description)
                }
                query = item.vector
            } else {
                // The collection's own model unless another one is named (and then it must be the same).
                let embedder = try await Embedders.open(try queryModel(for: model), remote: remote,
                                                        settings: .init(precision: precision, exactDecode: exactDecode, dataFolder: self.store.dataFolder))
                defer { Embedders.close(embedder) }
                identity = embedder.identity
                do {
                    if let text {
                        query = try await embedder.embed(text: text)
                    } else {
                        query = try await embedder.embed(imageBytes: try ImageDecoder().readFile(at: image!), decodes: DecodeGate(slots: 1, budgetBytes: 1 << 30))
                    }
                } catch let error as ImageError {
                    throw CommandFailure("cannot read \(image!): \(error)")
                } catch let error as EmbeddingError {
                    throw CommandFailure(image.map { "cannot embed \($0): \(error)" } ?? error.description)
                }
            }
            do {
                let hits = try await Moments.search(k: k, groupBy: groupBy) { k in
                    hybrid
                        ? try await store.hybridSearch(collection, vector: query, text: text ?? "", model: identity, k: k, filters: parsedFilters,
                                                 vectorWeight: vectorWeight)
                        : try await store.search(collection, vector: query, model: identity, k: k, filters: parsedFilters)
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for hit in hits {
                    let data = try encoder.encode(hit.body(source: true))
                    StandardStreams.writeOut(String(decoding: data, as: UTF8.self) + "\n")
                }
                try await store.flush()  // a graph built for this search is kept for the next one
            } catch let error as StoreError {
                throw CommandFailure(error.description)
            }
        }
    }

    struct Collections: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List or delete collections.", subcommands: [List.self, Delete.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show every collection with its model and size.")
            @OptionGroup var store: StoreOptions

            func run() async throws {
                let collections = try await store.open().collections()
                if collections.isEmpty {
                    StandardStreams.writeOut("no collections yet; add one with: loupe ingest PATH --collection NAME\n")
                }
                for info in collections {
                    StandardStreams.writeOut("\(info.name)\t\(info.itemCount) items\t\(info.model.id)\t\(info.model.dimension)-d\n")
                }
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete a collection and its items.")
            @Argument var name: String
            @OptionGroup var store: StoreOptions

            func run() async throws {
                do {
                    try await store.open().deleteCollection(name)
                } catch let error as StoreError {
                    throw CommandFailure(error.description)
                }
            }
        }
    }
}

/// Items that failed, listed in DATA/<collection>-errors.tsv (removed when a run has none).
enum ErrorReport {
    static func write(_ problems: [SourceProblem], collection: String, dataFolder: URL) throws {
        let report = dataFolder.appendingPathComponent("\(collection)-errors.tsv")
        guard !problems.isEmpty else {
            try? FileManager.default.removeItem(at: report)
            return
        }
        let lines = ["id\tpath\tcode\tmessage"] + problems.map { problem in
            [problem.id, problem.path, problem.code, problem.message].map(tsvField).joined(separator: "\t")
        }
        try FileManager.default.createDirectory(at: dataFolder, withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: report)
        StandardStreams.writeError("\(problems.count) items failed; see \(report.path)\n")
    }

    static func tsvField(_ text: String) -> String {
        text.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }
}

/// Ingest progress on stderr: a bar redrawn in place on a terminal, a line every few seconds otherwise.
final class IngestDisplay: @unchecked Sendable {
    /// A cloud embedder, whose requests, retries and waits the progress line shows.
    private let remote: RemoteEmbedder?
    private let interactive = isatty(STDERR_FILENO) != 0
    private let started = Date()
    private var last = Date.distantPast
    private let lock = NSLock()

    init(remote: RemoteEmbedder? = nil) { self.remote = remote }

    func show(_ progress: IngestProgress) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(last) >= (interactive ? 0.2 : 5) else { return }
        last = now
        StandardStreams.writeError(interactive ? "\r" + line(progress) + "\u{1B}[K" : line(progress) + "\n")
    }

    func finish(_ progress: IngestProgress) {
        lock.lock()
        defer { lock.unlock() }
        if interactive { StandardStreams.writeError("\r\u{1B}[K") }
        StandardStreams.writeError(line(progress) + "\n")
        StandardStreams.writeError("added \(progress.added), updated \(progress.updated), skipped \(progress.skipped) unchanged, failed \(progress.failed)\n")
    }

    private func line(_ progress: IngestProgress) -> String {
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        let rate = Double(progress.added + progress.updated) / elapsed
        let remaining = progress.total - progress.done
        let eta = rate > 0 ? String(format: "%.0fs", Double(remaining) / rate) : "?"
        let fraction = progress.total > 0 ? Double(progress.done) / Double(progress.total) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = interactive ? String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + " " : ""
        var line = "\(bar)\(progress.done)/\(progress.total) \(String(format: "%.1f", rate)) img/s ETA \(eta) errors \(progress.failed)"
        if progress.frames > 0 { line += " video frames \(progress.frames) (\(String(format: "%.1f", Double(progress.frames) / elapsed))/s)" }
        if let remote = remote?.counters {
            line += " requests \(remote.requests) retries \(remote.retries) 429s \(remote.rateLimited)"
            line += " waited \(String(format: "%.1f", remote.waitedSeconds))s cached \(remote.cached)"
        }
        return line
    }
}
