import Foundation
import Testing

@testable import CLIP

@Suite struct TokenizerTests {
    static let tokenizer = Result { try CLIPTokenizer(folder: Fixtures.model("tiny-quickgelu")) }

    @Test func goldenFileIsLoaded() {
        #expect(Fixtures.tokenCases.count >= 200)
    }

    @Test(arguments: Fixtures.tokenCases)
    func idsEqualTheReference(_ golden: Fixtures.TokenCase) throws {
        let ids = try Self.tokenizer.get().encode(golden.text)
        #expect(ids == golden.ids)
    }

    @Test func truncationKeepsTheEndTokenLast() throws {
        let tokenizer = try Self.tokenizer.get()
        let ids = try tokenizer.encode(String(repeating: "painting ", count: 200))
        #expect(ids.count == 77)
        #expect(ids.first == tokenizer.startToken)
        #expect(ids.last == tokenizer.endToken)
    }

    @Test func tokenizerJSONGivesTheSameIds() throws {
        // Build a tokenizer.json (the HF "fast" format, merges as pairs) from the same vocabulary.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tokenizer-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = Fixtures.root.appendingPathComponent("clip-vocab")
        let vocab = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("vocab.json")))
        let merges = try String(contentsOf: source.appendingPathComponent("merges.txt"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }
        let json = ["model": ["type": "BPE", "vocab": vocab, "merges": merges]]
        try JSONSerialization.data(withJSONObject: json).write(to: folder.appendingPathComponent("tokenizer.json"))
        let fromJSON = try CLIPTokenizer(folder: folder)
        let reference = try Self.tokenizer.get()
        for golden in Fixtures.tokenCases.prefix(60) {
            #expect(try fromJSON.encode(golden.text) == reference.encode(golden.text))
        }
    }

    @Test func missingOrBrokenFilesAreClearErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tokenizer-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: CLIPError.self) { try CLIPTokenizer(folder: folder) }
        try Data("not json".utf8).write(to: folder.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\na b\n".utf8).write(to: folder.appendingPathComponent("merges.txt"))
        #expect(throws: CLIPError.invalidTokenizer("vocab.json is not a JSON object of token ids")) {
            try CLIPTokenizer(folder: folder)
        }
        try Data(#"{"a": 0}"#.utf8).write(to: folder.appendingPathComponent("vocab.json"))
        #expect(throws: CLIPError.invalidTokenizer("the vocabulary has no <|startoftext|> and <|endoftext|> tokens")) {
            try CLIPTokenizer(folder: folder)
        }
    }
}
