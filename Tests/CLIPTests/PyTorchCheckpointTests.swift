import Foundation
import ImageIO
import LoupeTestSupport
import Testing

@testable import CLIP

/// `pytorch_model.bin` as `torch.save` writes it (Tests/Fixtures/generate_torch.py), read without running
/// its pickle: the same vectors as the safetensors weights, and hostile or damaged files refused.
@Suite struct PyTorchCheckpointTests {
    static let torch = Fixtures.root.appendingPathComponent("torch")

    /// A model folder with `model`'s configuration and tokenizer and the given weight files.
    static func folder(configurationOf model: String, weights: [URL]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-torch-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in ["config.json", "preprocessor_config.json", "vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: Fixtures.model(model).appendingPathComponent(file).resolvingSymlinksInPath(),
                                             to: folder.appendingPathComponent(file))
        }
        for file in weights { try FileManager.default.copyItem(at: file, to: folder.appendingPathComponent(file.lastPathComponent)) }
        return folder
    }

    static func sameVectors(_ a: CLIPModel, _ b: CLIPModel) throws {
        #expect(try a.embed(text: "a blue house") == b.embed(text: "a blue house"))
        let image = try ImageDecoder().decode(fileAt: Fixtures.image("photo_progressive_800x600.jpg")).rgb()
        #expect(a.embed(image: image) == b.embed(image: image))
    }

    @Test func aStateDictGivesTheVectorsOfTheSafetensorsWeights() throws {
        let folder = try Self.folder(configurationOf: "tiny-quickgelu", weights: [Self.torch.appendingPathComponent("tiny-quickgelu/pytorch_model.bin")])
        defer { try? FileManager.default.removeItem(at: folder) }
        // The int64 position_ids buffers older transformers kept are read and left unused.
        let checkpoint = try Checkpoint(folder: folder)
        #expect(checkpoint.entries["text_model.embeddings.position_ids"]?.dtype == "I64")
        try Self.sameVectors(CLIPModel(folder: folder), CLIPModel(folder: Fixtures.model("tiny-quickgelu")))
    }

    @Test func shardsWithViewsIntoSharedAndTransposedStorages() throws {
        let shards = Self.torch.appendingPathComponent("tiny-gelu-sharded")
        let files = try FileManager.default.contentsOfDirectory(atPath: shards.path).map { shards.appendingPathComponent($0) }
        let folder = try Self.folder(configurationOf: "tiny-gelu", weights: files)
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try Checkpoint(folder: folder)
        #expect(checkpoint.entries["visual_projection.weight"]?.strides != nil)
        let q = try #require(checkpoint.entries["text_model.encoder.layers.0.self_attn.q_proj.weight"])
        let k = try #require(checkpoint.entries["text_model.encoder.layers.0.self_attn.k_proj.weight"])
        #expect(k.offset == q.offset + q.byteCount)
        try Self.sameVectors(CLIPModel(folder: folder), CLIPModel(folder: Fixtures.model("tiny-gelu")))
    }

    @Test func float32IsUsedInPlaceAndViewsAreGathered() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-torch-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Self.torch.appendingPathComponent("float32.bin"), to: folder.appendingPathComponent("pytorch_model.bin"))
        let checkpoint = try Checkpoint(folder: folder)
        let matrix = try checkpoint.weight("matrix", shape: [4, 3])
        let entry = try #require(checkpoint.entries["matrix"])
        #expect(UnsafeRawPointer(matrix.base) == entry.file.base + entry.offset, "a contiguous float32 storage is read in place")
        #expect(Array(matrix.buffer) == (0..<12).map { Float($0) / 8 })
        let transposed = try checkpoint.weight("transposed", shape: [3, 4])
        let expected: [Float] = (0..<12).map { (index: Int) -> Float in Float((index % 4) * 3 + index / 4) / 8 }
        #expect(Array(transposed.buffer) == expected)
        let rows = try checkpoint.weight("rows", shape: [2, 3])
        #expect(Array(rows.buffer) == (3..<9).map { Float($0) / 8 })
    }

    @Test func aPickleNamingAnyOtherGlobalIsRefusedAndNothingRuns() throws {
        let marker = "/tmp/loupe-pickle-ran"
        try? FileManager.default.removeItem(atPath: marker)
        let folder = try Self.folder(configurationOf: "tiny-quickgelu", weights: [])
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Self.torch.appendingPathComponent("forbidden-global.bin"), to: folder.appendingPathComponent("pytorch_model.bin"))
        #expect {
            try CLIPModel(folder: folder)
        } throws: { error in
            guard case CLIPError.invalidWeights(_, let reason) = error else { return false }
            return reason.contains("posix.system") && reason.contains("nothing in the file was run")
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func safetensorsArePreferredWhenBothAreThere() throws {
        let folder = try Self.folder(configurationOf: "tiny-quickgelu", weights: [Self.torch.appendingPathComponent("forbidden-global.bin")])
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.moveItem(at: folder.appendingPathComponent("forbidden-global.bin"), to: folder.appendingPathComponent("pytorch_model.bin"))
        try FileManager.default.copyItem(at: Fixtures.model("tiny-quickgelu").appendingPathComponent("model.safetensors"),
                                         to: folder.appendingPathComponent("model.safetensors"))
        _ = try CLIPModel(folder: folder)
    }

    /// The same checkpoint rewritten with zip64 records (as files over 4 GB have them) reads the same.
    @Test func zip64ArchivesReadTheSame() throws {
        let source = Self.torch.appendingPathComponent("tiny-quickgelu/pytorch_model.bin")
        let archive = try ZipArchive(file: MappedFile(path: source.path))
        let entries = archive.entries.mapValues { Data(archive.bytes(of: $0)) }
        let folder = try Self.folder(configurationOf: "tiny-quickgelu", weights: [])
        defer { try? FileManager.default.removeItem(at: folder) }
        try StoredZip.write(entries, to: folder.appendingPathComponent("pytorch_model.bin"), zip64: true)
        let rewritten = try ZipArchive(file: MappedFile(path: folder.appendingPathComponent("pytorch_model.bin").path))
        #expect(rewritten.entries.count == archive.entries.count)
        try Self.sameVectors(CLIPModel(folder: folder), CLIPModel(folder: Fixtures.model("tiny-quickgelu")))
    }

    /// Handmade pickles: what a state dict never contains is refused with a reason, never run or trapped on.
    @Test(arguments: [
        ("\u{80}\u{04}\u{8C}\u{08}builtins\u{8C}\u{04}eval\u{93}.", "builtins.eval"),  // STACK_GLOBAL
        ("\u{80}\u{02}cos\nsystem\n.", "os.system"),
        ("\u{80}\u{02}(i__builtin__\nobject\n.", "opcode 0x69"),  // INST
        ("\u{80}\u{02}h\u{05}.", "memo entry 5"),
        ("\u{80}\u{02}}(K\u{01}u.", "odd number"),
        ("\u{80}\u{02}ctorch\nFloatStorage\n)R.", "calls torch.FloatStorage"),
        ("\u{80}\u{02}X\u{FF}\u{FF}\u{FF}\u{7F}ab.", "ends in the middle"),
        ("\u{80}\u{02}.", "stack is too short"),
        ("\u{80}\u{02}K\u{01}.", "not a state dict"),
        ("\u{80}\u{02}}X\u{01}\u{00}\u{00}\u{00}aK\u{01}s.", "other than named tensors"),
        ("\u{80}\u{09}}.", "newer than 5"),
    ])
    func hostilePicklesAreRefused(_ pickle: String, _ expected: String) throws {
        let bytes = Data(pickle.unicodeScalars.map { UInt8($0.value) })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-torch-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try StoredZip.write(["archive/data.pkl": bytes, "archive/byteorder": Data("little".utf8)], to: folder.appendingPathComponent("pytorch_model.bin"))
        #expect {
            try Checkpoint(folder: folder)
        } throws: { error in
            guard case CLIPError.invalidWeights(_, let reason) = error else { return false }
            return reason.contains(expected)
        }
    }

    /// Damage anywhere in a real checkpoint (bounded: 200 seeded mutations of the pickle and the zip
    /// directory) gives an error or readable tensors, never a crash or a read outside the file.
    @Test func damagedCheckpointsNeverCrash() throws {
        let original = try Data(contentsOf: Self.torch.appendingPathComponent("tiny-quickgelu/pytorch_model.bin"))
        let folder = try Self.folder(configurationOf: "tiny-quickgelu", weights: [])
        defer { try? FileManager.default.removeItem(at: folder) }
        var generator = SeededGenerator(seed: 20261202)
        let pickleStart = 64, directoryStart = original.count - 2_000
        for round in 0..<200 {
            var damaged = original
            switch round % 4 {
            case 0: damaged = damaged.prefix(Int.random(in: 0..<original.count, using: &generator))
            default:
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let region = round % 2 == 0 ? pickleStart..<pickleStart + 8_000 : directoryStart..<original.count
                    damaged[Int.random(in: region, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            try damaged.write(to: folder.appendingPathComponent("pytorch_model.bin"))
            do {
                let checkpoint = try Checkpoint(folder: folder)
                for (key, entry) in checkpoint.entries where entry.dtype != "I64" { _ = try checkpoint.weight(key, shape: entry.shape) }
            } catch is CLIPError {
            }
        }
    }
}

/// A zip of stored entries, as `torch.save` lays one out, for handmade checkpoints; with `zip64`, every size
/// and offset is in zip64 fields and records, as in a checkpoint over 4 GB.
enum StoredZip {
    static func write(_ entries: [String: Data], to url: URL, zip64: Bool = false) throws {
        var file = Data()
        var directory = Data()
        func le<T: FixedWidthInteger>(_ value: T) -> Data { withUnsafeBytes(of: value.littleEndian) { Data($0) } }
        let saturated32 = le(UInt32.max)
        for (name, data) in entries.sorted(by: { $0.key < $1.key }) {
            let offset = file.count
            let sizes = zip64 ? saturated32 + saturated32 : le(UInt32(data.count)) + le(UInt32(data.count))
            let localExtra = zip64 ? le(UInt16(1)) + le(UInt16(16)) + le(UInt64(data.count)) + le(UInt64(data.count)) : Data()
            let centralExtra = zip64 ? le(UInt16(1)) + le(UInt16(24)) + le(UInt64(data.count)) + le(UInt64(data.count)) + le(UInt64(offset)) : Data()
            let common = le(UInt16(zip64 ? 45 : 20)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + sizes
                + le(UInt16(name.utf8.count))
            file += le(UInt32(0x0403_4B50)) + common + le(UInt16(localExtra.count)) + Data(name.utf8) + localExtra + data
            directory += le(UInt32(0x0201_4B50)) + le(UInt16(45)) + common + le(UInt16(centralExtra.count)) + le(UInt16(0)) + le(UInt16(0))
                + le(UInt16(0)) + le(UInt32(0)) + (zip64 ? saturated32 : le(UInt32(offset))) + Data(name.utf8) + centralExtra
        }
        var end = Data()
        if zip64 {
            let record = file.count + directory.count
            end += le(UInt32(0x0606_4B50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0)) + le(UInt32(0))
                + le(UInt64(entries.count)) + le(UInt64(entries.count)) + le(UInt64(directory.count)) + le(UInt64(file.count))
            end += le(UInt32(0x0706_4B50)) + le(UInt32(0)) + le(UInt64(record)) + le(UInt32(1))
            end += le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16.max) + le(UInt16.max) + saturated32 + saturated32 + le(UInt16(0))
        } else {
            end += le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(entries.count)) + le(UInt16(entries.count))
                + le(UInt32(directory.count)) + le(UInt32(file.count)) + le(UInt16(0))
        }
        try (file + directory + end).write(to: url)
    }
}
