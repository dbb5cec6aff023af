import CLIP
import Foundation
import HubFixture
import LoupeTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `loupe serve` as a process: start-up, readiness, refusal to start, graceful shutdown.
@Suite(.serialized) struct ServeCommandTests {
    /// A port that was free a moment ago.
    static func freePort() -> Int { LoopbackSocket.unusedPort() }

    static func start(_ arguments: [String], environment extra: [String: String] = ["HF_HUB_OFFLINE": "1"]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = LoupeBinary.url
        process.arguments = arguments
        process.currentDirectoryURL = LoupeBinary.root
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, errors)
    }

    static func request(_ url: String, method: String = "GET", body: Data? = nil, contentType: String? = nil) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    static func waitUntilReady(port: Int) async throws {
        for _ in 0..<200 {
            if let (status, _) = try? await request("http://127.0.0.1:\(port)/ready"), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the server did not become ready")
    }

    @Test func servesThenFinishesInFlightRequestsOnSIGTERM() async throws {
        let port = Self.freePort()
        let (process, _) = try Self.start(["serve", "--model", "Tests/Fixtures/models/tiny-quickgelu", "--port", "\(port)",
                                           "--batch-window-ms", "500"])
        defer { if process.isRunning { process.terminate() } }
        try await Self.waitUntilReady(port: port)
        let image = try Data(contentsOf: LoupeBinary.fixtures.appendingPathComponent("images/photo_progressive_800x600.jpg"))
        // The 500 ms gathering window keeps this request in flight while the signal arrives.
        async let inFlight = Self.request(
            "http://127.0.0.1:\(port)/computervision/retrieval:vectorizeImage?api-version=2024-02-01",
            method: "POST", body: image, contentType: "application/octet-stream")
        try await Task.sleep(for: .milliseconds(150))
        kill(process.processIdentifier, SIGTERM)
        let (status, body) = try await inFlight
        #expect(status == 200, "\(String(decoding: body, as: UTF8.self))")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    /// The README's first command: the default model id, from a Hub laid out as the real one is today
    /// (PyTorch weights in main, safetensors in the conversion bot's pull request), then from the cache offline.
    @Test func servesTheDefaultModelFromAHubShapedLikeTheRealOne() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hf-home-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        let hub = FakeHub(repositories: ["openai/clip-vit-base-patch32": try .openAICLIP(fixtures: LoupeBinary.fixtures)])
        let expected = try CLIPModel(folder: LoupeBinary.fixtures.appendingPathComponent("models/tiny-quickgelu")).embed(text: "a blue house")
        let port = Self.freePort()
        let arguments = ["serve", "--model", "openai/clip-vit-base-patch32", "--port", "\(port)"]
        @Sendable func vectorizeText() async throws -> [Float] {
            let (status, body) = try await Self.request(
                "http://127.0.0.1:\(port)/computervision/retrieval:vectorizeText?api-version=2024-02-01",
                method: "POST", body: Data(#"{"text": "a blue house"}"#.utf8), contentType: "application/json")
            #expect(status == 200, "\(String(decoding: body, as: UTF8.self))")
            let json = try JSONSerialization.jsonObject(with: body) as? [String: Any]
            return (json?["vector"] as? [NSNumber])?.map(\.floatValue) ?? []
        }
        try await hub.run { endpoint in
            let (process, _) = try Self.start(arguments, environment: ["HF_HOME": home.path, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"])
            defer { process.terminate() }
            try await Self.waitUntilReady(port: port)
            #expect(try await vectorizeText() == expected)
            // Gone before the offline server takes the port: else the readiness probe could reach this one.
            process.terminate()
            process.waitUntilExit()
        }
        #expect(hub.requests.contains { $0.path.hasSuffix("/discussions") })
        let (offline, _) = try Self.start(arguments, environment: ["HF_HOME": home.path, "HF_ENDPOINT": "http://127.0.0.1:1", "HF_HUB_OFFLINE": "1"])
        defer { offline.terminate() }
        try await Self.waitUntilReady(port: port)
        #expect(try await vectorizeText() == expected)
    }

    @Test func refusesToServeBeyondLoopbackWithoutKeys() throws {
        let (process, errors) = try Self.start(["serve", "--model", "Tests/Fixtures/models/tiny-quickgelu", "--host", "0.0.0.0",
                                                "--port", "\(Self.freePort())"])
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("without keys"))
    }

    @Test func aModelThatCannotLoadStopsStartUpWithItsReason() throws {
        let (process, errors) = try Self.start(["serve", "--model", "Tests/Fixtures/images", "--port", "\(Self.freePort())"])
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("config.json"))
    }
}
