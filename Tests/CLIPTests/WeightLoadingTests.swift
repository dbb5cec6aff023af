import Foundation
import ImageIO
import LoupeTestSupport
import Testing

@testable import CLIP

/// Loading refuses checkpoints that do not fit the configuration, naming the key.
@Suite struct WeightLoadingTests {
    /// A copy of a fixture model whose safetensors file is rewritten by `edit`.
    static func modelCopy(
        of name: String, dtype: String? = nil, shards: Int = 1,
        edit: (inout [(key: String, dtype: String, shape: [Int], bytes: Data)]) -> Void = { _ in }
    ) throws -> URL {
        let source = Fixtures.model(name)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-model-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file).resolvingSymlinksInPath(),
                                             to: folder.appendingPathComponent(file))
        }
        let tensors = try Checkpoint(folder: source)
        var entries = tensors.entries.keys.sorted().map { key -> (key: String, dtype: String, shape: [Int], bytes: Data) in
            let entry = tensors.entries[key]!
            if dtype == "F32" {
                let weight = try! tensors.weight(key, shape: entry.shape)
                return (key, "F32", entry.shape, Data(buffer: weight.buffer))
            }
            return (key, entry.dtype, entry.shape, Data(bytes: entry.file.base + entry.offset, count: entry.byteCount))
        }
        edit(&entries)
        let perShard = (entries.count + shards - 1) / shards
        var weightMap = [String: String]()
        for shard in 0..<shards {
            let slice = Array(entries.dropFirst(shard * perShard).prefix(perShard))
            let name = shards == 1 ? "model.safetensors" : "model-\(shard + 1)-of-\(shards).safetensors"
            try writeSafeTensors(slice, to: folder.appendingPathComponent(name))
            for entry in slice { weightMap[entry.key] = name }
        }
        if shards > 1 {
            try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
                .write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        }
        return folder
    }

    static func writeSafeTensors(_ entries: [(key: String, dtype: String, shape: [Int], bytes: Data)], to url: URL) throws {
        var header = [String: Any]()
        var body = Data()
        for entry in entries {
            header[entry.key] = ["dtype": entry.dtype, "shape": entry.shape, "data_offsets": [body.count, body.count + entry.bytes.count]]
            body.append(entry.bytes)
        }
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(0x20) }
        var file = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) }
        file.append(json)
        file.append(body)
        try file.write(to: url)
    }

    static func loadError(_ folder: URL) -> CLIPError? {
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            _ = try CLIPModel(folder: folder)
            return nil
        } catch {
            return error as? CLIPError
        }
    }

    @Test func float32AndShardedCheckpointsGiveTheSameVectors() throws {
        let original = try CLIPModel(folder: Fixtures.model("tiny-gelu"))
        let folder = try Self.modelCopy(of: "tiny-gelu", dtype: "F32", shards: 3)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model-2-of-3.safetensors").path))
        let copy = try CLIPModel(folder: folder)
        #expect(try copy.embed(text: "a blue house") == original.embed(text: "a blue house"))
    }

    @Test func aMissingWeightIsNamed() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu") { $0.removeAll { $0.key == "text_model.final_layer_norm.bias" } }
        #expect(Self.loadError(folder) == .missingWeight("text_model.final_layer_norm.bias"))
    }

    @Test func anUnexpectedWeightIsNamed() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu") { $0.append(("extra.weight", "F32", [2], Data(count: 8))) }
        #expect(Self.loadError(folder) == .unexpectedWeights(["extra.weight"]))
    }

    @Test func aShapeMismatchIsNamed() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu") { entries in
            let index = entries.firstIndex { $0.key == "visual_projection.weight" }!
            entries[index].shape = [entries[index].shape[1], entries[index].shape[0]]
        }
        #expect(Self.loadError(folder) == .shapeMismatch(key: "visual_projection.weight", expected: [12, 40], found: [40, 12]))
    }

    @Test func anUnsupportedDTypeIsNamed() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu") { entries in
            let index = entries.firstIndex { $0.key == "logit_scale" }!
            entries[index].dtype = "I16"
        }
        #expect(Self.loadError(folder) == .unsupportedDType(key: "logit_scale", dtype: "I16"))
    }

    @Test func damagedFilesAreRefused() throws {
        for damage in [Data(), Data(count: 4), Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x7B]),
                       Data([9, 0, 0, 0, 0, 0, 0, 0]) + Data("not json!".utf8),
                       Data([26, 0, 0, 0, 0, 0, 0, 0]) + Data(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#.utf8).prefix(26)] {
            let folder = try Self.modelCopy(of: "tiny-gelu")
            try damage.write(to: folder.appendingPathComponent("model.safetensors"))
            let error = Self.loadError(folder)
            #expect(error != nil)
            if case .invalidWeights = error {} else { Issue.record("expected invalidWeights, got \(String(describing: error))") }
        }
    }

    @Test func aShardIndexCannotPointOutsideTheFolder() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        try Data(#"{"weight_map": {"a": "../../etc/passwd"}}"#.utf8).write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        if case .invalidWeights = Self.loadError(folder) {} else { Issue.record("a path in the shard index was accepted") }
    }

    @Test func configurationErrorsAreClear() throws {
        let folder = try Self.modelCopy(of: "tiny-gelu")
        let url = folder.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var vision = config["vision_config"] as! [String: Any]
        vision["hidden_act"] = "swish"
        config["vision_config"] = vision
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        guard case .invalidConfiguration(let message) = Self.loadError(folder) else {
            Issue.record("an unknown activation was accepted")
            return
        }
        #expect(message.contains("swish"))
    }

    /// The text weight bytes `loupe bench` reads against: every text layer's four matrices and the
    /// projection, counted from the configuration for weights kept as they are (BLAS), and no fewer
    /// once packed into panels.
    @Test(arguments: Fixtures.models)
    func textWeightBytesCountEveryMatrix(_ name: String) throws {
        let plain = try CLIPModel(folder: Fixtures.model(name), kernel: .blas)
        let text = plain.configuration.textConfig.encoder
        let (width, inner) = (text.hiddenSize, text.intermediateSize)
        let perLayer = 3 * width * width + width * width + 2 * width * inner
        let expected = 4 * (text.numHiddenLayers * perLayer + plain.configuration.projectionDim * width)
        #expect(plain.textWeightBytes == expected)
        let packed = try CLIPModel(folder: Fixtures.model(name))
        #expect(packed.textWeightBytes >= expected)
    }

    /// A folder as transformers 5 saves one (processor_config.json, tokenizer.json only) loads and gives the
    /// same vectors as the classic layout; without either processor file the error names both.
    @Test func aFolderSavedByTransformers5Loads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-t5-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, data) in try Transformers5Layout.files(fromModelFolder: Fixtures.model("tiny-gelu")) {
            try data.write(to: folder.appendingPathComponent(name))
        }
        let saved = try CLIPModel(folder: folder)
        let classic = try CLIPModel(folder: Fixtures.model("tiny-gelu"))
        for golden in Fixtures.tokenCases.prefix(100) {
            #expect(try saved.tokenizer.encode(golden.text) == classic.tokenizer.encode(golden.text), "\(golden.text)")
        }
        let image = try ImageDecoder().decode(fileAt: Fixtures.image("cmyk_360x240.jpg")).rgb()
        #expect(saved.embed(image: image) == classic.embed(image: image))
        #expect(try saved.embed(text: "a blue house") == classic.embed(text: "a blue house"))

        try FileManager.default.removeItem(at: folder.appendingPathComponent("processor_config.json"))
        #expect {
            try CLIPModel(folder: folder)
        } throws: { error in
            "\(error)".contains("preprocessor_config.json (or processor_config.json)")
        }
    }
}
