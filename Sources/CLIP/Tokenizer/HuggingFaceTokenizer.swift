import Foundation

/// A Hugging Face `tokenizer.json` run as the `tokenizers` library runs it, for the parts real image–text
/// checkpoints use (Gemma's, in SigLIP 2; BERT's): added tokens split out of the raw text, the normalisers
/// (Sequence, Lowercase, Replace, Prepend, Strip, NFC/NFD/NFKC/NFKD, BertNormalizer), the pre-tokenisers
/// (Split on a string, Metaspace, BertPreTokenizer, WhitespaceSplit, Punctuation, Sequence), a BPE model
/// with byte fallback and fused unknowns, a Unigram model or a WordPiece model, and a template, BERT or
/// RoBERTa post-processor.
/// `encode` gives what transformers' processor gives with `padding="max_length", truncation=True`: the
/// text cut so that it fits with its special tokens, then padded on the tokenizer's side.
public final class HuggingFaceTokenizer: Tokenizer, @unchecked Sendable {
    public let contextLength: Int
    let normalizers: [Normalizer]
    let preTokenizers: [PreTokenizer]
    let model: Model
    let addedTokens: [(text: String, id: Int)]
    /// The template for one text: special-token ids around `nil`, which stands for the text's ids.
    let template: [Int?]
    public let padToken: Int
    let padsOnTheLeft: Bool

    /// The model a `tokenizer.json` names: BPE, or Unigram (SentencePiece's segmentation, text normalised
    /// by the file's own normalisers).
    enum Model {
        case bpe(BPEModel)
        case unigram(SentencePieceModel, vocabulary: [String: Int])
        case wordPiece(WordPieceModel)

        func encode(_ word: String) -> [Int] {
            switch self {
            case .bpe(let model): model.encode(word)
            case .unigram(let model, _): model.encode(word)
            case .wordPiece(let model): model.encode(word)
            }
        }

        var vocabulary: [String: Int] {
            switch self {
            case .bpe(let model): model.vocabulary
            case .unigram(_, let vocabulary): vocabulary
            case .wordPiece(let model): model.vocabulary
            }
        }

        init(_ object: [String: Any]) throws {
            if object["type"] as? String == "WordPiece" {
                self = .wordPiece(try WordPieceModel(object))
                return
            }
            guard object["type"] as? String == "Unigram" else {
                self = .bpe(try BPEModel(object))
                return
            }
            guard let entries = object["vocab"] as? [[Any]], let unknown = object["unk_id"] as? Int, entries.indices.contains(unknown) else {
                throw CLIPError.invalidTokenizer("tokenizer.json: the Unigram model needs a vocabulary and an unknown token")
            }
            let pieces = try entries.enumerated().map { id, entry -> SentencePieceModel.Piece in
                guard entry.count == 2, let text = entry[0] as? String, let score = (entry[1] as? NSNumber)?.doubleValue else {
                    throw CLIPError.invalidTokenizer("tokenizer.json: Unigram entry \(id) is not [piece, score]")
                }
                return SentencePieceModel.Piece(text: text, score: Float(score), type: id == unknown ? .unknown : .normal)
            }
            let model = try SentencePieceModel(pieces: pieces, algorithm: .unigram, byteFallback: object["byte_fallback"] as? Bool ?? false,
                                               normalizer: .identity, name: "tokenizer.json")
            self = .unigram(model, vocabulary: Dictionary(pieces.enumerated().map { ($1.text, $0) }, uniquingKeysWith: { first, _ in first }))
        }
    }

    enum Normalizer {
        case lowercase
        case replace(String, with: String)
        case prepend(String)
        case strip(left: Bool, right: Bool)
        case unicode(String)  // NFC, NFD, NFKC or NFKD
        case bert(cleanText: Bool, spaceChineseCharacters: Bool, stripAccents: Bool, lowercase: Bool)
    }

    enum PreTokenizer {
        case split(String, behavior: String)
        case metaspace(replacement: String, prependScheme: String, split: Bool)
        /// BERT's: split at white space (dropped) and around each punctuation character.
        case bert
        /// At white space, dropped.
        case whitespaceSplit
        /// Around punctuation characters, as `Split` treats its matches.
        case punctuation(behavior: String)
    }

    /// Reads `tokenizer.json` and `tokenizer_config.json` (the class, pad token and padding side) from a folder.
    public convenience init(folder: URL, contextLength: Int) throws {
        try self.init(file: folder.appendingPathComponent("tokenizer.json"), settings: TokenizerSettings(folder: folder),
                      contextLength: contextLength)
    }

