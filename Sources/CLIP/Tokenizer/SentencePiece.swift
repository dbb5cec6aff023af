import Foundation

/// A SentencePiece model (`spiece.model`: a `ModelProto` protobuf) encoding text as the `sentencepiece`
/// library does: the normaliser's precompiled character map (such as `nmt_nfkc`), white space as `▁` with a
/// dummy prefix, then the model's segmentation (Unigram: the best-scoring one, Viterbi over the piece
/// scores; BPE: adjacent pieces merged best score first), unknown characters as the unknown piece (a run of
/// them as one) or as byte pieces with byte fallback.
public struct SentencePieceModel: Sendable {
    enum PieceType: Int {
        case normal = 1, unknown, control, userDefined, unused, byte
    }

    struct Piece {
        let text: String
        let score: Float
        let type: PieceType
    }

    enum Algorithm: Int {
        case unigram = 1, bpe = 2
    }

    let pieces: [Piece]
    let algorithm: Algorithm
    /// Pieces a segmentation may use (normal and user-defined), by their UTF-8 bytes.
    private let segmentable: [[UInt8]: Int]
    private let longestPiece: Int
    private let idsByText: [String: Int]
    let unknownID: Int
    private let unknownScore: Float
    private let userDefinedScorePerByte: Float
    private let byteFallback: Bool
    let normalizer: SentencePieceNormalizer

    public init(contentsOf url: URL) throws {
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        try self.init(serialized: [UInt8](data), name: url.lastPathComponent)
    }

    init(serialized bytes: [UInt8], name: String) throws {
        func invalid(_ reason: String) -> CLIPError { .invalidTokenizer("\(name): \(reason)") }
        var pieces = [Piece]()
        var modelType = 1, byteFallback = false, suffixWhitespace = false
        var normalizer = SentencePieceNormalizer()
        do {
            var model = ProtobufReader(bytes, range: 0..<bytes.count)
            while let (field, wire) = try model.nextField() {
                switch (field, wire) {
                case (1, 2): pieces.append(try Self.piece(ProtobufReader(bytes, range: try model.lengthDelimited())))
                case (2, 2):
                    var trainer = ProtobufReader(bytes, range: try model.lengthDelimited())
                    while let (field, wire) = try trainer.nextField() {
                        switch (field, wire) {
                        case (3, 0): modelType = Int(try trainer.varint())
                        case (24, 0): suffixWhitespace = try trainer.varint() != 0
                        case (35, 0): byteFallback = try trainer.varint() != 0
                        default: try trainer.skip(wire)
                        }
                    }
                case (3, 2): normalizer = try SentencePieceNormalizer(ProtobufReader(bytes, range: try model.lengthDelimited()))
                default: try model.skip(wire)
                }
            }
        } catch let error as ProtobufReader.Malformed {
            throw invalid("not a SentencePiece model (\(error.reason))")
        } catch SentencePieceNormalizer.Malformed.characterMap {
            throw invalid("the normaliser's character map is damaged")
        }
        guard let algorithm = Algorithm(rawValue: modelType) else {
            throw invalid("model type \(modelType) (Unigram, type 1, and BPE, type 2, are read)")
        }
        guard !suffixWhitespace else { throw invalid("treat_whitespace_as_suffix is not supported") }
        try self.init(pieces: pieces, algorithm: algorithm, byteFallback: byteFallback, normalizer: normalizer, name: name)
    }

    /// A model from its pieces (a `tokenizer.json` Unigram model builds one with the identity normaliser).
    init(pieces: [Piece], algorithm: Algorithm, byteFallback: Bool, normalizer: SentencePieceNormalizer, name: String) throws {
        func invalid(_ reason: String) -> CLIPError { .invalidTokenizer("\(name): \(reason)") }
        var normalizer = normalizer
        guard let unknown = pieces.firstIndex(where: { $0.type == .unknown }) else { throw invalid("no unknown piece") }
        let normal = pieces.filter { $0.type == .normal }.map(\.score)
        guard let lowest = normal.min(), let highest = normal.max() else { throw invalid("no pieces") }

        var segmentable = [[UInt8]: Int]()
        for (id, piece) in pieces.enumerated() where piece.type == .normal || piece.type == .userDefined {
            segmentable[Array(piece.text.utf8)] = segmentable[Array(piece.text.utf8)] ?? id
        }
        self.pieces = pieces
        self.algorithm = algorithm
        self.segmentable = segmentable
        longestPiece = segmentable.keys.map(\.count).max() ?? 1
        idsByText = Dictionary(pieces.enumerated().map { ($1.text, $0) }, uniquingKeysWith: { first, _ in first })
        unknownID = unknown
        unknownScore = lowest - 10  // sentencepiece's unknown penalty
        userDefinedScorePerByte = highest
        self.byteFallback = byteFallback
        normalizer.userDefined = pieces.filter { $0.type == .userDefined }.map { Array($0.text.utf8) }
        self.normalizer = normalizer
    }

