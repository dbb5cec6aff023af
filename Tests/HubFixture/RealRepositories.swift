import Foundation
import LoupeTestSupport

/// Repositories laid out file for file as real ones on the Hub are, with the tiny fixture model's
/// contents in the files a loader reads (and placeholders in those it must never download).
extension FakeHub.Repository {
    public static let conversionTitle = "Adding `safetensors` variant of this model"
    public static let conversionBot = "SFconvertbot"

    /// `openai/clip-vit-base-patch32` as of 2026: `main` holds `pytorch_model.bin` (and TensorFlow and Flax
    /// weights) but no `model.safetensors`; the open pull request #66 by `SFconvertbot` adds it on top of
    /// `main`. Around it, what a real discussion list holds: a pull request with the same title by another
    /// user, listed first (#67, its weights must never be read), a closed conversion from before the last
    /// commit (#40), and a plain discussion (#68).
    public static func openAICLIP(fixtures: URL) throws -> FakeHub.Repository {
        let model = fixtures.appendingPathComponent("models/tiny-quickgelu")
        func read(_ url: URL) throws -> Data { try Data(contentsOf: url.resolvingSymlinksInPath()) }
        var files: [String: Data] = [
            ".gitattributes": Data("*.bin filter=lfs diff=lfs merge=lfs -text\n*.h5 filter=lfs diff=lfs merge=lfs -text\n*.msgpack filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n".utf8),
            "README.md": Data("---\ntags:\n- vision\nwidget:\n- src: https://huggingface.co/datasets/mishig/sample_images/resolve/main/cat-dog-music.png\n---\n\n# Model Card: CLIP\n".utf8),
            "config.json": try read(model.appendingPathComponent("config.json")),
            "preprocessor_config.json": try read(model.appendingPathComponent("preprocessor_config.json")),
            "vocab.json": try read(model.appendingPathComponent("vocab.json")),
            "merges.txt": try read(model.appendingPathComponent("merges.txt")),
            "pytorch_model.bin": try read(fixtures.appendingPathComponent("torch/tiny-quickgelu/pytorch_model.bin")),
            "tokenizer.json": Data(#"{"version": "1.0", "truncation": null, "padding": null, "model": {"type": "BPE"}}"#.utf8),
            "tokenizer_config.json": Data(#"{"unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "add_prefix_space": false, "errors": "replace", "do_lower_case": true, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}"#.utf8),
            "special_tokens_map.json": Data(#"{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}"#.utf8),
            "flax_model.msgpack": Data(repeating: 0x46, count: 4096),
            "tf_model.h5": Data(repeating: 0x54, count: 4096),
        ]
        let initial = FakeHub.commitID("openai initial")
        let main = FakeHub.commitID("openai main")
        let converted = FakeHub.commitID("openai pr 66")
        let impostor = FakeHub.commitID("openai pr 67")
        let stale = FakeHub.commitID("openai pr 40")
        var withSafetensors = files
        withSafetensors["model.safetensors"] = try read(model.appendingPathComponent("model.safetensors"))
        // The impostor's weights load as a model (same shapes) but give other vectors.
        var impostorFiles = withSafetensors
        impostorFiles["model.safetensors"] = try read(model.appendingPathComponent("model.safetensors"))
        impostorFiles["model.safetensors"]!.withUnsafeMutableBytes { bytes in
            for index in stride(from: bytes.count - 4096, to: bytes.count, by: 2) { bytes[index] = 0 }
        }
        files.removeValue(forKey: "README.md")
        var older = files
        older["README.md"] = Data("# CLIP\n".utf8)
        return FakeHub.Repository(
            refs: ["main": main, "refs/pr/66": converted, "refs/pr/67": impostor, "refs/pr/40": stale],
            commits: [
                initial: .init(files: older, title: "initial commit", author: "valhalla"),
                main: .init(files: files.merging(["README.md": Data("# Model Card: CLIP\n".utf8)]) { $1 }, parent: initial,
                            title: "Update README.md", author: "ybelkada"),
                converted: .init(files: withSafetensors, parent: main, title: conversionTitle, author: conversionBot),
                impostor: .init(files: impostorFiles, parent: main, title: conversionTitle, author: "mallory"),
                stale: .init(files: older.merging(["model.safetensors": impostorFiles["model.safetensors"]!]) { $1 }, parent: initial,
                             title: conversionTitle, author: conversionBot),
            ],
            discussions: [
                .init(num: 68, title: "Which image size does this model take?", author: "someone", isPullRequest: false),
                .init(num: 67, title: conversionTitle, author: "mallory"),
                .init(num: 66, title: conversionTitle, author: conversionBot),
                .init(num: 40, title: conversionTitle, author: conversionBot, status: "closed"),
            ])
    }

    /// A repository pushed from transformers 5 (`push_to_hub` writes what `save_pretrained` does).
    public static func savedByTransformers5(fixtures: URL, model: String) throws -> FakeHub.Repository {
        let files = try Transformers5Layout.files(fromModelFolder: fixtures.appendingPathComponent("models/\(model)"))
        return FakeHub.Repository(files: files, commit: FakeHub.commitID("transformers 5 \(model)"))
    }

    /// A repository with `pytorch_model.bin` weights (or shards) only and no pull requests.
    public static func pytorchOnly(fixtures: URL, model: String, weights: [URL]) throws -> FakeHub.Repository {
        let folder = fixtures.appendingPathComponent("models/\(model)")
        var files = [String: Data]()
        for name in ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt"] {
            files[name] = try Data(contentsOf: folder.appendingPathComponent(name).resolvingSymlinksInPath())
        }
        for url in weights { files[url.lastPathComponent] = try Data(contentsOf: url) }
        return FakeHub.Repository(files: files, commit: FakeHub.commitID("pytorch \(model) \(weights.map(\.lastPathComponent))"))
    }
}
