import Foundation
import ImageIO
import Tensor
import Testing

@testable import CLIP

/// SigLIP against the reference (Tests/Fixtures/generate_siglip.py): token ids from `sentencepiece`,
/// `tokenizers` and transformers' processors on every golden string, and text vectors, image vectors and
/// zero-shot probabilities from transformers' `SiglipModel` on the two committed checkpoints.
@Suite struct SiglipTests {
    struct TokenCase: Decodable {
        let text: String
        let sentencepiece: [Int]
        let sentencepieceBPE: [Int]
        let tokenizers: [Int]
        let tokenizersUnigram: [Int]
        let tinySiglip: [Int]
        let tinySiglip2: [Int]

        enum CodingKeys: String, CodingKey {
            case text, sentencepiece, sentencepieceBPE = "sentencepiece_bpe", tokenizers,
                 tokenizersUnigram = "tokenizers_unigram", tinySiglip = "tiny-siglip", tinySiglip2 = "tiny-siglip2"
        }
    }

    struct Reference: Decodable {
        struct Text: Decodable { let text: String; let ids: [Int]; let vector: [Float] }
        struct Image: Decodable { let file: String; let vector: [Float]; let probabilities: [Float] }
        let texts: [Text]
        let images: [Image]
        let labels: [String]
    }