    init(file url: URL, settings: TokenizerSettings, contextLength: Int) throws {
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CLIPError.invalidTokenizer("\(url.lastPathComponent) is not a JSON object")
        }
        self.contextLength = contextLength
        model = try Model(json["model"] as? [String: Any] ?? [:])
        var normalizers = try Self.normalizers(json["normalizer"])
        // transformers' Siglip2Tokenizer lowercases before the file's own normaliser, whatever the file says.
        let tokenizerClass = settings.string("tokenizer_class")
        if tokenizerClass == "Siglip2Tokenizer" { normalizers.insert(.lowercase, at: 0) }
        self.normalizers = normalizers
        preTokenizers = try Self.preTokenizers(json["pre_tokenizer"])
        let added = (json["added_tokens"] as? [[String: Any]] ?? []).compactMap { token -> (String, Int)? in
            guard let text = token["content"] as? String, let id = token["id"] as? Int else { return nil }
            return (text, id)
        }
        addedTokens = added
        let ids = Dictionary(added, uniquingKeysWith: { first, _ in first }).merging(model.vocabulary, uniquingKeysWith: { first, _ in first })
        template = try Self.template(json["post_processor"], ids: ids)
        guard template.filter({ $0 != nil }).count < contextLength else {
            throw CLIPError.invalidTokenizer("the special tokens leave no room for text in \(contextLength) positions")
        }
        let padText = settings.string("pad_token") ?? "<pad>"
        guard let pad = ids[padText] else { throw CLIPError.invalidTokenizer("the pad token \(padText) is not in the vocabulary") }
        padToken = pad
        // The file's side, else the class's default in transformers (left for Gemma's and Llama's families).
        let leftByDefault = ["Siglip2Tokenizer", "GemmaTokenizer", "GemmaTokenizerFast", "LlamaTokenizer", "LlamaTokenizerFast"]
        let side = settings.string("padding_side") ?? (leftByDefault.contains(tokenizerClass ?? "") ? "left" : "right")
        padsOnTheLeft = side == "left"
    }

    public func encode(_ text: String) throws -> [Int] {
        let full = ids(text, limit: contextLength - template.filter { $0 != nil }.count)
        let padding = Array(repeating: padToken, count: contextLength - full.count)
        return padsOnTheLeft ? padding + full : full + padding
    }

    /// The ids of `text` with the template's special tokens, its own ids cut to `limit`: what the
    /// library's `encode` gives (no limit) before padding.
    func ids(_ text: String, limit: Int = .max) -> [Int] {
        var ids = [Int]()
        for part in SpecialTokenSplitter.split(text, addedTokens) {
            switch part {
            case .special(let id): ids.append(id)
            case .text(let text):
                for word in preTokenize(normalize(text)) { ids += model.encode(word) }
            }
        }
        ids = Array(ids.prefix(limit))
        return template.flatMap { $0.map { [$0] } ?? ids }
    }

    func normalize(_ text: String) -> String {
        normalizers.reduce(text) { text, normalizer in
            switch normalizer {
            // Each scalar's own lowercase, with no final-sigma rule (Rust's char::to_lowercase, not str's).
            case .lowercase: String(String.UnicodeScalarView(text.unicodeScalars.flatMap { $0.properties.lowercaseMapping.unicodeScalars }))
            case .replace(let pattern, let content): text.replacingScalars(pattern, with: content)
            case .prepend(let prefix): text.isEmpty ? text : prefix + text
            case .strip(let left, let right):
                String(String.UnicodeScalarView(text.unicodeScalars
                    .drop { left && $0.properties.isWhitespace }.reversed()
                    .drop { right && $0.properties.isWhitespace }.reversed()))
            case .unicode(let form):
                switch form {
                case "NFC": text.precomposedStringWithCanonicalMapping
                case "NFD": text.decomposedStringWithCanonicalMapping
                case "NFKC": text.precomposedStringWithCompatibilityMapping
                default: text.decomposedStringWithCompatibilityMapping
                }
            case .bert(let clean, let chinese, let stripAccents, let lowercase):
                Self.bertNormalize(text, clean: clean, chinese: chinese, stripAccents: stripAccents, lowercase: lowercase)
            }
        }
    }

    /// BertNormalizer, in the library's order: control characters dropped and white space made spaces;
    /// CJK ideographs spaced apart; accents stripped (NFD, then non-spacing marks dropped); lowercase.
    static func bertNormalize(_ text: String, clean: Bool, chinese: Bool, stripAccents: Bool, lowercase: Bool) -> String {
        var scalars = Array(text.unicodeScalars)
        if clean {
            scalars = scalars.compactMap { scalar in
                if scalar.value == 0 || scalar.value == 0xFFFD || (!["\t", "\n", "\r"].contains(scalar) && scalar.isOther) { return nil }
                return scalar.isBertWhitespace ? " " : scalar
            }
        }
        if chinese { scalars = scalars.flatMap { $0.isCJKIdeograph ? [" ", $0, " "] : [$0] } }
        if stripAccents {
            let decomposed = String(String.UnicodeScalarView(scalars)).decomposedStringWithCanonicalMapping
            scalars = decomposed.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase { scalars = scalars.flatMap { $0.properties.lowercaseMapping.unicodeScalars } }
        return String(String.UnicodeScalarView(scalars))
    }

    func preTokenize(_ text: String) -> [String] {
        preTokenizers.reduce([text]) { words, preTokenizer in
            words.flatMap { word -> [String] in
                switch preTokenizer {
                case .split(let pattern, let behavior): Self.split(word, on: pattern, behavior: behavior)
                case .metaspace(let replacement, let scheme, let split):
                    Self.metaspace(word, replacement: replacement, prependScheme: scheme, split: split)
                case .bert: Self.split(word, where: \.isBertWhitespace, behavior: "Removed").flatMap {
                    Self.split($0, where: \.isBertPunctuation, behavior: "Isolated")
                }
                case .whitespaceSplit: Self.split(word, where: \.isBertWhitespace, behavior: "Removed")
                case .punctuation(let behavior): Self.split(word, where: \.isBertPunctuation, behavior: behavior)
                }
            }
        }.filter { !$0.isEmpty }
    }

    /// `Split` with a string pattern: the matches become separate pieces, are dropped, or join a neighbour.
    static func split(_ text: String, on pattern: String, behavior: String) -> [String] {
        guard !pattern.isEmpty else { return [text] }
        return arrange(text.scalarPieces(around: pattern), behavior: behavior)
    }

    /// A split at every character the predicate matches (each one a match of its own).
    static func split(_ text: String, where matches: (Unicode.Scalar) -> Bool, behavior: String) -> [String] {
        var pieces = [(String, isMatch: Bool)](), run = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard matches(scalar) else {
                run.append(scalar)
                continue
            }
            if !run.isEmpty { pieces.append((String(run), false)) }
            run = String.UnicodeScalarView()
            pieces.append((String(scalar), true))
        }
        if !run.isEmpty { pieces.append((String(run), false)) }
        return arrange(pieces, behavior: behavior)
    }

    /// The pieces between matches and the matches, arranged as a `Split` behaviour says.
    private static func arrange(_ pieces: [(String, isMatch: Bool)], behavior: String) -> [String] {
        switch behavior {
        case "Removed": return pieces.filter { !$0.isMatch }.map(\.0)
        case "MergedWithPrevious":
            var out = [String]()
            for (piece, isMatch) in pieces {
                if isMatch, let last = out.popLast() { out.append(last + piece) } else { out.append(piece) }
            }
            return out
        case "MergedWithNext":
            var out = [String]()
            var pending = ""
            for (piece, isMatch) in pieces {
                if isMatch { pending += piece } else { out.append(pending + piece); pending = "" }
            }
            if !pending.isEmpty { out.append(pending) }
            return out
        case "Contiguous":
            var out = [(String, Bool)]()
            for (piece, isMatch) in pieces {
                if let last = out.last, last.1 == isMatch { out[out.count - 1].0 += piece } else { out.append((piece, isMatch)) }
            }
            return out.map(\.0)
        default: return pieces.map(\.0)  // Isolated
        }
    }

    /// `Metaspace`: spaces become the replacement character, which also starts the text as the scheme says.
    static func metaspace(_ text: String, replacement: String, prependScheme: String, split: Bool) -> [String] {
        var replaced = text.replacingScalars(" ", with: replacement)
        if prependScheme != "never" && !replaced.hasPrefix(replacement) { replaced = replacement + replaced }
        return split ? Self.split(replaced, on: replacement, behavior: "MergedWithNext") : [replaced]
    }

    private static func normalizers(_ value: Any?) throws -> [Normalizer] {
        guard let object = value as? [String: Any] else { return [] }
        switch object["type"] as? String {
        case "Sequence": return try (object["normalizers"] as? [Any] ?? []).flatMap(normalizers)
        case "Lowercase": return [.lowercase]
        case "Replace":
            guard let pattern = (object["pattern"] as? [String: Any])?["String"] as? String, let content = object["content"] as? String else {
                throw CLIPError.invalidTokenizer("tokenizer.json: a Replace normaliser with a regular expression is not supported")
            }
            return [.replace(pattern, with: content)]
        case "Prepend": return [.prepend(object["prepend"] as? String ?? "")]
        case "Strip": return [.strip(left: object["strip_left"] as? Bool ?? true, right: object["strip_right"] as? Bool ?? true)]
        case let form? where ["NFC", "NFD", "NFKC", "NFKD"].contains(form): return [.unicode(form)]
        case "BertNormalizer":
            let lowercase = object["lowercase"] as? Bool ?? true
            return [.bert(cleanText: object["clean_text"] as? Bool ?? true, spaceChineseCharacters: object["handle_chinese_chars"] as? Bool ?? true,
                          stripAccents: object["strip_accents"] as? Bool ?? lowercase, lowercase: lowercase)]
        case let type: throw CLIPError.invalidTokenizer("tokenizer.json: the normaliser \(type ?? "?") is not supported")
        }
    }

    private static func preTokenizers(_ value: Any?) throws -> [PreTokenizer] {
        guard let object = value as? [String: Any] else { return [] }
        switch object["type"] as? String {
        case "Sequence": return try (object["pretokenizers"] as? [Any] ?? []).flatMap(preTokenizers)
        case "Split":
            guard let pattern = (object["pattern"] as? [String: Any])?["String"] as? String, object["invert"] as? Bool != true else {
                throw CLIPError.invalidTokenizer("tokenizer.json: a Split with a regular expression or inverted is not supported")
            }
            return [.split(pattern, behavior: object["behavior"] as? String ?? "Isolated")]
        case "Metaspace":
            return [.metaspace(replacement: object["replacement"] as? String ?? "▁",
                               prependScheme: object["prepend_scheme"] as? String ?? "always", split: object["split"] as? Bool ?? true)]
        case "BertPreTokenizer": return [.bert]
        case "WhitespaceSplit": return [.whitespaceSplit]
        case "Punctuation": return [.punctuation(behavior: object["behavior"] as? String ?? "Isolated")]
        case let type: throw CLIPError.invalidTokenizer("tokenizer.json: the pre-tokeniser \(type ?? "?") is not supported")
        }
    }

    private static func template(_ value: Any?, ids: [String: Int]) throws -> [Int?] {
        guard let object = value as? [String: Any] else { return [nil] }
        // BERT's and RoBERTa's: the class token, the text, the separator, each as ["token", id].
        if ["BertProcessing", "RobertaProcessing"].contains(object["type"] as? String) {
            guard let cls = (object["cls"] as? [Any])?.last as? Int, let sep = (object["sep"] as? [Any])?.last as? Int else {
                throw CLIPError.invalidTokenizer("tokenizer.json: \(object["type"] ?? "?") needs cls and sep tokens with ids")
            }
            return [cls, nil, sep]
        }
        guard object["type"] as? String == "TemplateProcessing", let single = object["single"] as? [[String: Any]] else {
            throw CLIPError.invalidTokenizer("tokenizer.json: the post-processor \(object["type"] ?? "?") is not supported")
        }
        let specials = object["special_tokens"] as? [String: [String: Any]] ?? [:]
        return try single.flatMap { item -> [Int?] in
            if item["Sequence"] != nil { return [nil] }
            guard let name = (item["SpecialToken"] as? [String: Any])?["id"] as? String else { return [] }
            guard let tokenIDs = (specials[name]?["ids"] as? [Int]) ?? ids[name].map({ [$0] }) else {
                throw CLIPError.invalidTokenizer("tokenizer.json: the template's token \(name) has no id")
            }
            return tokenIDs
        }
    }
}

