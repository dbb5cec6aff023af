import CLIP
import Foundation
import HubFixture
import Testing

@testable import ModelHub

@Suite struct HubDownloaderTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/tiny-gelu")

    static func temporaryCache() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hub-\(UUID())")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs `body` with a fake Hub listening on a free loopback port.
    static func withHub(_ hub: FakeHub, _ body: @escaping @Sendable (String) async throws -> Void) async throws {
        try await hub.run(body)
    }

    /// The files of a model folder, by name.
    static func files(of folder: URL) throws -> [String: Data] {
        var files = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            files[name] = try Data(contentsOf: folder.appendingPathComponent(name).resolvingSymlinksInPath())
        }
        return files
    }

    /// A Hub with one repository whose main holds the tiny-gelu fixture.
    static func tinyGeluHub() throws -> FakeHub {
        try FakeHub(repositories: ["loupe/tiny-gelu": .init(files: files(of: fixture))])
    }

    static var tinyGeluCommit: String { FakeHub.commitID("main") }

    @Test func downloadsIntoTheHuggingFaceCacheLayoutAndLoads() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = try Self.tinyGeluHub()
        try await Self.withHub(hub) { endpoint in
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint))
            let folder = try await downloader.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            #expect(folder.path == cache.appendingPathComponent("models--loupe--tiny-gelu/snapshots/\(Self.tinyGeluCommit)").path)
            let ref = try String(contentsOf: cache.appendingPathComponent("models--loupe--tiny-gelu/refs/main"), encoding: .utf8)
            #expect(ref == Self.tinyGeluCommit)
            let link = try FileManager.default.destinationOfSymbolicLink(atPath: folder.appendingPathComponent("model.safetensors").path)
            let weights = try Data(contentsOf: Self.fixture.appendingPathComponent("model.safetensors"))
            #expect(link == "../../blobs/\(FakeHub.sha256(weights))")
            let downloaded = try CLIPModel(folder: folder)
            let original = try CLIPModel(folder: Self.fixture)
            #expect(try downloaded.embed(text: "a blue house") == original.embed(text: "a blue house"))
        }
        // The server is gone: the cached model resolves offline, and also without the offline flag.
        for offline in [true, false] {
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: "http://127.0.0.1:1", offline: offline))
            let folder = try await downloader.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path))
        }
        #expect(HubCache(root: cache).entries().map(\.repository) == ["loupe/tiny-gelu"])
        #expect(HubCache(root: cache).entries().first?.complete == true)
    }

    /// SigLIP repositories: the SentencePiece model (or tokenizer.json) comes down with the rest, and the
    /// downloaded folder embeds as the original does. Files the loader does not read are left on the Hub.
    @Test(arguments: ["tiny-siglip", "tiny-siglip2"])
    func siglipRepositoriesDownloadWithTheirTokenizer(_ name: String) async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let original = Self.fixture.deletingLastPathComponent().appendingPathComponent(name)
        var files = try Self.files(of: original)
        files["README.md"] = Data("# a model card\n".utf8)
        let hub = try FakeHub(repositories: ["loupe/\(name)": .init(files: files)])
        try await Self.withHub(hub) { endpoint in
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint))
            let folder = try await downloader.resolve(HubModelID(parsing: "loupe/\(name)"))
            let names = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
            #expect(names == Set(try FileManager.default.contentsOfDirectory(atPath: original.path)))
            let downloaded = try ModelFamily.load(folder: folder)
            #expect(try downloaded.embed(text: "a blue house") == ModelFamily.load(folder: original).embed(text: "a blue house"))
        }
    }

    @Test func aPartialDownloadResumesWithARange() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = try Self.tinyGeluHub()
        let weights = try Data(contentsOf: Self.fixture.appendingPathComponent("model.safetensors"))
        let blobs = cache.appendingPathComponent("models--loupe--tiny-gelu/blobs")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        let half = weights.count / 2
        try weights.prefix(half).write(to: blobs.appendingPathComponent(FakeHub.sha256(weights) + ".incomplete"))
        try await Self.withHub(hub) { endpoint in
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint))
            let folder = try await downloader.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            #expect(try Data(contentsOf: folder.appendingPathComponent("model.safetensors")) == weights)
        }
        // The Hub redirects to storage; the range goes with the request to both.
        let weightRequests = hub.requests.filter { $0.storage }
        #expect(weightRequests.count == 1)
        #expect(weightRequests.first?.range == "bytes=\(half)-")
    }

    @Test func aCorruptedFileIsRefusedAndNotCached() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = try Self.tinyGeluHub()
        hub.corruptFile = "model.safetensors"
        try await Self.withHub(hub) { endpoint in
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint))
            await #expect {
                try await downloader.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            } throws: { error in
                guard case HubError.integrity(let file, let reason) = error else { return false }
                return file == "model.safetensors" && reason.contains("SHA-256")
            }
            let id = try HubModelID(parsing: "loupe/tiny-gelu")
            #expect(HubCache(root: cache).completeSnapshot(for: id) == nil)
        }
    }

    @Test func theTokenIsSentAndARefusalIsExplained() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = try Self.tinyGeluHub()
        hub.requiredToken = "hf_secret"
        try await Self.withHub(hub) { endpoint in
            let anonymous = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint))
            await #expect(throws: HubError.repositoryNotFound(model: "loupe/tiny-gelu")) {
                try await anonymous.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            }
            let wrong = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: "hf_wrong"))
            await #expect(throws: HubError.unauthorized(model: "loupe/tiny-gelu")) {
                try await wrong.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
            }
            let authorised = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: "hf_secret"))
            _ = try await authorised.resolve(HubModelID(parsing: "loupe/tiny-gelu"))
        }
        // The token went to the Hub with every request and never to the storage host.
        #expect(hub.requests.contains { $0.storage })
        #expect(hub.requests.allSatisfy { $0.storage ? $0.authorization == nil : true })
        #expect(hub.requests.filter { !$0.storage }.last?.authorization == "Bearer hf_secret")
    }

    @Test func missingRepositoriesAndRevisionsAreNamed() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = try Self.tinyGeluHub()
        try await Self.withHub(hub) { endpoint in
            // The Hub answers 401 RepoNotFound without a token and 404 with one.
            for token in [nil, "hf_someone"] {
                let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: token))
                await #expect(throws: HubError.repositoryNotFound(model: "loupe/other")) {
                    try await downloader.resolve(HubModelID(parsing: "loupe/other"))
                }
                await #expect(throws: HubError.revisionNotFound(model: "loupe/tiny-gelu@v9")) {
                    try await downloader.resolve(HubModelID(parsing: "loupe/tiny-gelu@v9"))
                }
            }
        }
    }

    @Test func withoutANetworkTheErrorNamesTheModelAndTheWayOut() async throws {
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let id = try HubModelID(parsing: "openai/clip-vit-base-patch32")
        let offline = HubDownloader(environment: HubEnvironment(cacheRoot: cache, offline: true))
        await #expect(throws: HubError.notCached(model: "openai/clip-vit-base-patch32", offline: true)) {
            try await offline.resolve(id)
        }
        let unreachable = HubDownloader(
            environment: HubEnvironment(cacheRoot: cache, endpoint: "http://127.0.0.1:1"), connectTimeout: .milliseconds(300))
        do {
            _ = try await unreachable.resolve(id)
            Issue.record("resolved without a network")
        } catch let error as HubError {
            #expect(error.description.contains("openai/clip-vit-base-patch32"))
            #expect(error.description.contains("local model folder"))
        }
    }

    @Test func aModelThatPythonToolsCachedIsReused() throws {
        // The layout huggingface_hub writes, built by hand: refs/main → snapshot → links into blobs.
        let cache = try Self.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let repo = cache.appendingPathComponent("models--openai--clip-vit-base-patch32")
        let commit = String(repeating: "ab", count: 20)
        let snapshot = repo.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try Data(commit.utf8).write(to: repo.appendingPathComponent("refs/main"))
        for file in ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt", "model.safetensors"] {
            let data = try Data(contentsOf: Self.fixture.appendingPathComponent(file).resolvingSymlinksInPath())
            let blob = FakeHub.sha256(data)
            try data.write(to: repo.appendingPathComponent("blobs/\(blob)"))
            try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(file).path,
                                                       withDestinationPath: "../../blobs/\(blob)")
        }
        let cacheView = HubCache(root: cache)
        #expect(cacheView.completeSnapshot(for: try HubModelID(parsing: "openai/clip-vit-base-patch32"))?.path == snapshot.path)
        #expect(cacheView.completeSnapshot(for: try HubModelID(parsing: "openai/clip-vit-base-patch32@\(commit)"))?.path == snapshot.path)
        #expect(cacheView.completeSnapshot(for: try HubModelID(parsing: "openai/clip-vit-base-patch32@v2")) == nil)
        // A dangling link makes the snapshot incomplete.
        try FileManager.default.removeItem(at: repo.appendingPathComponent("blobs/\(FakeHub.sha256(Data(contentsOf: Self.fixture.appendingPathComponent("config.json"))))"))
        #expect(cacheView.completeSnapshot(for: try HubModelID(parsing: "openai/clip-vit-base-patch32")) == nil)
    }

    @Test(arguments: ["openai/clip-vit-base-patch32", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K@main", "name-only",
                      "org/name@refs/pr/1", "org/name@0123456789abcdef0123456789abcdef01234567"])
    func validModelIDs(_ text: String) throws {
        _ = try HubModelID(parsing: text)
    }

    @Test(arguments: ["", "/", "a/b/c", "../etc", "org/..", "org/name@", "org/name@../../x", "org/na me", "org/name@/abs",
                      "org/name;rm -rf", "ｏｒｇ/name"])
    func invalidModelIDs(_ text: String) {
        #expect(throws: HubError.invalidModelID(text)) { try HubModelID(parsing: text) }
    }

    @Test func environmentVariablesAreHonoured() {
        let defaults = HubEnvironment.fromProcess(["HOME": "/home/u"])
        #expect(defaults.cacheRoot.path == "/home/u/.cache/huggingface/hub")
        #expect(defaults.endpoint == "https://huggingface.co")
        #expect(!defaults.offline && defaults.token == nil)
        let custom = HubEnvironment.fromProcess([
            "HOME": "/home/u", "HF_HOME": "/data/hf", "HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://mirror/",
        ])
        #expect(custom.cacheRoot.path == "/data/hf/hub")
        #expect(custom.token == "hf_x" && custom.offline && custom.endpoint == "http://mirror")
        #expect(HubEnvironment.fromProcess(["HOME": "/h", "HF_HUB_CACHE": "/c"]).cacheRoot.path == "/c")
    }
}