    static let cases = Result { try JSONDecoder().decode([TokenCase].self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("reference/siglip-tokens.json"))) }
    static func reference(_ model: String) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("reference/\(model).json")))
    }

    /// Every id sequence equal, string by string; a failure lists the first strings that differ.
    static func expectAllEqual(_ name: String, _ produce: (String) throws -> [Int], _ expected: (TokenCase) -> [Int]) throws {
        let cases = try Self.cases.get()
        #expect(cases.count >= 300)
        let wrong = try cases.filter { try produce($0.text) != expected($0) }
        #expect(wrong.isEmpty, "\(name): \(wrong.count) of \(cases.count) differ, first: \(wrong.prefix(3).map { ($0.text.prefix(40), try? produce($0.text), expected($0)) })")
    }

    @Test func sentencePieceUnigramEqualsTheLibrary() throws {
        let model = try SentencePieceModel(contentsOf: Fixtures.root.appendingPathComponent("tokenizers/unigram.model"))
        try Self.expectAllEqual("sentencepiece", { model.encode($0) }, \.sentencepiece)
    }

    @Test func sentencePieceBPEEqualsTheLibrary() throws {
        let model = try SentencePieceModel(contentsOf: Fixtures.root.appendingPathComponent("tokenizers/bpe.model"))
        #expect(model.algorithm == .bpe)
        try Self.expectAllEqual("sentencepiece BPE", { model.encode($0) }, \.sentencepieceBPE)
    }

    @Test func tokenizerJSONByteFallbackBPEEqualsTheLibrary() throws {
        let tokenizer = try HuggingFaceTokenizer(file: Fixtures.root.appendingPathComponent("tokenizers/bpe-byte-fallback.json"),
                                                 settings: TokenizerSettings([:]), contextLength: 64)
        try Self.expectAllEqual("tokenizers", { tokenizer.ids($0) }, \.tokenizers)
    }

    @Test func tokenizerJSONUnigramEqualsTheLibrary() throws {
        let tokenizer = try HuggingFaceTokenizer(file: Fixtures.root.appendingPathComponent("tokenizers/unigram.json"),
                                                 settings: TokenizerSettings(["pad_token": "<pad>"]), contextLength: 64)
        try Self.expectAllEqual("tokenizers Unigram", { tokenizer.ids($0) }, \.tokenizersUnigram)
    }

    /// A BERT-style `tokenizer.json` (BertNormalizer, BertPreTokenizer, WordPiece, BertProcessing) trained by
    /// `generate_wordpiece.py`: the library's ids for the same strings, plus two with words over the
    /// 100-character limit.
    @Test func tokenizerJSONWordPieceEqualsTheLibrary() throws {
        struct Golden: Decodable {
            struct Case: Decodable { let text: String; let ids: [Int] }
            let cases: [Case]
        }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("reference/wordpiece-tokens.json")))
        let tokenizer = try HuggingFaceTokenizer(file: Fixtures.root.appendingPathComponent("tokenizers/wordpiece.json"),
                                                 settings: TokenizerSettings(["pad_token": "[PAD]"]), contextLength: 64)
        #expect(golden.cases.count >= 300)
        let wrong = golden.cases.filter { tokenizer.ids($0.text) != $0.ids }
        #expect(wrong.isEmpty, "\(wrong.count) of \(golden.cases.count) differ, first: \(wrong.prefix(3).map { ($0.text.prefix(40), tokenizer.ids($0.text), $0.ids) })")
        // Padded and cut as the processors are: [CLS] … [SEP], then [PAD] to 64.
        let padded = try tokenizer.encode("a blue house")
        #expect(padded.count == 64 && padded.prefix(7) == golden.cases[0].ids[...] && padded.last == tokenizer.padToken)
    }

    @Test func siglipTokenizerEqualsTheProcessor() throws {
        let tokenizer = try SiglipModel.tokenizer(folder: Fixtures.model("tiny-siglip"), contextLength: 64)
        #expect(tokenizer is SiglipTokenizer)
        try Self.expectAllEqual("tiny-siglip", tokenizer.encode, \.tinySiglip)
    }

    @Test func siglip2TokenizerEqualsTheProcessor() throws {
        let tokenizer = try SiglipModel.tokenizer(folder: Fixtures.model("tiny-siglip2"), contextLength: 64)
        #expect(tokenizer is HuggingFaceTokenizer)
        try Self.expectAllEqual("tiny-siglip2", tokenizer.encode, \.tinySiglip2)
    }

    /// Text and image vectors within cosine 0.99999 of transformers' (float32 reference on the stored
    /// weights), and the sigmoid probabilities of six labels within 1e-5.
    @Test(arguments: Fixtures.siglipModels)
    func vectorsAndProbabilitiesEqualTheReference(_ name: String) throws {
        let reference = try Self.reference(name)
        let model = try ModelFamily.load(folder: Fixtures.model(name))
        #expect(model.family == .siglip)
        for text in reference.texts {
            #expect(try model.tokens(for: text.text) == text.ids, "\(text.text.prefix(40))")
            let vector = try model.embed(tokens: text.ids)
            #expect(cosine(vector, text.vector) >= 0.99999, "\(name) text \(text.text.prefix(40)): \(cosine(vector, text.vector))")
        }
        let batch = try model.embed(tokenBatch: reference.texts.prefix(5).map(\.ids))
        for (vector, text) in zip(batch, reference.texts) { #expect(cosine(vector, text.vector) >= 0.99999) }

        let labels = try model.embed(texts: reference.labels)
        #expect(reference.images.count == Fixtures.imageFiles.count)
        for image in reference.images {
            let vector = model.embed(image: try model.imageDecoder(exact: true).decode(fileAt: Fixtures.image(image.file)).rgb())
            #expect(cosine(vector, image.vector) >= 0.99999, "\(name) \(image.file): \(cosine(vector, image.vector))")
            let probabilities = model.labelProbabilities(image: vector, labels: labels)
            let worst = zip(probabilities, image.probabilities).map { abs($0 - $1) }.max() ?? 1
            #expect(worst <= 1e-5, "\(name) \(image.file): \(probabilities) against \(image.probabilities)")
        }
    }

    /// The 8-bit mode on SigLIP, as on CLIP: every text and image vector within cosine 0.995 of the
    /// float32 reference, one by one and batched (the attention-pooling head included). Runs where the
    /// processor has AVX-512 VNNI.
    @Test(.enabled(if: ProductKernel.int8.isSupported), arguments: Fixtures.siglipModels)
    func int8VectorsStayCloseToTheReference(_ name: String) throws {
        let reference = try Self.reference(name)
        let model = try ModelFamily.load(folder: Fixtures.model(name), kernel: .int8)
        var worst = 1.0
        let texts = try model.embed(tokenBatch: reference.texts.map(\.ids))
        for (text, batched) in zip(reference.texts, texts) {
            worst = min(worst, cosine(try model.embed(tokens: text.ids), text.vector), cosine(batched, text.vector))
        }
        let images = try reference.images.map { try model.imageDecoder(exact: true).decode(fileAt: Fixtures.image($0.file)).rgb() }
        let batched = model.embed(images: images)
        for (index, image) in reference.images.enumerated() {
            worst = min(worst, cosine(model.embed(image: images[index]), image.vector), cosine(batched[index], image.vector))
        }
        #expect(worst >= 0.995, "\(name): lowest cosine \(worst)")
        #expect(worst < 0.99999, "\(name): lowest cosine \(worst); rounding to 8 bits must show")
    }

    @Test func aTextWithNothingToEmbedIsRefused() throws {
        let model = try ModelFamily.load(folder: Fixtures.model("tiny-siglip"))
        for text in ["", "   ", "!!! ???"] {
            #expect(throws: CLIPError.emptyText) { try model.tokens(for: text) }
        }
        #expect(throws: CLIPError.self) { try model.embed(tokenBatch: [[1, 2, 3]]) }
    }

    /// A tokenizer.json that is not JSON, or names a part Loupe does not run, is refused with the name of
    /// that part, never read as something else.
    @Test func unsupportedOrDamagedTokenizerJSONIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tokenizer-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = try String(contentsOf: Fixtures.model("tiny-siglip2").appendingPathComponent("tokenizer.json"), encoding: .utf8)
        let cases: [(String, String)] = [
            ("{", "not a JSON object"),
            (original.replacingOccurrences(of: #""type": "BPE""#, with: #""type": "WordLevel""#), "WordLevel"),
            (original.replacingOccurrences(of: #""type": "Lowercase""#, with: #""type": "Precompiled""#), "Precompiled"),
            (original.replacingOccurrences(of: #""type": "TemplateProcessing""#, with: #""type": "RobertaProcessing""#), "RobertaProcessing"),
            (original.replacingOccurrences(of: #""<pad>""#, with: #""<nothing>""#), "pad token"),
            (try String(contentsOf: Fixtures.root.appendingPathComponent("tokenizers/wordpiece.json"), encoding: .utf8)
                .replacingOccurrences(of: #""unk_token": "[UNK]""#, with: #""unk_token": "[NOPE]""#), "unknown token [NOPE]"),
        ]
        for (text, expected) in cases {
            #expect(text != original)
            try Data(text.utf8).write(to: folder.appendingPathComponent("tokenizer.json"))
            #expect { try HuggingFaceTokenizer(folder: folder, contextLength: 64) } throws: { error in
                (error as? CLIPError)?.description.contains(expected) ?? false
            }
        }
    }

    @Test func damagedSentencePieceFilesAreRefused() throws {
        let bytes = try [UInt8](Data(contentsOf: Fixtures.root.appendingPathComponent("tokenizers/unigram.model")))
        for damaged in [Array(bytes.prefix(1000)), [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], Array("not a model".utf8), []] {
            #expect(throws: CLIPError.self) { try SentencePieceModel(serialized: damaged, name: "spiece.model") }
        }
    }
}