/// The byte-pair-encoding model of a `tokenizer.json`: each word starts as its characters (a character
/// outside the vocabulary as its UTF-8 byte tokens `<0xNN>` with byte fallback, else the unknown token,
/// a run of them fused into one); the adjacent pair with the best merge rank is merged until none is left.
struct BPEModel {
    let vocabulary: [String: Int]
    private let ranks: [Pair: (rank: Int, id: Int)]
    private let unknown: Int?
    private let byteFallback: Bool
    private let fuseUnknown: Bool
    private let ignoreMerges: Bool

    struct Pair: Hashable {
        let first: Int
        let second: Int
    }

    init(_ object: [String: Any]) throws {
        guard object["type"] as? String == "BPE" || (object["type"] == nil && object["merges"] != nil) else {
            throw CLIPError.invalidTokenizer("tokenizer.json: the model \(object["type"] ?? "?") is not supported (BPE and Unigram are)")
        }
        guard let vocabulary = object["vocab"] as? [String: Int] else { throw CLIPError.invalidTokenizer("tokenizer.json: the BPE model has no vocabulary") }
        guard (object["continuing_subword_prefix"] as? String ?? "").isEmpty, (object["end_of_word_suffix"] as? String ?? "").isEmpty else {
            throw CLIPError.invalidTokenizer("tokenizer.json: BPE word prefixes and suffixes are not supported")
        }
        self.vocabulary = vocabulary
        var ranks = [Pair: (rank: Int, id: Int)]()
        for (rank, merge) in (object["merges"] as? [Any] ?? []).enumerated() {
            let parts: [String]
            if let pair = merge as? [String] { parts = pair } else if let line = merge as? String {
                parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            } else { parts = [] }
            guard parts.count == 2, let first = vocabulary[parts[0]], let second = vocabulary[parts[1]],
                let merged = vocabulary[parts[0] + parts[1]]
            else { throw CLIPError.invalidTokenizer("tokenizer.json: merge \(rank) is not two tokens of the vocabulary") }
            let pair = Pair(first: first, second: second)
            if ranks[pair] == nil { ranks[pair] = (rank, merged) }
        }
        self.ranks = ranks
        unknown = (object["unk_token"] as? String).flatMap { vocabulary[$0] }
        byteFallback = object["byte_fallback"] as? Bool ?? false
        fuseUnknown = object["fuse_unk"] as? Bool ?? false
        ignoreMerges = object["ignore_merges"] as? Bool ?? false
    }

