import Foundation

/// A model folder as transformers 5's `save_pretrained` writes a CLIP model and processor (checked
/// against transformers 5.24): `config.json`, `model.safetensors`, `processor_config.json` with the image
/// processor's settings nested under `image_processor`, `tokenizer.json` (a BPE model whose merges are
/// pairs) and `tokenizer_config.json`; no `vocab.json`, `merges.txt` or `preprocessor_config.json`.
public enum Transformers5Layout {
    public static func files(fromModelFolder folder: URL) throws -> [String: Data] {
        func read(_ name: String) throws -> Data { try Data(contentsOf: folder.appendingPathComponent(name).resolvingSymlinksInPath()) }
        let imageProcessor = try JSONSerialization.jsonObject(with: read("preprocessor_config.json"))
        let processor = ["image_processor": imageProcessor, "processor_class": "CLIPProcessor"]
        let vocabulary = try JSONSerialization.jsonObject(with: read("vocab.json"))
        let merges = String(decoding: try read("merges.txt"), as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("#version") }.map { $0.split(separator: " ").map(String.init) }
        let tokenizer: [String: Any] = [
            "version": "1.0",
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
                      "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocabulary, "merges": merges],
        ]
        let tokenizerConfig = ["tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "processor_class": "CLIPProcessor"]
        return [
            "config.json": try read("config.json"),
            "model.safetensors": try read("model.safetensors"),
            "processor_config.json": try JSONSerialization.data(withJSONObject: processor, options: [.sortedKeys]),
            "tokenizer.json": try JSONSerialization.data(withJSONObject: tokenizer),
            "tokenizer_config.json": try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.sortedKeys]),
        ]
    }
}
