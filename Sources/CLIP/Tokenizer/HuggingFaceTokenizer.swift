import Foundation

/// A Hugging Face `tokenizer.json` run as the `tokenizers` library runs it, for the parts real image–text
/// checkpoints use (Gemma's, in SigLIP 2): added tokens split out of the raw text, the normalisers
/// (Sequence, Lowercase, Replace, Prepend, Strip, NFC/NFD/NFKC/NFKD), the pre-tokenisers (Split on a string,
/// Metaspace, Sequence), a BPE model with byte fallback and fused unknowns or a Unigram model, and a
/// template post-processor.
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

        func encode(_ word: String) -> [Int] {
            switch self {
            case .bpe(let model): model.encode(word)
            case .unigram(let model, _): model.encode(word)
            }
        }

        var vocabulary: [String: Int] {
            switch self {
            case .bpe(let model): model.vocabulary
            case .unigram(_, let vocabulary): vocabulary
            }
        }

        init(_ object: [String: Any]) throws {
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
    }

    enum PreTokenizer {
        case split(String, behavior: String)
        case metaspace(replacement: String, prependScheme: String, split: Bool)
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
            }
        }
    }

    func preTokenize(_ text: String) -> [String] {
        preTokenizers.reduce([text]) { words, preTokenizer in
            words.flatMap { word -> [String] in
                switch preTokenizer {
                case .split(let pattern, let behavior): Self.split(word, on: pattern, behavior: behavior)
                case .metaspace(let replacement, let scheme, let split):
                    Self.metaspace(word, replacement: replacement, prependScheme: scheme, split: split)
                }
            }
        }.filter { !$0.isEmpty }
    }

    /// `Split` with a string pattern: the matches become separate pieces, are dropped, or join a neighbour.
    static func split(_ text: String, on pattern: String, behavior: String) -> [String] {
        guard !pattern.isEmpty else { return [text] }
        let pieces = text.scalarPieces(around: pattern)
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
        case let type: throw CLIPError.invalidTokenizer("tokenizer.json: the pre-tokeniser \(type ?? "?") is not supported")
        }
    }

    private static func template(_ value: Any?, ids: [String: Int]) throws -> [Int?] {
        guard let object = value as? [String: Any] else { return [nil] }
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