    private static func piece(_ reader: ProtobufReader) throws -> Piece {
        var reader = reader
        var text = "", score: Float = 0, type = PieceType.normal
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): text = String(decoding: reader.bytes[try reader.lengthDelimited()], as: UTF8.self)
            case (2, 5): score = Float(bitPattern: try reader.fixed32())
            case (3, 0): type = PieceType(rawValue: Int(try reader.varint())) ?? .normal
            default: try reader.skip(wire)
            }
        }
        return Piece(text: text, score: score, type: type)
    }

    public var count: Int { pieces.count }

    /// The id of a piece by its text (a special token such as `</s>`), if the model has it.
    public func id(of piece: String) -> Int? { idsByText[piece] }

    /// The piece ids of `text`, as `SentencePieceProcessor.encode` gives them.
    public func encode(_ text: String) -> [Int] {
        let normalized = normalizer.normalize(Array(text.utf8))
        return ids(of: algorithm == .unigram ? viterbi(normalized) : merges(normalized), in: normalized)
    }

    typealias Segment = (range: Range<Int>, id: Int)

    /// Viterbi segmentation of normalised bytes: each position keeps the best-scoring way to reach it.
    private func viterbi(_ text: [UInt8]) -> [Segment] {
        guard !text.isEmpty else { return [] }
        struct Best {
            var score = -Float.infinity
            var start = -1
            var id = -1
        }
        var best = [Best](repeating: Best(), count: text.count + 1)
        best[0] = Best(score: 0, start: 0, id: -1)
        var start = 0
        while start < text.count {
            let here = best[start].score
            let characterLength = min(UTF8Scalars.length(leading: text[start]), text.count - start)
            var hasSingleCharacter = false
            var end = start + 1
            while end <= min(text.count, start + longestPiece) {
                if let id = segmentable[Array(text[start..<end])] {
                    let length = end - start
                    let score = pieces[id].type == .userDefined ? Float(length) * userDefinedScorePerByte - 0.1 : pieces[id].score
                    if best[end].start < 0 || here + score > best[end].score { best[end] = Best(score: here + score, start: start, id: id) }
                    if length == characterLength { hasSingleCharacter = true }
                }
                end += 1
            }
            if !hasSingleCharacter {
                let end = start + characterLength
                if best[end].start < 0 || here + unknownScore > best[end].score {
                    best[end] = Best(score: here + unknownScore, start: start, id: unknownID)
                }
            }
            start += characterLength
        }
        var segments = [Segment]()
        var end = text.count
        while end > 0 {
            let node = best[end]
            segments.append((node.start..<end, node.id))
            end = node.start
        }
        return segments.reversed()
    }

    /// BPE: the characters (user-defined pieces whole), then repeatedly the adjacent pair whose joined text
    /// is the best-scoring piece merged, leftmost among equals, as sentencepiece's agenda does.
    private func merges(_ text: [UInt8]) -> [Segment] {
        var lower = [Int](), upper = [Int]()
        var position = 0
        while position < text.count {
            let userDefined = normalizer.userDefined.filter { text[position...].starts(with: $0) }.map(\.count).max()
            let length = userDefined ?? min(UTF8Scalars.length(leading: text[position]), text.count - position)
            lower.append(position)
            upper.append(position + length)
            position += length
        }
        let count = lower.count
        var next = Array(1...max(count, 1)), previous = Array(-1..<max(count - 1, 0))
        var alive = [Bool](repeating: true, count: count)
        struct Candidate {
            let score: Float
            let left: Int
            let right: Int
            let size: Int
        }
        var agenda = BinaryHeap<Candidate> { $0.score > $1.score || ($0.score == $1.score && $0.left < $1.left) }
        func consider(_ left: Int, _ right: Int) {
            guard left >= 0, right < count, let id = segmentable[Array(text[lower[left]..<upper[right]])] else { return }
            agenda.push(Candidate(score: pieces[id].score, left: left, right: right, size: upper[right] - lower[left]))
        }
        for index in 0..<max(count - 1, 0) { consider(index, index + 1) }
        while let candidate = agenda.pop() {
            let (left, right) = (candidate.left, candidate.right)
            // Skip pairs that a merge since has changed.
            guard alive[left], alive[right], upper[right] - lower[left] == candidate.size else { continue }
            upper[left] = upper[right]
            alive[right] = false
            next[left] = next[right]
            if next[right] < count { previous[next[right]] = left }
            consider(previous[left], left)
            consider(left, next[left])
        }
        return (0..<count).filter { alive[$0] }.map { index in
            let range = lower[index]..<upper[index]
            return (range, segmentable[Array(text[range])] ?? unknownID)
        }
    }

    /// The ids of a segmentation: a run of unknown pieces as one, or their bytes with byte fallback.
    private func ids(of segments: [Segment], in text: [UInt8]) -> [Int] {
        var ids = [Int]()
        var previousUnknown = false
        for segment in segments {
            let unknown = segment.id == unknownID
            if unknown && byteFallback {
                ids += text[segment.range].map { byte in idsByText[String(format: "<0x%02X>", byte)] ?? unknownID }
            } else if !(unknown && previousUnknown) {  // a run of unknown characters is one unknown piece
                ids.append(segment.id)
            }
            previousUnknown = unknown
        }
        return ids
    }
}

