import Foundation

/// Turns text into token ids the way CLIP was trained: OpenAI's `simple_tokenizer` (text clean-up,
/// lowercase, the CLIP split pattern, byte-level BPE with `</w>` word ends, start and end tokens).
public protocol Tokenizer: Sendable {
    /// Token ids with the start and end tokens, at most `contextLength` long, the end token always last.
    func encode(_ text: String) throws -> [Int]
    var contextLength: Int { get }
}

public final class CLIPTokenizer: Tokenizer, @unchecked Sendable {
    public let contextLength: Int
    public let startToken: Int
    public let endToken: Int
    private let vocabulary: [String: Int]
    private let mergeRanks: [MergePair: Int]
    private let byteEncoder: [String]  // byte value → the printable character standing for it
    private let cleaner: TextCleaner
    private var cache: [String: [Int]] = [:]
    private let cacheLock = NSLock()

    struct MergePair: Hashable {
        let first: String
        let second: String
    }

    /// The spellings of the special tokens that OpenAI's tokenizer recognises inside text.
    static let startSpelling = "<start_of_text>"
    static let endSpelling = "<end_of_text>"

    public init(vocabulary: [String: Int], merges: [(String, String)], contextLength: Int = 77) throws {
        guard contextLength >= 2 else { throw CLIPError.invalidTokenizer("context length \(contextLength) is below 2") }
        guard let start = vocabulary["<|startoftext|>"], let end = vocabulary["<|endoftext|>"] else {
            throw CLIPError.invalidTokenizer("the vocabulary has no <|startoftext|> and <|endoftext|> tokens")
        }
        self.vocabulary = vocabulary
        self.contextLength = contextLength
        startToken = start
        endToken = end
        var ranks = [MergePair: Int](minimumCapacity: merges.count)
        for (rank, merge) in merges.enumerated() where ranks[MergePair(first: merge.0, second: merge.1)] == nil {
            ranks[MergePair(first: merge.0, second: merge.1)] = rank
        }
        mergeRanks = ranks
        byteEncoder = ByteEncoding.table
        cleaner = try TextCleaner()
        // Every single byte must be in the vocabulary, or some text could not be encoded.
        if let missing = byteEncoder.first(where: { vocabulary[$0] == nil && vocabulary[$0 + "</w>"] == nil }) {
            throw CLIPError.invalidTokenizer("the vocabulary lacks the byte token \(missing)")
        }
    }

    /// Loads `vocab.json` + `merges.txt`, or `tokenizer.json`, from a model folder.
    public convenience init(folder: URL, contextLength: Int = 77) throws {
        let vocabURL = folder.appendingPathComponent("vocab.json")
        let mergesURL = folder.appendingPathComponent("merges.txt")
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        let files = FileManager.default
        if files.fileExists(atPath: vocabURL.path) && files.fileExists(atPath: mergesURL.path) {
            guard let vocabulary = try? JSONDecoder().decode([String: Int].self, from: Data(contentsOf: vocabURL)) else {
                throw CLIPError.invalidTokenizer("vocab.json is not a JSON object of token ids")
            }
            guard let text = try? String(contentsOf: mergesURL, encoding: .utf8) else {
                throw CLIPError.invalidTokenizer("merges.txt is not UTF-8 text")
            }
            try self.init(vocabulary: vocabulary, merges: Self.parseMerges(text.split(separator: "\n").map(String.init)),
                          contextLength: contextLength)
        } else if files.fileExists(atPath: tokenizerURL.path) {
            let (vocabulary, merges) = try Self.readTokenizerJSON(tokenizerURL)
            try self.init(vocabulary: vocabulary, merges: merges, contextLength: contextLength)
        } else {
            throw CLIPError.missingFile(vocabURL.path + " (or tokenizer.json)")
        }
    }

    static func parseMerges(_ lines: [String]) throws -> [(String, String)] {
        try lines.enumerated().compactMap { number, line in
            if line.hasPrefix("#version") || line.isEmpty { return nil }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw CLIPError.invalidTokenizer("merge rule on line \(number + 1) is not two symbols") }
            return (String(parts[0]), String(parts[1]))
        }
    }

    private static func readTokenizerJSON(_ url: URL) throws -> ([String: Int], [(String, String)]) {
        guard let data = try? Data(contentsOf: url),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let model = root["model"] as? [String: Any],
            let vocab = model["vocab"] as? [String: Any],
            let merges = model["merges"] as? [Any]
        else { throw CLIPError.invalidTokenizer("tokenizer.json has no BPE model with vocab and merges") }
        var vocabulary = [String: Int]()
        for (token, id) in vocab {
            guard let id = (id as? NSNumber)?.intValue else { throw CLIPError.invalidTokenizer("token \(token) has no integer id") }
            vocabulary[token] = id
        }
        // Merges are "a b" strings in older files and ["a", "b"] pairs in newer ones.
        let lines = try merges.map { merge -> String in
            if let line = merge as? String { return line }
            if let pair = merge as? [String], pair.count == 2 { return pair.joined(separator: " ") }
            throw CLIPError.invalidTokenizer("tokenizer.json has a malformed merge rule")
        }
        return (vocabulary, try parseMerges(lines))
    }

    public func encode(_ text: String) throws -> [Int] {
        let cleaned = cleaner.clean(text)
        var ids = [startToken]
        for piece in PreTokenizer.split(cleaned) {
            switch piece {
            case Self.startSpelling: ids.append(startToken)
            case Self.endSpelling: ids.append(endToken)
            default: ids.append(contentsOf: try bpe(piece))
            }
        }
        ids.append(endToken)
        if ids.count > contextLength {
            ids.removeLast(ids.count - contextLength)
            ids[contextLength - 1] = endToken
        }
        return ids
    }

    /// Byte-level BPE of one pre-tokenized piece: apply the lowest-ranked merge until none applies.
    func bpe(_ piece: String) throws -> [Int] {
        cacheLock.lock()
        if let cached = cache[piece] {
            cacheLock.unlock()
            return cached
        }
        cacheLock.unlock()

        var word = Array(piece.utf8).map { byteEncoder[Int($0)] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(word.count - 1) {
                if let rank = mergeRanks[MergePair(first: word[i], second: word[i + 1])], rank < (best?.rank ?? .max) {
                    best = (rank, i)
                }
            }
            guard let best else { break }
            let first = word[best.index]
            let second = word[best.index + 1]
            // Merge every occurrence of the pair, left to right, as the reference does.
            var merged = [String]()
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i < word.count - 1 && word[i] == first && word[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        let ids = try word.map { symbol -> Int in
            guard let id = vocabulary[symbol] else { throw CLIPError.invalidTokenizer("symbol \(symbol) is not in the vocabulary") }
            return id
        }
        cacheLock.lock()
        if cache.count > 50_000 { cache.removeAll(keepingCapacity: true) }
        cache[piece] = ids
        cacheLock.unlock()
        return ids
    }
}

/// GPT-2's reversible mapping of bytes to printable characters, so BPE works on text.
enum ByteEncoding {
    static let table: [String] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var next = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            codes.append(256 + next)
            next += 1
        }
        var table = [String](repeating: "", count: 256)
        for (byte, code) in zip(printable, codes) { table[byte] = String(UnicodeScalar(UInt32(code))!) }
        return table
    }()
}