    func encode(_ word: String) -> [Int] {
        if ignoreMerges, let id = vocabulary[word] { return [id] }
        var symbols = [Int]()
        var previousUnknown = false
        for scalar in word.unicodeScalars {  // characters as the library counts them: Unicode scalars
            let text = String(scalar)
            if let id = vocabulary[text] {
                symbols.append(id)
                previousUnknown = false
            } else if byteFallback, case let bytes = text.utf8.map({ vocabulary[String(format: "<0x%02X>", $0)] }), bytes.allSatisfy({ $0 != nil }) {
                symbols += bytes.compactMap { $0 }
                previousUnknown = false
            } else if let unknown {
                if !(fuseUnknown && previousUnknown) { symbols.append(unknown) }
                previousUnknown = true
            }
        }
        return merged(symbols)
    }

    /// Applies the merges best rank first, leftmost among equals, as the library does: a heap of candidate
    /// pairs over a linked list of symbols, so a long text without pre-tokenisation (Gemma's) costs
    /// n log n, not n².
    private func merged(_ initial: [Int]) -> [Int] {
        guard initial.count > 1 else { return initial }
        var ids = initial
        var next = Array(1...initial.count)  // initial.count marks the end
        var previous = Array(-1..<(initial.count - 1))
        var alive = [Bool](repeating: true, count: initial.count)
        struct Candidate {
            let rank: Int
            let position: Int
            let first: Int
            let second: Int
            let merged: Int
        }
        var heap = BinaryHeap<Candidate> { ($0.rank, $0.position) < ($1.rank, $1.position) }
        func consider(_ left: Int) {
            let right = next[left]
            guard right < ids.count, let merge = ranks[Pair(first: ids[left], second: ids[right])] else { return }
            heap.push(Candidate(rank: merge.rank, position: left, first: ids[left], second: ids[right], merged: merge.id))
        }
        for index in 0..<(ids.count - 1) { consider(index) }
        while let candidate = heap.pop() {
            let left = candidate.position
            let right = next[left]
            // Skip candidates whose symbols have changed since they were found.
            guard alive[left], right < ids.count, ids[left] == candidate.first, ids[right] == candidate.second else { continue }
            ids[left] = candidate.merged
            alive[right] = false
            next[left] = next[right]
            if next[right] < ids.count { previous[next[right]] = left }
            if previous[left] >= 0 { consider(previous[left]) }
            consider(left)
        }
        return ids.indices.filter { alive[$0] }.map { ids[$0] }
    }
}