/// The normaliser of a SentencePiece model: the precompiled character map (a Darts double-array trie of
/// UTF-8 sequences and the strings they become), then white space: leading, trailing and repeated spaces
/// removed, `▁` for each space and before the text.
struct SentencePieceNormalizer: Sendable {
    enum Malformed: Error { case characterMap }

    private var units: [UInt32] = []
    private var replacements: [UInt8] = []
    var addDummyPrefix = true
    var removeExtraWhitespaces = true
    var escapeWhitespaces = true
    /// User-defined pieces are kept as they are written, never normalised.
    var userDefined: [[UInt8]] = []

    init() {}

    /// Text passes unchanged (a `tokenizer.json` normalises with its own normalisers first).
    static let identity: SentencePieceNormalizer = {
        var normalizer = SentencePieceNormalizer()
        (normalizer.addDummyPrefix, normalizer.removeExtraWhitespaces, normalizer.escapeWhitespaces) = (false, false, false)
        return normalizer
    }()

    init(_ reader: ProtobufReader) throws {
        var reader = reader
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (2, 2):
                let map = Array(reader.bytes[try reader.lengthDelimited()])
                guard !map.isEmpty else { continue }
                guard map.count >= 4 else { throw Malformed.characterMap }
                let trieBytes = Int(map[0]) | Int(map[1]) << 8 | Int(map[2]) << 16 | Int(map[3]) << 24
                guard trieBytes % 4 == 0, 4 + trieBytes <= map.count else { throw Malformed.characterMap }
                units = stride(from: 4, to: 4 + trieBytes, by: 4).map {
                    UInt32(map[$0]) | UInt32(map[$0 + 1]) << 8 | UInt32(map[$0 + 2]) << 16 | UInt32(map[$0 + 3]) << 24
                }
                replacements = Array(map[(4 + trieBytes)...])
            case (3, 0): addDummyPrefix = try reader.varint() != 0
            case (4, 0): removeExtraWhitespaces = try reader.varint() != 0
            case (5, 0): escapeWhitespaces = try reader.varint() != 0
            default: try reader.skip(wire)
            }
        }
    }

    private static let space = Array("▁".utf8)

    func normalize(_ input: [UInt8]) -> [UInt8] {
        var position = 0
        if removeExtraWhitespaces {
            while position < input.count {
                let (replacement, consumed) = prefix(input, at: position)
                guard replacement.elementsEqual([0x20]) else { break }
                position += consumed
            }
        }
        guard position < input.count else { return [] }
        var output = [UInt8]()
        if addDummyPrefix { output += escapeWhitespaces ? Self.space : [0x20] }
        var previousIsSpace = removeExtraWhitespaces
        while position < input.count {
            let (replacement, consumed) = prefix(input, at: position)
            var piece = replacement[...]
            if previousIsSpace && removeExtraWhitespaces {
                while piece.first == 0x20 { piece = piece.dropFirst() }
            }
            if !piece.isEmpty {
                for byte in piece {
                    if escapeWhitespaces && byte == 0x20 { output += Self.space } else { output.append(byte) }
                }
                previousIsSpace = piece.last == 0x20
            }
            position += consumed
            if !removeExtraWhitespaces { previousIsSpace = false }
        }
        if removeExtraWhitespaces {
            let space = escapeWhitespaces ? Self.space : [0x20]
            while output.count >= space.count && Array(output.suffix(space.count)) == space { output.removeLast(space.count) }
        }
        return output
    }

    /// What the text at `position` becomes, and how many of its bytes that consumes: a user-defined piece
    /// as it is, the longest match in the character map, or else one character unchanged.
    private func prefix(_ input: [UInt8], at position: Int) -> (replacement: [UInt8], consumed: Int) {
        if let piece = userDefined.filter({ input[position...].starts(with: $0) }).max(by: { $0.count < $1.count }) {
            return (piece, piece.count)
        }
        if let (length, value) = longestMatch(input, at: position), value < replacements.count {
            let end = replacements[value...].firstIndex(of: 0) ?? replacements.count
            return (Array(replacements[value..<end]), length)
        }
        let length = UTF8Scalars.length(leading: input[position])
        guard position + length <= input.count, String(validating: input[position..<(position + length)], as: UTF8.self) != nil else {
            return ([0xEF, 0xBF, 0xBD], 1)  // U+FFFD for a byte that starts no character
        }
        return (Array(input[position..<(position + length)]), length)
    }

    /// Darts-clone's common-prefix search, keeping the longest key: (its length, its value).
    private func longestMatch(_ key: [UInt8], at start: Int) -> (Int, Int)? {
        guard !units.isEmpty else { return nil }
        func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }
        func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
        func label(_ unit: UInt32) -> UInt32 { unit & ((1 << 31) | 0xFF) }
        var node = offset(units[0])
        var found: (Int, Int)?
        for i in start..<key.count {
            node ^= Int(key[i])
            guard node < units.count else { break }
            let unit = units[node]
            guard label(unit) == UInt32(key[i]) else { break }
            node ^= offset(unit)
            guard node < units.count else { break }
            if hasLeaf(unit) { found = (i - start + 1, Int(units[node] & 0x7FFF_FFFF)) }
        }
        return found
    }
}

