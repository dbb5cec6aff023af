import Embedding
import Foundation
import HTTPTypes
import HTTPBodies
import Hummingbird
import ImageCollections
import ImageIO
import Ingest
import NIOCore

/// Loupe's own routes: collections, their items, and search by text, image or example.
struct CollectionsController<Context: RequestContext> {
    let store: CollectionStore
    let versions: [String: ModelVersion]
    let defaultVersion: String
    let configuration: ServerConfiguration
    /// Uploaded images are kept here, named by their hash.
    let uploads: URL
    let inputs: RequestInputs

    func add(to router: some RouterMethods<Context>) {
        router.get("/collections") { _, _ in try await list() }
        router.post("/collections") { request, context in try await create(request, context) }
        router.delete("/collections/:name") { _, context in
            try await run { try await store.deleteCollection(try name(context)) }
            return Response(status: .noContent)
        }
        router.post("/collections/:name/items") { request, context in try await addItem(request, context) }
        router.get("/collections/:name/items/:id") { _, context in
            let item = try await item(context)
            return try bodyResponse(ItemDetails(id: item.id, metadata: item.metadata, contentHash: item.contentHash))
        }
        router.get("/collections/:name/items/:id/image") { _, context in try image(try await item(context)) }
        router.get("/collections/:name/items/:id/thumbnail") { request, context in try await thumbnail(request, context) }
        router.get("/collections/:name/items/:id/video") { request, context in try await video(request, try await item(context), context) }
        router.delete("/collections/:name/items/:id") { _, context in
            try await run { try await store.deleteItem(try parameter("id", context), in: try name(context)) }
            return Response(status: .noContent)
        }
        router.post("/collections/:name/search") { request, context in try await search(request, context) }
    }

    // MARK: - Collections

    private func list() async throws -> Response {
        let collections = try await run { try await store.collections() }
        return try bodyResponse(CollectionList(collections: collections.map { info in
            CollectionSummary(name: info.name, items: info.itemCount, model: info.model.id, dimension: info.model.dimension,
                              modelVersion: version(for: info.model)?.name)
        }))
    }

    private func create(_ request: Request, _ context: Context) async throws -> Response {
        let body = try await request.decode(as: CreateCollectionRequest.self, context: context)
        let version = try ModelVersion.named(body.modelVersion, in: versions, default: defaultVersion)
        let info = try await run { try await store.openCollection(body.name, model: version.identity) }
        return try bodyResponse(CreatedCollection(name: info.name, items: info.itemCount, modelVersion: version.name), status: .created)
    }

    // MARK: - Items

    private func addItem(_ request: Request, _ context: Context) async throws -> Response {
        let collection = try name(context)
        let version = try await servedVersion(for: collection)
        // The id is ?id= when given, else the JSON body's id, else the URL (JSON) or the image's SHA-256 (image body).
        let queryID = request.uri.queryParameters["id"].map(String.init)
        if queryID == "" { throw bad("InvalidRequestBody", "?id= is empty; item ids have 1 to 512 characters.") }
        let id: String, bytes: [UInt8], hash: String, metadata: [String: String]
        if inputs.mediaType(request) == "application/json" {
            let body = try await request.decode(as: AddItemRequest.self, context: context)
            id = queryID ?? body.id ?? body.url
            metadata = body.metadata ?? [:]
            bytes = try await inputs.fetch(body.url)
            hash = ItemWriter.contentHash(bytes)
        } else if inputs.isImageBody(request) {
            bytes = try await inputs.imageBody(request)
            hash = ItemWriter.contentHash(bytes)
            id = queryID ?? hash
            metadata = [:]
        } else {
            throw bad("UnsupportedMediaType", "Send application/octet-stream, image/*, or application/json with a url.")
        }
        guard (1...512).contains(id.count) else { throw bad("InvalidRequestBody", "Item ids have 1 to 512 characters.") }
        try await run { try StoredText.check(id, as: "item id") }
        // The same path as `loupe ingest`: prepare (with thumbnail), embed, upsert; the upload is kept
        // under its hash before the item that names it is stored.
        let writer = ItemWriter(embedder: version.embedder, store: store, decodes: inputs.decodes)
        let file = uploads.appendingPathComponent(hash)
        let prepared: ItemWriter.Prepared
        do {
            prepared = try await writer.prepare(id: id, source: file.path, metadata: metadata, bytes: bytes, contentHash: hash)
        } catch {
            throw AzureError.embedding(error)
        }
        let (items, failed) = await writer.embed([prepared])
        if let failure = failed.first { throw AzureError.embedding(failure.1) }
        do {
            try FileManager.default.createDirectory(at: uploads, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: file.path) { try Data(bytes).write(to: file, options: .atomic) }
        } catch {
            throw AzureError(.internalServerError, code: "StorageFailed", message: "The image could not be stored.")
        }
        do {
            try await writer.upsert(items, into: collection)
        } catch let error as StoreError {
            throw httpError(error)
        }
        return try bodyResponse(AddedItem(id: id, collection: collection), status: .created)
    }