/// WordPiece, as BERT's tokenizers run it: each word is cut greedily into the longest pieces of the
/// vocabulary from its start (pieces after the first carry the `##` prefix); a word with a part no piece
/// covers, or longer than `max_input_chars_per_word` characters, is the unknown token.
struct WordPieceModel {
    let vocabulary: [String: Int]
    private let unknown: Int
    private let prefix: String
    private let maximumCharacters: Int

    init(_ object: [String: Any]) throws {
        guard let vocabulary = object["vocab"] as? [String: Int] else { throw CLIPError.invalidTokenizer("tokenizer.json: the WordPiece model has no vocabulary") }
        let unknownText = object["unk_token"] as? String ?? "[UNK]"
        guard let unknown = vocabulary[unknownText] else {
            throw CLIPError.invalidTokenizer("tokenizer.json: the WordPiece unknown token \(unknownText) is not in the vocabulary")
        }
        self.vocabulary = vocabulary
        self.unknown = unknown
        prefix = object["continuing_subword_prefix"] as? String ?? "##"
        maximumCharacters = object["max_input_chars_per_word"] as? Int ?? 100
    }

    func encode(_ word: String) -> [Int] {
        let scalars = Array(word.unicodeScalars)
        guard scalars.count <= maximumCharacters else { return [unknown] }
        var ids = [Int](), start = 0
        while start < scalars.count {
            var end = scalars.count, found: Int?
            while start < end {
                let piece = (start > 0 ? prefix : "") + String(String.UnicodeScalarView(scalars[start..<end]))
                if let id = vocabulary[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unknown] }
            ids.append(found)
            start = end
        }
        return ids
    }
}

