import Embedding
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageCollections
import ImageIO
import Ingest
import LoupeTestSupport
import NIOCore
import StoreEmbedded
import Testing

/// Remote embedders against fake providers on loopback that fail in each way a real one can: every case
/// ends in retries or a clear error for its input, never a crash and never a stored wrong vector.
@Suite struct RemoteEmbedderTests {
    /// A provider on loopback whose answers a test scripts; it records every request.
    final class FakeProvider: @unchecked Sendable {
        struct Received {
            let path: String
            let query: String
            let headers: HTTPFields
            let body: [UInt8]
        }
        struct Answer {
            var status: HTTPResponse.Status = .ok
            var headers: HTTPFields = [.contentType: "application/json"]
            var body: String
            var delay: Duration = .zero
        }

        private let lock = NSLock()
        private var log: [Received] = []
        let answer: @Sendable (_ request: Received, _ count: Int) -> Answer

        init(answer: @escaping @Sendable (_ request: Received, _ count: Int) -> Answer) { self.answer = answer }

        var received: [Received] { lock.withLock { log } }

        /// Runs `body` with the provider's base URL.
        func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
            let router = Router()
            let respond: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
                let bytes = Array(try await request.body.collect(upTo: 32 << 20).readableBytesView)
                let received = Received(path: request.uri.path, query: request.uri.query ?? "", headers: request.headers, body: bytes)
                let count = self.lock.withLock {
                    self.log.append(received)
                    return self.log.count
                }
                let answer = self.answer(received, count)
                if answer.delay > .zero { try await Task.sleep(for: answer.delay) }
                return Response(status: answer.status, headers: answer.headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
            }
            router.post("/computervision/retrieval:vectorizeImage", use: respond)
            router.post("/computervision/retrieval:vectorizeText", use: respond)
            router.post("/v1/projects/:project/locations/:location/publishers/google/models/:model", use: respond)
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in try await body("http://127.0.0.1:\(client.port!)") }
        }
    }

    static func vectorJSON(_ vector: [Float]) -> String { "{\"modelVersion\":\"2023-04-15\",\"vector\":[\(vector.map { "\($0)" }.joined(separator: ","))]}" }
    static let unit: [Float] = [0.6, 0.8, 0, 0]
    /// Retries after a few milliseconds, so that a test of six tries takes no time.
    static var fast: RetryPolicy {
        var policy = RetryPolicy()
        policy.baseDelay = .milliseconds(5)
        policy.maximumDelay = .milliseconds(20)
        policy.timeout = .seconds(10)
        return policy
    }
    static func azure(_ base: String, policy: RetryPolicy = fast, cache: VectorCache? = nil) -> RemoteEmbedder {
        .azure(endpoint: URL(string: base)!, key: "the-key", dimension: 4, concurrency: 2, policy: policy, cache: cache)
    }

    @Test func sendsAzuresRequestShapesAndReadsTheVector() async throws {
        let provider = FakeProvider { _, _ in .init(body: Self.vectorJSON(Self.unit)) }
        try await provider.run { base in
            let embedder = Self.azure(base + "/")
            let png = try ServerHarness.image("tiny_rgb_50x40.png")
            let image = try await embedder.prepare(image: Array(png), decodes: DecodeGate(slots: 1, budgetBytes: 1 << 26), thumbnail: true)
            #expect(image.thumbnail != nil)
            let results = await embedder.embed([.text("a blue house"), .image(image)])
            #expect(try results.map { try $0.get() } == [Self.unit, Self.unit])
            #expect(embedder.identity == ModelIdentity(id: "azure:127.0.0.1:\(URL(string: base)!.port!)/2023-04-15", revision: "2023-04-15", dimension: 4))
        }
        let requests = provider.received.sorted { $0.path < $1.path }
        #expect(requests.map(\.path) == ["/computervision/retrieval:vectorizeImage", "/computervision/retrieval:vectorizeText"])
        for request in requests {
            #expect(request.query == "api-version=2024-02-01&model-version=2023-04-15")
            #expect(request.headers[HTTPField.Name("Ocp-Apim-Subscription-Key")!] == "the-key")
        }
        #expect(requests[0].headers[.contentType] == "application/octet-stream")
        #expect(requests[0].body == Array(try ServerHarness.image("tiny_rgb_50x40.png")))
        #expect(requests[1].headers[.contentType] == "application/json")
        #expect(try JSONSerialization.jsonObject(with: Data(requests[1].body)) as? [String: String] == ["text": "a blue house"])
    }

    /// Two 500s, then a vector: three requests, two retries, one vector.
    @Test func serverErrorsAreRetriedUntilAnAnswer() async throws {
        let provider = FakeProvider { _, count in
            count <= 2 ? .init(status: .internalServerError, body: #"{"error":{"code":"InternalServerError","message":"oops"}}"#)
                : .init(body: Self.vectorJSON(Self.unit))
        }
        try await provider.run { base in
            let embedder = Self.azure(base)
            let vector = try await embedder.embed(text: "x")
            #expect(vector == Self.unit)
            #expect(embedder.counters.requests == 3 && embedder.counters.retries == 2 && embedder.counters.rateLimited == 0)
        }
    }

    /// A 429 with Retry-After is waited out (at least that long) and counted; the retry then answers.
    @Test func aRateLimitIsWaitedOutAsRetryAfterSays() async throws {
        let provider = FakeProvider { _, count in
            count == 1 ? .init(status: .tooManyRequests, headers: [.contentType: "application/json", HTTPField.Name("Retry-After")!: "1"],
                               body: #"{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 1 seconds."}}"#)
                : .init(body: Self.vectorJSON(Self.unit))
        }
        try await provider.run { base in
            let embedder = Self.azure(base)
            let start = ContinuousClock.now
            let vector = try await embedder.embed(text: "x")
            #expect(vector == Self.unit)
            #expect(ContinuousClock.now - start >= .seconds(1))
            #expect(embedder.counters.rateLimited == 1 && embedder.counters.waitedSeconds == 1)
        }
    }

    /// Failures that never pass end in a clear error after the policy's tries, for that input only.
    @Test func persistentFailuresEndInAnErrorAfterEveryTry() async throws {
        let provider = FakeProvider { request, _ in
            String(decoding: request.body, as: UTF8.self).contains("slow")
                ? .init(body: Self.vectorJSON(Self.unit), delay: .seconds(2))  // past the 400 ms timeout
                : .init(status: .serviceUnavailable, body: "busy")
        }
        try await provider.run { base in
            var policy = Self.fast
            policy.timeout = .milliseconds(400)
            let embedder = Self.azure(base, policy: policy)
            let results = await embedder.embed([.text("busy"), .text("slow")])
            for result in results {
                guard case .failure(let error) = result else {
                    Issue.record("expected a failure")
                    continue
                }
                #expect(error.kind == .unavailable)
            }
            #expect(embedder.counters.requests == 12 && embedder.counters.retries == 10)
        }
    }

    /// A provider that resets every connection, and an address where nothing listens: retried, then an error.
    /// A refused connection is one failed try, not a minute of reconnecting until the request's deadline:
    /// with the default one-minute timeout, six tries end well within the test's time limit.
    @Test(.timeLimit(.minutes(1)))
    func resetConnectionsAndRefusedConnectionsEndInAnError() async throws {
        let listener = try ResettingListener()
        defer { listener.stop() }
        var policy = Self.fast
        policy.timeout = .seconds(60)
        for base in ["http://127.0.0.1:\(listener.port)", "http://127.0.0.1:\(LoopbackSocket.unusedPort())"] {
            let embedder = Self.azure(base, policy: policy)
            let result = await embedder.embed([.text("x")])[0]
            #expect(throws: EmbeddingError.self) { try result.get() }
            #expect(embedder.counters.requests == 6)
        }
        #expect(listener.accepted >= 6)
    }

    /// A 200 that is not the expected JSON, a vector of the wrong length, numbers that are not numbers:
    /// errors, never vectors; a 400 is the input's own error and is not retried; a 401 refuses everything.
    @Test(arguments: [
        (200, "{\"vector\": [1, 2", "MalformedResponse", EmbeddingError.Kind.badResponse),
        (200, "{\"vector\": [1, 2, 3]}", "InvalidVector", .badResponse),
        (200, "{\"vector\": [1, true, 3, 4]}", "MalformedResponse", .badResponse),
        (200, "{\"vector\": [1e39, 0, 0, 0]}", "MalformedResponse", .badResponse),
        (200, "[]", "MalformedResponse", .badResponse),
        (400, #"{"error":{"code":"InvalidRequest","message":"bad","innererror":{"code":"InvalidImageFormat","message":"Input data is not a valid image."}}}"#,
         "InvalidImageFormat", .invalidInput),
        (401, #"{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}"#, "401", .rejected),
        (404, "not json", "HTTP404", .rejected),
    ])
    func badAnswersAreErrorsNotVectors(_ status: Int, _ body: String, _ code: String, _ kind: EmbeddingError.Kind) async throws {
        let provider = FakeProvider { _, _ in .init(status: .init(code: status), body: body) }
        try await provider.run { base in
            let embedder = Self.azure(base)
            let result = await embedder.embed([.text("x")])[0]
            guard case .failure(let error) = result else {
                Issue.record("a vector came back: \(result)")
                return
            }
            #expect(error.code == code && error.kind == kind, "\(error)")
            #expect(embedder.counters.requests == 1)
        }
    }

    /// Identical inputs are not sent twice, across embedders sharing the cache file (a restart); another
    /// embedder identity (a different model version) does not see them.
    @Test func theCacheAnswersRepeatedInputsAcrossRestarts() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cache-\(UUID()).sqlite")
        defer { try? FileManager.default.removeItem(at: file) }
        let provider = FakeProvider { _, _ in .init(body: Self.vectorJSON(Self.unit)) }
        try await provider.run { base in
            _ = try await Self.azure(base, cache: try VectorCache(file: file)).embed(texts: ["one", "two"])
            let again = Self.azure(base, cache: try VectorCache(file: file))
            let vectors = try await again.embed(texts: ["two", "one", "three"])
            #expect(vectors == [Self.unit, Self.unit, Self.unit])
            #expect(again.counters.requests == 1 && again.counters.cached == 2)
            let other = RemoteEmbedder.azure(endpoint: URL(string: base)!, modelVersion: "2022-04-11", key: "k", dimension: 4, policy: Self.fast,
                                             cache: try VectorCache(file: file))
            _ = try await other.embed(text: "one")
            #expect(other.counters.requests == 1 && other.counters.cached == 0)
        }
        #expect(provider.received.count == 4)
    }

    /// Vertex AI: the documented `:predict` shape with the bearer token; the answer's embedding is the vector.
    @Test func vertexSendsPredictRequestsWithTheToken() async throws {
        let provider = FakeProvider { request, _ in
            guard request.headers[.authorization] == "Bearer ya29.token",
                  request.path == "/v1/projects/my-project/locations/europe-west4/publishers/google/models/multimodalembedding@001:predict",
                  let body = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
                  let instances = body["instances"] as? [[String: Any]], instances.count == 1,
                  (body["parameters"] as? [String: Any])?["dimension"] as? Int == 128
            else { return .init(status: .badRequest, body: #"{"error":{"code":400,"message":"bad shape","status":"INVALID_ARGUMENT"}}"#) }
            let vector = (0..<128).map { $0 == 0 ? "1" : "0" }.joined(separator: ",")
            if instances[0]["text"] is String { return .init(body: "{\"predictions\":[{\"textEmbedding\":[\(vector)]}],\"deployedModelId\":\"1\"}") }
            guard let image = instances[0]["image"] as? [String: String], let encoded = image["bytesBase64Encoded"], Data(base64Encoded: encoded) != nil else {
                return .init(status: .badRequest, body: #"{"error":{"code":400,"message":"no image","status":"INVALID_ARGUMENT"}}"#)
            }
            return .init(body: "{\"predictions\":[{\"imageEmbedding\":[\(vector)]}],\"deployedModelId\":\"1\"}")
        }
        try await provider.run { base in
            let embedder = RemoteEmbedder.vertex(project: "my-project", location: "europe-west4", token: "ya29.token", dimension: 128,
                                                 endpoint: URL(string: base)!, policy: Self.fast)
            let png = Array(try ServerHarness.image("tiny_rgb_50x40.png"))
            let image = try await embedder.prepare(image: png, decodes: DecodeGate(slots: 1, budgetBytes: 1 << 26), thumbnail: false)
            let vectors = try await embedder.embed([.text("ein blaues Haus"), .image(image)]).map { try $0.get() }
            #expect(vectors.count == 2 && vectors.allSatisfy { $0.count == 128 && $0[0] == 1 })
            #expect(embedder.identity == ModelIdentity(id: "vertex:multimodalembedding@001", revision: "multimodalembedding@001", dimension: 128))
        }
        #expect(provider.received.count == 2)
    }

    /// A format the service does not take goes as a JPEG of the decoded picture (HEIC to Azure, WebP to
    /// Vertex AI); one it takes goes as its own bytes (ICO to Azure).
    @Test func formatsTheProviderRefusesAreSentAsJPEG() async throws {
        let formats = ServerHarness.fixtures.appendingPathComponent("formats")
        let heic = Array(try Data(contentsOf: formats.appendingPathComponent("photo.heic")))
        let icon = Array(try Data(contentsOf: formats.appendingPathComponent("png-entries.ico")))
        let webp = Array(try ServerHarness.image("wide_lossless_800x200.webp"))
        let azure = FakeProvider { _, _ in .init(body: Self.vectorJSON(Self.unit)) }
        try await azure.run { base in
            let embedder = Self.azure(base)
            for bytes in [heic, icon] {
                let image = try await embedder.prepare(image: bytes, decodes: DecodeGate(slots: 1, budgetBytes: 1 << 26), thumbnail: true)
                #expect(image.thumbnail != nil)
                #expect(try await embedder.embed(image: image) == Self.unit)
            }
        }
        let sent = azure.received.map(\.body)
        #expect(sent.count == 2 && ImageFormat(signature: sent[0]) == .jpeg && sent[1] == icon)
        let picture = try ImageDecoder().decode(sent[0])
        #expect(picture.width == 480 && picture.height == 320)
        let vertex = FakeProvider { _, _ in .init(body: "{\"predictions\":[{\"imageEmbedding\":[1,0,0,0]}],\"deployedModelId\":\"1\"}") }
        try await vertex.run { base in
            let embedder = RemoteEmbedder.vertex(project: "p", location: "europe-west4", token: "t", dimension: 4, endpoint: URL(string: base)!,
                                                 policy: Self.fast)
            let image = try await embedder.prepare(image: webp, decodes: DecodeGate(slots: 1, budgetBytes: 1 << 26), thumbnail: false)
            #expect(try await embedder.embed(image: image) == [1, 0, 0, 0])
        }
        let request = try #require(vertex.received.first)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        let encoded = try #require(((body["instances"] as? [[String: Any]])?.first?["image"] as? [String: String])?["bytesBase64Encoded"])
        let jpeg = Array(try #require(Data(base64Encoded: encoded)))
        #expect(ImageFormat(signature: jpeg) == .jpeg)
        #expect(try ImageDecoder().decode(jpeg).width == 800)
    }

    /// Ingest through a provider that refuses one image and answers another with a wrong-length vector:
    /// both are reported, neither is stored, the good ones are.
    @Test func ingestReportsRefusedInputsAndStoresNoWrongVector() async throws {
        let bad = Array(try ServerHarness.image("cmyk_360x240.jpg"))
        let short = Array(try ServerHarness.image("gray_l_257x199.png"))
        let provider = FakeProvider { request, _ in
            if request.body == bad {
                return .init(status: .badRequest, body: #"{"error":{"code":"InvalidRequest","message":"no","innererror":{"code":"InvalidImageDimension","message":"too small"}}}"#)
            }
            return .init(body: Self.vectorJSON(request.body == short ? [1, 0, 0] : Self.unit))
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-remote-ingest-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let images = root.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in ["cmyk_360x240.jpg", "gray_l_257x199.png", "tiny_rgb_50x40.png", "photo_progressive_800x600.jpg"] {
            try ServerHarness.image(name).write(to: images.appendingPathComponent(name))
        }
        try await provider.run { base in
            let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
            let summary = try await IngestPipeline(embedder: Self.azure(base), store: store).run(try FolderSource(root: images).items(), into: "c")
            #expect(summary.progress.added == 2 && summary.progress.failed == 2)
            #expect(Set(summary.problems.map(\.code)) == ["InvalidImageDimension", "InvalidVector"])
            #expect(Set(try await store.contentHashes(in: "c").keys) == ["tiny_rgb_50x40.png", "photo_progressive_800x600.jpg"])
            #expect(try await store.item("tiny_rgb_50x40.png", in: "c")?.vector == Self.unit)
            #expect(try await store.thumbnail("tiny_rgb_50x40.png", in: "c") != nil)
        }
    }

    /// A video through a cloud provider: each sampled frame goes as a JPEG whose shorter side is 512
    /// pixels (or the video's own, when smaller), and every frame is stored with the provider's vector.
    @Test func videoFramesGoToTheProviderAsJPEGs() async throws {
        let provider = FakeProvider { _, _ in .init(body: Self.vectorJSON(Self.unit)) }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-remote-video-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let video = try TestVideos.make(at: root.appendingPathComponent("media/wide.mp4"), scenes: [.init("red", 1.5), .init("navy", 1.5)],
                                        size: "1280x720")
        let reader = try VideoReader(path: video.path, shorterSide: 512)
        var taken = [String]()
        while let frame = try reader.next() { taken.append("wide.mp4@" + String(format: "%.3f", frame.time)) }
        let expected = taken
        #expect(expected.count == 5)  // 0, 1, 2, 3 s (the last frame) and the cut at 1.5 s
        try await provider.run { base in
            let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
            let summary = try await IngestPipeline(embedder: Self.azure(base), store: store)
                .run(try FolderSource(root: root.appendingPathComponent("media")).items(), into: "c")
            #expect(summary.problems.isEmpty && summary.progress.added == 1 && summary.progress.frames == expected.count)
            let sent = provider.received.filter { $0.path.hasSuffix("vectorizeImage") }
            #expect(sent.count == expected.count)
            for request in sent {
                let frame = try ImageDecoder().decode(request.body)
                #expect(ImageFormat(signature: Array(request.body.prefix(16))) == .jpeg && frame.width == 910 && frame.height == 512)
            }
            let frames = try await store.contentHashes(in: "c").keys.sorted()
            #expect(frames == expected)
            #expect(try await store.item(frames[0], in: "c")?.vector == Self.unit)
        }
    }

    /// A wrong key stops an ingest at once with the provider's answer, instead of failing every item.
    @Test func aRefusedKeyStopsTheIngest() async throws {
        let provider = FakeProvider { _, _ in .init(status: .unauthorized, body: #"{"error":{"code":"401","message":"Access denied."}}"#) }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-remote-key-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for index in 0..<5 { try ServerHarness.image("tiny_rgb_50x40.png").write(to: root.appendingPathComponent("\(index).png")) }
        try await provider.run { base in
            let store = try CollectionStore.embedded(folder: root.appendingPathComponent("data"))
            await #expect(throws: EmbeddingError.self) {
                _ = try await IngestPipeline(embedder: Self.azure(base), store: store).run(try FolderSource(root: root).items(), into: "c",
                                                                                         options: IngestOptions(jobs: 1, batch: 2))
            }
            #expect(try await store.contentHashes(in: "c").isEmpty)
        }
        #expect(provider.received.count <= 2)
    }
}

/// Accepts connections and resets each one (SO_LINGER 0) as soon as a request arrives.
final class ResettingListener: @unchecked Sendable {
    let port: Int
    private let socketDescriptor: Int32
    private let lock = NSLock()
    private var count = 0

    var accepted: Int { lock.withLock { count } }

    init() throws {
        let (socketDescriptor, port) = LoopbackSocket.bound()
        self.socketDescriptor = socketDescriptor
        self.port = port
        guard listen(socketDescriptor, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        let thread = Thread { [self] in
            while true {
                let connection = accept(socketDescriptor, nil, nil)
                if connection < 0 { return }
                lock.withLock { count += 1 }
                var buffer = [UInt8](repeating: 0, count: 4096)
                _ = read(connection, &buffer, buffer.count)
                var resetOnClose = linger(l_onoff: 1, l_linger: 0)
                setsockopt(connection, SOL_SOCKET, SO_LINGER, &resetOnClose, socklen_t(MemoryLayout<linger>.size))
                close(connection)
            }
        }
        thread.start()
    }

    func stop() {
        shutdown(socketDescriptor, Int32(SHUT_RDWR))
        close(socketDescriptor)
    }
}
