import Foundation

/// The ids a SigLIP text tower takes, from transformers' `SiglipTokenizer` called as SigLIP's processor is
/// (`padding="max_length", max_length=64, truncation=True`): the special tokens `</s>` and `<unk>` are split
/// out of the text where written; each other part is lowercased, loses ASCII punctuation and extra white
/// space, and is encoded by the SentencePiece model (after `<unk>`, whose pieces are dropped, as the
/// reference does to keep the model from seeing a text start); then `</s>` ends the ids, which are cut to
/// the context with the end kept last and padded with `</s>`.
public final class SiglipTokenizer: Tokenizer, @unchecked Sendable {
    public let contextLength: Int
    public let endToken: Int
    public let padToken: Int
    let model: SentencePieceModel
    private let unknownText = "<unk>"
    private let unknownPieces: Int
    private let specialTokens: [(text: String, id: Int)]
    private let lowercase: Bool

    /// `specialTokens` are the tokens split out of the text where written (`tokenizer_config.json`'s
    /// added tokens; `</s>` and `<unk>` when it names none).
    public init(model: SentencePieceModel, contextLength: Int = 64, lowercase: Bool = true, specialTokens: [String] = []) throws {
        guard contextLength >= 2 else { throw CLIPError.invalidTokenizer("context length \(contextLength) is below 2") }
        guard let end = model.id(of: "</s>"), let unknown = model.id(of: unknownText) else {
            throw CLIPError.invalidTokenizer("the SentencePiece model has no </s> and <unk> pieces")
        }
        self.model = model
        self.contextLength = contextLength
        self.lowercase = lowercase
        endToken = end
        padToken = end
        unknownPieces = model.encode(unknownText).count
        let named = specialTokens.compactMap { text in model.id(of: text).map { (text, $0) } }
        self.specialTokens = named.isEmpty ? [("</s>", end), (unknownText, unknown)] : named
    }

    /// Reads `spiece.model` and the lowercasing choice of `tokenizer_config.json` from a model folder.
    public convenience init(folder: URL, contextLength: Int) throws {
        let settings = TokenizerSettings(folder: folder)
        let added = (settings.values["added_tokens_decoder"] as? [String: [String: Any]] ?? [:]).values.compactMap { $0["content"] as? String }
        try self.init(model: SentencePieceModel(contentsOf: folder.appendingPathComponent("spiece.model")),
                      contextLength: contextLength, lowercase: settings.bool("do_lower_case") ?? true, specialTokens: added)
    }

    public func encode(_ text: String) throws -> [Int] {
        var ids = [Int]()
        // The reference prefixes `▁` (its own spaces become plain spaces) before splitting out special tokens.
        let parts = SpecialTokenSplitter.split("▁" + text.replacingScalars("▁", with: " "), specialTokens)
        for (index, part) in parts.enumerated() {
            switch part {
            case .special(let id): ids.append(id)
            case .text(let text):
                var pieces = model.encode(unknownText + canonical(text))
                pieces.removeFirst(min(unknownPieces, pieces.count))
                // A lone `▁` before a special token is dropped, as the reference drops it.
                if index == 0, pieces == [model.id(of: "▁")].compactMap({ $0 }), parts.count > 1 { pieces = [] }
                ids += pieces
            }
        }
        ids = Array(ids.prefix(contextLength - 1))
        if ids.last != endToken { ids.append(endToken) }
        return ids + Array(repeating: padToken, count: contextLength - ids.count)
    }

    /// `SiglipTokenizer.canonicalize_text`: lowercase, ASCII punctuation removed, white space collapsed and trimmed.
    func canonical(_ text: String) -> String {
        let lowered = lowercase ? PythonText.lowercased(text) : text
        var scalars = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in lowered.unicodeScalars where !PythonText.isASCIIPunctuation(scalar) {
            if PythonText.isSpace(scalar) {
                pendingSpace = true
            } else {
                if pendingSpace && !scalars.isEmpty { scalars.append(" ") }
                pendingSpace = false
                scalars.append(scalar)
            }
        }
        return String(scalars)
    }
}

/// Splits text around special tokens written in it (longest first at each position), as transformers'
/// added-token matching does before any normalisation.
enum SpecialTokenSplitter {
    enum Part: Equatable {
        case text(String)
        case special(Int)
    }

    /// Matching is on UTF-8 bytes, as the libraries match, not on Swift's grapheme clusters (a token
    /// followed by a combining mark is still the token).
    static func split(_ text: String, _ tokens: [(text: String, id: Int)]) -> [Part] {
        let sorted = tokens.map { (bytes: Array($0.text.utf8), id: $0.id) }.filter { !$0.bytes.isEmpty }
            .sorted { $0.bytes.count > $1.bytes.count }
        let bytes = Array(text.utf8)
        var parts = [Part]()
        var current = 0
        var pending = 0
        while current < bytes.count {
            if let token = sorted.first(where: { bytes[current...].starts(with: $0.bytes) }) {
                if pending < current { parts.append(.text(String(decoding: bytes[pending..<current], as: UTF8.self))) }
                parts.append(.special(token.id))
                current += token.bytes.count
                pending = current
            } else {
                current += 1
            }
        }
        if pending < bytes.count { parts.append(.text(String(decoding: bytes[pending...], as: UTF8.self))) }
        return parts
    }
}

/// Python's string rules where tokenizers rely on them.
enum PythonText {
    /// `str.isspace`: Unicode white space plus the four ASCII separators 0x1C–0x1F.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    /// `string.punctuation`.
    static func isASCIIPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars.contains(scalar)
    }

    /// `str.lower`: full lowercase mappings, with Greek capital sigma final (ς) at the end of a word.
    static func lowercased(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (index, scalar) in scalars.enumerated() {
            if scalar == "\u{03A3}" {
                out.append(isFinalSigma(scalars, at: index) ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }

    /// Preceded by a cased letter and not followed by one (case-ignorable characters skipped both ways).
    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        let before = scalars[..<index].last { !$0.properties.isCaseIgnorable }
        guard let before, before.properties.isCased else { return false }
        let after = scalars[(index + 1)...].first { !$0.properties.isCaseIgnorable }
        return !(after?.properties.isCased ?? false)
    }
}

/// `tokenizer_config.json`, read for the few settings that change ids.
struct TokenizerSettings {
    let values: [String: Any]

    init(folder: URL) {
        let url = folder.appendingPathComponent("tokenizer_config.json")
        values = (try? Data(contentsOf: url)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
    }

    init(_ values: [String: Any]) { self.values = values }

    func bool(_ key: String) -> Bool? { values[key] as? Bool }
    func string(_ key: String) -> String? { values[key] as? String }
}