extension Unicode.Scalar {
    /// White space as the tokenizers library's BERT parts count it (Rust's `char::is_whitespace`, which
    /// includes tab, line feed and carriage return).
    var isBertWhitespace: Bool { properties.isWhitespace }

    /// Categories Cc, Cf and Co: what BertNormalizer's clean-up drops (tab, line feed and carriage return
    /// aside). Its library's `is_other` leaves unassigned code points (Cn) in, whatever its comment says.
    var isOther: Bool { [.control, .format, .privateUse].contains(properties.generalCategory) }

    /// ASCII punctuation, or any character of a punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    var isBertPunctuation: Bool {
        if isASCII, (0x21...0x2F).contains(value) || (0x3A...0x40).contains(value) || (0x5B...0x60).contains(value) || (0x7B...0x7E).contains(value) {
            return true
        }
        return [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
                .otherPunctuation].contains(properties.generalCategory)
    }

    /// The CJK ideograph blocks BertNormalizer puts spaces around.
    var isCJKIdeograph: Bool {
        [0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF,
         0x2F800...0x2FA1F].contains { $0.contains(value) }
    }
}

extension String {
    /// The parts of the string between the matches of `pattern` and the matches themselves, matched on
    /// Unicode scalars as the tokenizer libraries match (Swift's own string search compares grapheme
    /// clusters, so it would not find a space that a combining mark follows).
    func scalarPieces(around pattern: String) -> [(String, isMatch: Bool)] {
        let scalars = Array(unicodeScalars), target = Array(pattern.unicodeScalars)
        guard !target.isEmpty else { return [(self, false)] }
        var pieces = [(String, isMatch: Bool)]()
        var start = 0, index = 0
        while index + target.count <= scalars.count {
            if scalars[index..<(index + target.count)].elementsEqual(target) {
                if start < index { pieces.append((String(String.UnicodeScalarView(scalars[start..<index])), false)) }
                pieces.append((pattern, true))
                index += target.count
                start = index
            } else {
                index += 1
            }
        }
        if start < scalars.count { pieces.append((String(String.UnicodeScalarView(scalars[start...])), false)) }
        return pieces
    }

    /// Every match of `pattern`, found on Unicode scalars, replaced by `content`.
    func replacingScalars(_ pattern: String, with content: String) -> String {
        scalarPieces(around: pattern).map { $0.isMatch ? content : $0.0 }.joined()
    }
}
