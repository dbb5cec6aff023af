import CLIP
import Foundation
import HubFixture
import ImageIO
import Testing

@testable import ModelHub

/// Repositories as they are on the real Hub: PyTorch weights in `main`, safetensors in the conversion
/// bot's pull request, gated repositories; each resolved online, then again offline from the cache.
@Suite struct RealHubLayoutTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let openAI = "openai/clip-vit-base-patch32"

    /// Resolves `model` with `hub` running, then with the Hub gone and HF_HUB_OFFLINE set; both must give
    /// the same folder.
    static func resolveOnlineThenOffline(_ hub: FakeHub, _ model: String, cache: URL, token: String? = nil) async throws -> URL {
        let box = FolderBox()
        try await hub.run { endpoint in
            let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: token))
            box.folder = try await downloader.resolve(HubModelID(parsing: model))
        }
        let online = try #require(box.folder)
        let offline = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: "http://127.0.0.1:1", offline: true))
        #expect(try await offline.resolve(HubModelID(parsing: model)).path == online.path)
        return online
    }

    final class FolderBox: @unchecked Sendable { var folder: URL? }

    static func sameVectors(_ folder: URL, as fixture: String) throws {
        let loaded = try CLIPModel(folder: folder)
        let reference = try CLIPModel(folder: fixtures.appendingPathComponent("models/\(fixture)"))
        #expect(try loaded.embed(text: "a blue house") == reference.embed(text: "a blue house"))
        let image = try ImageDecoder().decode(fileAt: fixtures.appendingPathComponent("images/cmyk_360x240.jpg").path).rgb()
        #expect(loaded.embed(image: image) == reference.embed(image: image))
    }

    @Test func theDefaultModelLoadsFromTheConversionBotsPullRequest() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = FakeHub(repositories: [Self.openAI: try .openAICLIP(fixtures: Self.fixtures)])
        hub.discussionsPerPage = 2  // the bot's pull request is on the second page
        let folder = try await Self.resolveOnlineThenOffline(hub, Self.openAI, cache: cache, token: "hf_user")

        let main = FakeHub.commitID("openai main"), converted = FakeHub.commitID("openai pr 66")
        #expect(folder.lastPathComponent == converted)
        try Self.sameVectors(folder, as: "tiny-quickgelu")
        // Nothing of the impostor's or the stale pull request's files, nor the weights Loupe does not read.
        let paths = hub.requests.map(\.path)
        #expect(!paths.contains { $0.contains(FakeHub.commitID("openai pr 67")) || $0.contains(FakeHub.commitID("openai pr 40")) })
        #expect(!paths.contains { $0.hasSuffix("pytorch_model.bin") || $0.hasSuffix(".h5") || $0.hasSuffix(".msgpack") })
        #expect(paths.contains("/api/models/openai/clip-vit-base-patch32/discussions") )
        // Large files came from the storage host without the token; the Hub had it.
        #expect(hub.requests.contains { $0.storage })
        #expect(hub.requests.allSatisfy { $0.storage ? $0.authorization == nil : $0.authorization == "Bearer hf_user" })
        // The cache as huggingface_hub lays it out, plus Loupe's record of the checked pull request.
        let repository = cache.appendingPathComponent("models--openai--clip-vit-base-patch32")
        #expect(try String(contentsOf: repository.appendingPathComponent("refs/main"), encoding: .utf8) == main)
        #expect(try String(contentsOf: repository.appendingPathComponent("refs/refs/pr/66"), encoding: .utf8) == converted)
        #expect(try String(contentsOf: repository.appendingPathComponent("loupe/safetensors-conversions/\(main)"), encoding: .utf8) == "refs/pr/66")
        #expect(HubCache(root: cache).entries().first { $0.commit == converted }?.revisions == ["refs/pr/66"])
    }

    @Test func aPullRequestWithThatTitleByAnyoneElseIsNeverUsed() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        var repository = try FakeHub.Repository.openAICLIP(fixtures: Self.fixtures)
        repository.discussions.removeAll { $0.num == 66 }  // only the impostor's is left open
        let hub = FakeHub(repositories: [Self.openAI: repository])
        let folder = try await Self.resolveOnlineThenOffline(hub, Self.openAI, cache: cache)
        // main's own PyTorch weights, read without running their pickle.
        #expect(folder.lastPathComponent == FakeHub.commitID("openai main"))
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("pytorch_model.bin").path))
        #expect(!hub.requests.contains { $0.path.contains(FakeHub.commitID("openai pr 67")) })
        try Self.sameVectors(folder, as: "tiny-quickgelu")
    }

    @Test func aCacheThatTransformersFilledIsReused() async throws {
        // transformers takes config.json and the tokenizer from main and model.safetensors from refs/pr/66.
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let repository = try FakeHub.Repository.openAICLIP(fixtures: Self.fixtures)
        let main = FakeHub.commitID("openai main"), converted = FakeHub.commitID("openai pr 66")
        let folder = cache.appendingPathComponent("models--openai--clip-vit-base-patch32")
        for (commit, names) in [(main, ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]),
                                (converted, ["model.safetensors"])] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("snapshots/\(commit)"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("blobs"), withIntermediateDirectories: true)
            for name in names {
                let data = repository.commits[commit]!.files[name]!
                let blob = name.hasSuffix(".safetensors") ? FakeHub.sha256(data) : FakeHub.gitBlob(data)
                try data.write(to: folder.appendingPathComponent("blobs/\(blob)"))
                try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("snapshots/\(commit)/\(name)").path,
                                                           withDestinationPath: "../../blobs/\(blob)")
            }
        }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("refs/refs/pr"), withIntermediateDirectories: true)
        try Data(main.utf8).write(to: folder.appendingPathComponent("refs/main"))
        try Data(converted.utf8).write(to: folder.appendingPathComponent("refs/refs/pr/66"))
        let hub = FakeHub(repositories: [Self.openAI: repository])
        let resolved = try await Self.resolveOnlineThenOffline(hub, Self.openAI, cache: cache)
        #expect(resolved.lastPathComponent == converted)
        // Checked online once; no file was downloaded again.
        #expect(!hub.requests.contains { $0.storage || $0.path.contains("/resolve") })
        try Self.sameVectors(resolved, as: "tiny-quickgelu")
    }

    @Test func pytorchOnlyRepositoriesLoadFromTheirBinFiles() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let shards = Self.fixtures.appendingPathComponent("torch/tiny-gelu-sharded")
        let hub = FakeHub(repositories: [
            "someone/clip-bin": try .pytorchOnly(fixtures: Self.fixtures, model: "tiny-quickgelu",
                                                  weights: [Self.fixtures.appendingPathComponent("torch/tiny-quickgelu/pytorch_model.bin")]),
            "someone/clip-shards": try .pytorchOnly(fixtures: Self.fixtures, model: "tiny-gelu",
                                                     weights: try FileManager.default.contentsOfDirectory(atPath: shards.path).map { shards.appendingPathComponent($0) }),
        ])
        let single = try await Self.resolveOnlineThenOffline(hub, "someone/clip-bin", cache: cache)
        try Self.sameVectors(single, as: "tiny-quickgelu")
        let sharded = try await Self.resolveOnlineThenOffline(hub, "someone/clip-shards", cache: cache)
        #expect(FileManager.default.fileExists(atPath: sharded.appendingPathComponent("pytorch_model-00002-of-00002.bin").path))
        try Self.sameVectors(sharded, as: "tiny-gelu")
    }

    /// transformers 5 saves the image processor inside processor_config.json and the tokenizer as
    /// tokenizer.json only: such a repository downloads, counts as complete offline, and loads.
    @Test func aRepositorySavedByTransformers5Loads() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let hub = FakeHub(repositories: ["someone/clip-t5": try .savedByTransformers5(fixtures: Self.fixtures, model: "tiny-gelu")])
        let folder = try await Self.resolveOnlineThenOffline(hub, "someone/clip-t5", cache: cache)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("processor_config.json").path))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("preprocessor_config.json").path))
        try Self.sameVectors(folder, as: "tiny-gelu")
    }

    @Test func aCheckpointWhosePickleNamesAnotherGlobalDownloadsButIsRefused() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let marker = "/tmp/loupe-pickle-ran"
        try? FileManager.default.removeItem(atPath: marker)
        var repository = try FakeHub.Repository.pytorchOnly(fixtures: Self.fixtures, model: "tiny-quickgelu", weights: [])
        let commit = repository.refs["main"]!
        repository.commits[commit]!.files["pytorch_model.bin"] = try Data(contentsOf: Self.fixtures.appendingPathComponent("torch/forbidden-global.bin"))
        let hub = FakeHub(repositories: ["mallory/clip": repository])
        let folder = try await Self.resolveOnlineThenOffline(hub, "mallory/clip", cache: cache)
        #expect {
            try CLIPModel(folder: folder)
        } throws: { error in
            guard case CLIPError.invalidWeights(_, let reason) = error else { return false }
            return reason.contains("posix.system")
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func gatedRepositoriesNeedATokenThatAcceptedTheirConditions() async throws {
        let cache = try HubDownloaderTests.temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        var repository = try FakeHub.Repository.pytorchOnly(fixtures: Self.fixtures, model: "tiny-quickgelu",
                                                            weights: [Self.fixtures.appendingPathComponent("torch/tiny-quickgelu/pytorch_model.bin")])
        repository.gated = true
        let hub = FakeHub(repositories: ["google/gated-clip": repository])
        try await hub.run { endpoint in
            for token in [nil, "hf_not_accepted"] {
                let downloader = HubDownloader(environment: HubEnvironment(cacheRoot: cache, endpoint: endpoint, token: token))
                await #expect(throws: HubError.gated(model: "google/gated-clip")) {
                    try await downloader.resolve(HubModelID(parsing: "google/gated-clip"))
                }
            }
        }
        #expect(HubError.gated(model: "google/gated-clip@v2").description.contains("https://huggingface.co/google/gated-clip and"))
        let folder = try await Self.resolveOnlineThenOffline(hub, "google/gated-clip", cache: cache, token: hub.gatedAccessToken)
        try Self.sameVectors(folder, as: "tiny-quickgelu")
        #expect(hub.requests.allSatisfy { $0.storage ? $0.authorization == nil : true })
    }
}