    private func item(_ context: Context) async throws -> Item {
        let collection = try name(context), id = try parameter("id", context)
        guard let item = try await run({ try await store.item(id, in: collection) }) else {
            throw AzureError(.notFound, code: "ItemNotFound", message: StoreError.noSuchItem(collection: collection, id: id).description)
        }
        return item
    }

    /// Only the file the store recorded for the item is served: request paths never name files.
    private func image(_ item: Item) throws -> Response {
        guard let data = FileManager.default.contents(atPath: item.source), let format = ImageFormat(signature: data) else {
            throw AzureError(.notFound, code: "ImageNotFound", message: "The image of item \(item.id) is no longer available.")
        }
        return Response(status: .ok, headers: [
            .contentType: format.mediaType, .cacheControl: "private, max-age=86400", .eTag: "\"\(item.contentHash)\"",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The stored JPEG preview, cacheable: its ETag is the image's content hash.
    private func thumbnail(_ request: Request, _ context: Context) async throws -> Response {
        let item = try await item(context)
        let etag = "\"\(item.contentHash)\""
        let caching: HTTPFields = [.cacheControl: "private, max-age=86400", .eTag: etag]
        if request.headers[.ifNoneMatch] == etag { return Response(status: .notModified, headers: caching) }
        guard let data = try await run({ try await store.thumbnail(item.id, in: try name(context)) }) else {
            throw AzureError(.notFound, code: "ThumbnailNotFound", message: "Item \(item.id) has no thumbnail.")
        }
        var headers = caching
        headers[.contentType] = "image/jpeg"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static var videoTypes: [String: String] { ["mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "mkv": "video/x-matroska",
                                               "avi": "video/x-msvideo"] }

    /// The video a frame item was taken from, in byte ranges as players ask for them (206 with
    /// Content-Range; 416 past the end; the whole file for no Range, several ranges, or an If-Range that
    /// no longer matches). Only the file the store recorded is served, as for images.
    private func video(_ request: Request, _ item: Item, _ context: Context) async throws -> Response {
        guard item.metadata[FrameMetadata.video] != nil else {
            throw AzureError(.notFound, code: "VideoNotFound", message: "Item \(item.id) is not a video frame.")
        }
        let type = Self.videoTypes[(item.source as NSString).pathExtension.lowercased()]
        guard let type, let size = (try? FileManager.default.attributesOfItem(atPath: item.source))?[.size] as? Int else {
            throw AzureError(.notFound, code: "VideoNotFound", message: "The video of item \(item.id) is no longer available.")
        }
        let etag = "\"\(item.contentHash)\""
        var headers: HTTPFields = [.contentType: type, .acceptRanges: "bytes", .eTag: etag, .cacheControl: "private, max-age=86400",
                                   HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
        let ifRange = request.headers[.ifRange]
        let asked = ifRange == nil || ifRange == etag ? ByteRangeRequest(header: request.headers[.range], size: size) : .whole
        let range: ClosedRange<Int>
        switch asked {
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(size)"
            return Response(status: .rangeNotSatisfiable, headers: headers)
        case .range(let bytes):
            range = bytes
            headers[.contentRange] = "bytes \(bytes.lowerBound)-\(bytes.upperBound)/\(size)"
        case .whole:
            guard size > 0 else { return Response(status: .ok, headers: headers, body: .init()) }
            range = 0...(size - 1)
        }
        headers[.contentLength] = String(range.count)
        let body = try await FileIO().loadFile(path: item.source, range: range, context: context)
        return Response(status: asked == .whole ? .ok : .partialContent, headers: headers, body: body)
    }

    // MARK: - Search

    static var kRange: ClosedRange<Int> { 1...1000 }

    private func search(_ request: Request, _ context: Context) async throws -> Response {
        let collection = try name(context)
        let version = try await servedVersion(for: collection)
        var k = 10
        if let text = request.uri.queryParameters["k"] {
            guard let number = Int(text), Self.kRange.contains(number) else { throw bad("InvalidRequestBody", "k must be an integer from 1 to 1000.") }
            k = number
        }
        func grouping(_ text: String) throws -> GroupBy {
            guard let value = GroupBy(rawValue: text) else { throw bad("InvalidRequestBody", "groupBy is video or frame.") }
            return value
        }
        var groupBy = try request.uri.queryParameters["groupBy"].map { try grouping(String($0)) } ?? .video
        var filters = [MetadataFilter]()
        var hybridText: String?
        var vectorWeight = HybridScore.defaultVectorWeight
        let query: [Float]
        if inputs.mediaType(request) == "application/json" {
            let body = try await request.decode(as: SearchRequest.self, context: context)
            if let asked = body.k {
                guard Self.kRange.contains(asked) else { throw bad("InvalidRequestBody", "k must be an integer from 1 to 1000.") }
                k = asked
            }
            groupBy = try body.groupBy.map(grouping) ?? groupBy
            do {
                filters = try (body.filters ?? []).map(MetadataFilter.init(parsing:))
            } catch let error as StoreError {
                throw bad("InvalidFilter", error.description)
            }
            if let weight = body.vectorWeight {
                guard (0...1).contains(weight) else { throw bad("InvalidRequestBody", "vectorWeight must be a number from 0 to 1.") }
                vectorWeight = Float(weight)
            }
            let hybrid = body.hybrid ?? false
            let (text, like, url) = (body.text, body.like, body.url)
            guard [text, like, url].compactMap({ $0 }).count == 1 else {
                throw bad("InvalidRequestBody", "Search with exactly one of {\"text\"}, {\"like\": id} or {\"url\"}, or send an image body.")
            }
            if let text {
                if hybrid { hybridText = text }
                query = try await inputs.vector(of: text, with: version.embedder)
            } else if let like {
                guard let item = try await run({ try await store.item(like, in: collection) }) else {
                    throw AzureError(.notFound, code: "ItemNotFound", message: StoreError.noSuchItem(collection: collection, id: like).description)
                }
                query = item.vector
            } else if let url {
                query = try await inputs.vector(of: try await inputs.fetch(url), with: version.embedder)
            } else {
                throw bad("InvalidRequestBody", "Search with exactly one of {\"text\"}, {\"like\": id} or {\"url\"}, or send an image body.")
            }
        } else if inputs.isImageBody(request) {
            query = try await inputs.vector(of: try await inputs.imageBody(request), with: version.embedder)
        } else {
            throw bad("UnsupportedMediaType", "Send application/json or an image body.")
        }
        let hits = try await run {
            try await Moments.search(k: k, groupBy: groupBy) { k in
                if let hybridText {
                    return try await store.hybridSearch(collection, vector: query, text: hybridText, model: version.identity, k: k, filters: filters,
                                                  vectorWeight: vectorWeight)
                }
                return try await store.search(collection, vector: query, model: version.identity, k: k, filters: filters)
            }
        }
        return try bodyResponse(SearchResults(results: hits.map { $0.body() }))
    }

    // MARK: - Helpers

    private func version(for model: ModelIdentity) -> ModelVersion? {
        versions.values.sorted { $0.name < $1.name }.first { $0.identity == model }
    }

    private func servedVersion(for collection: String) async throws -> ModelVersion {
        // The model only: counting a large collection's items took milliseconds of every search.
        guard let model = try await run({ try await store.model(of: collection) }) else {
            throw AzureError(.notFound, code: "CollectionNotFound", message: StoreError.noSuchCollection(collection).description)
        }
        guard let version = version(for: model) else {
            throw AzureError(.conflict, code: "ModelNotServed",
                             message: "Collection \(collection) was made with \(model.id) (\(model.revision.prefix(12))), which this server does not run.")
        }
        return version
    }

    private func name(_ context: Context) throws -> String { try parameter("name", context) }

    private func parameter(_ key: String, _ context: Context) throws -> String {
        guard let value = context.parameters.get(key) else { throw bad("InvalidRequest", "Missing \(key).") }
        return value.removingPercentEncoding ?? value
    }

    private func bad(_ code: String, _ message: String) -> AzureError { .invalidRequest(code, message) }

    /// Store errors become HTTP errors with their message.
    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw httpError(error)
        }
    }

    private func httpError(_ error: StoreError) -> AzureError {
        switch error {
        case .noSuchCollection: AzureError(.notFound, code: "CollectionNotFound", message: error.description)
        case .noSuchItem: AzureError(.notFound, code: "ItemNotFound", message: error.description)
        case .modelMismatch: AzureError(.conflict, code: "ModelMismatch", message: error.description)
        case .invalidName, .invalidFilter, .invalidVector, .invalidText: bad("InvalidRequest", error.description)
        case .database: AzureError(.internalServerError, code: "StoreFailed", message: error.description)
        case .unsupported: AzureError(.notImplemented, code: "NotSupportedByStore", message: error.description)
        }
    }
}