enum UTF8Scalars {
    /// The length of the UTF-8 sequence a byte starts (1 for a byte that starts none).
    static func length(leading byte: UInt8) -> Int {
        switch byte {
        case 0xF0...0xF7: 4
        case 0xE0...0xEF: 3
        case 0xC0...0xDF: 2
        default: 1
        }
    }
}

/// Reads protocol-buffer wire format: fields as (number, wire type), varints, fixed 32-bit values and
/// length-delimited ranges, never past the end of the bytes.
struct ProtobufReader {
    struct Malformed: Error { let reason: String }

    let bytes: [UInt8]
    private var position: Int
    private let end: Int

    init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
    }

    mutating func nextField() throws -> (Int, Int)? {
        guard position < end else { return nil }
        let key = try varint()
        guard key >> 3 > 0 else { throw Malformed(reason: "field number 0") }
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard position < end else { throw Malformed(reason: "the data ends inside a number") }
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw Malformed(reason: "a number longer than ten bytes")
    }

    mutating func fixed32() throws -> UInt32 {
        guard end - position >= 4 else { throw Malformed(reason: "the data ends inside a number") }
        defer { position += 4 }
        return (0..<4).reduce(0) { $0 | UInt32(bytes[position + $1]) << UInt32(8 * $1) }
    }

    mutating func lengthDelimited() throws -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else { throw Malformed(reason: "a field runs past the end") }
        defer { position += Int(length) }
        return position..<(position + Int(length))
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard end - position >= 8 else { throw Malformed(reason: "the data ends inside a number") }
            position += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw Malformed(reason: "wire type \(wire)")
        }
    }
}
