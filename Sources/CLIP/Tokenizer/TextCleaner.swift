import Foundation

/// The text clean-up OpenAI's CLIP tokenizer applies before splitting (`basic_clean`, `whitespace_clean`,
/// lowercase): `ftfy.fix_text`, `html.unescape` twice, whitespace collapsed and trimmed, lowercase.
///
/// ftfy is ported in the parts that change ordinary text: HTML entities, terminal escapes, C1 controls,
/// Latin ligatures, full-width forms, curly quotes, control characters, NFC, and UTF-8 mojibake read as
/// Latin-1 or Windows-1252. Its badness heuristic is reduced to one rule (a UTF-8 lead character followed
/// by a continuation character), and `restore_byte_a0` / `decode_inconsistent_utf8` are not ported.
/// The character tables come from the reference (`Resources/text_tables.json`, made by the fixture script).
struct TextCleaner: Sendable {
    private let tables: TextTables

    init() throws { tables = try TextTables.shared() }

    func clean(_ text: String) -> String {
        let fixed = fixText(text)
        let unescaped = htmlUnescape(htmlUnescape(fixed))
        return Self.pythonLowercased(collapseWhitespace(unescaped))
    }

    // MARK: - ftfy.fix_text

    /// ftfy fixes line by line; once a line holds "<" it stops unescaping HTML for the rest of the text.
    func fixText(_ text: String) -> String {
        var unescape = true
        var out = ""
        var line = ""
        for scalar in text.unicodeScalars {
            line.unicodeScalars.append(scalar)
            if scalar == "\n" {
                if line.contains("<") { unescape = false }
                out += fixSegment(line, unescape: unescape)
                line = ""
            }
        }
        if !line.isEmpty {
            if line.contains("<") { unescape = false }
            out += fixSegment(line, unescape: unescape)
        }
        return out
    }

    private func fixSegment(_ segment: String, unescape: Bool) -> String {
        var text = segment
        // Each fix can expose work for another, so repeat until nothing changes.
        for _ in 0..<16 {
            let before = text
            if unescape { text = ftfyUnescape(text) }
            text = fixMojibake(text)
            text = mapScalars(text) { scalar in
                if (0x80...0x9F).contains(scalar.value) { return tables.cp1252[Int(scalar.value - 0x80)] }  // C1 controls
                if let replacement = tables.ligatures[scalar.value] { return replacement }
                if let replacement = tables.widths[scalar.value] { return replacement }
                if (0x2018...0x201B).contains(scalar.value) || scalar.value == 0x2BC { return "'" }
                if (0x201C...0x201F).contains(scalar.value) { return "\"" }
                return nil
            }
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text = mapScalars(text) { tables.controls.contains($0.value) ? "" : nil }
            text = text.precomposedStringWithCanonicalMapping
            if text == before { break }
        }
        return text
    }

    private func mapScalars(_ text: String, _ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if let replaced = replacement(scalar) {
                out.append(contentsOf: replaced.unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    private func fixLineBreaks(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var previousWasReturn = false
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0D:
                out.append("\n")
                previousWasReturn = true
                continue
            case 0x0A where previousWasReturn: break
            case 0x2028, 0x2029, 0x85: out.append("\n")
            default: out.append(scalar)
            }
            previousWasReturn = false
        }
        return String(out)
    }

    /// Removes `ESC [ digits-and-semicolons letter`.
    private func removeTerminalEscapes(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "\u{1B}", i + 1 < scalars.count, scalars[i + 1] == "[" {
                var end = i + 2
                while end < scalars.count, scalars[end].isASCIIDigit || scalars[end] == ";" { end += 1 }
                if end < scalars.count, scalars[end].isASCIILetter {
                    i = end + 1
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    /// ftfy's HTML step: only `&name;` forms it knows (including upper-cased Latin names) and numeric ones.
    private func ftfyUnescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "&" {
                var end = i + 1
                if end < scalars.count, scalars[end] == "#" { end += 1 }
                let nameStart = end
                while end < scalars.count, end - nameStart < 24, scalars[end].isASCIIDigit || scalars[end].isASCIILetter { end += 1 }
                if end > nameStart, end < scalars.count, scalars[end] == ";" {
                    let entity = String(String.UnicodeScalarView(scalars[i...end]))
                    if let replacement = tables.ftfyEntities[entity] {
                        out.append(contentsOf: replacement.unicodeScalars)
                        i = end + 1
                        continue
                    }
                    if entity.hasPrefix("&#") {
                        let decoded = htmlUnescape(entity)
                        if !decoded.contains(";") {
                            out.append(contentsOf: decoded.unicodeScalars)
                            i = end + 1
                            continue
                        }
                    }
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    /// UTF-8 bytes that were decoded as Latin-1 or Windows-1252: encode back, decode as UTF-8.
    private func fixMojibake(_ text: String) -> String {
        guard looksLikeMojibake(text) else { return text }
        for table in [tables.latin1Encoder, tables.cp1252Encoder] {
            var bytes = [UInt8]()
            var encodable = true
            for scalar in text.unicodeScalars {
                if scalar.value < 0x80 {
                    bytes.append(UInt8(scalar.value))
                } else if let byte = table[scalar.value] {
                    bytes.append(byte)
                } else {
                    encodable = false
                    break
                }
            }
            if encodable, let decoded = String(validating: bytes, as: UTF8.self) { return decoded }
        }
        return text
    }

    /// A UTF-8 lead byte's character (Â to ô) directly followed by a continuation byte's character.
    private func looksLikeMojibake(_ text: String) -> Bool {
        var previousIsLead = false
        for scalar in text.unicodeScalars {
            if previousIsLead, let byte = tables.cp1252Encoder[scalar.value] ?? tables.latin1Encoder[scalar.value],
                (0x80...0xBF).contains(byte)
            {
                return true
            }
            let byte = scalar.value < 0x80 ? nil : (tables.cp1252Encoder[scalar.value] ?? tables.latin1Encoder[scalar.value])
            previousIsLead = byte.map { (0xC2...0xF4).contains($0) } ?? false
        }
        return false
    }

    // MARK: - Python's html.unescape

    func htmlUnescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            guard scalars[i] == "&", i + 1 < scalars.count else {
                out.append(scalars[i])
                i += 1
                continue
            }
            if let (replacement, end) = characterReference(scalars, from: i + 1) {
                out.append(contentsOf: replacement.unicodeScalars)
                i = end
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Decodes the reference that starts after "&" at `start`; returns the text and where it ends.
    private func characterReference(_ s: [Unicode.Scalar], from start: Int) -> (String, Int)? {
        if s[start] == "#" {
            var end = start + 1
            let hex = end < s.count && (s[end] == "x" || s[end] == "X")
            if hex { end += 1 }
            let digitsStart = end
            while end < s.count, hex ? s[end].properties.isASCIIHexDigit : s[end].isASCIIDigit { end += 1 }
            guard end > digitsStart else { return nil }
            let digits = String(String.UnicodeScalarView(s[digitsStart..<end]))
            if end < s.count, s[end] == ";" { end += 1 }
            // Python's int() has no bound; anything beyond Unicode becomes U+FFFD.
            let number = UInt32(digits, radix: hex ? 16 : 10) ?? UInt32.max
            if let replacement = tables.invalidCharrefs[number] { return (replacement, end) }
            if (0xD800...0xDFFF).contains(number) || number > 0x10FFFF { return ("\u{FFFD}", end) }
            if tables.invalidCodepoints.contains(number) { return ("", end) }
            return (String(Unicode.Scalar(number)!), end)
        }
        var end = start
        while end < s.count, end - start < 32, !["\t", "\n", "\u{0C}", " ", "<", "&", "#", ";"].contains(s[end]) { end += 1 }
        guard end > start else { return nil }
        if end < s.count, s[end] == ";" { end += 1 }
        let name = String(String.UnicodeScalarView(s[start..<end]))
        if let replacement = tables.html5[name] { return (replacement, end) }
        // The longest known prefix (some legacy names need no semicolon), the rest kept as text.
        let nameScalars = Array(name.unicodeScalars)
        for length in stride(from: nameScalars.count - 1, to: 1, by: -1) {
            let prefix = String(String.UnicodeScalarView(nameScalars[0..<length]))
            if let replacement = tables.html5[prefix] {
                return (replacement + String(String.UnicodeScalarView(nameScalars[length...])), end)
            }
        }
        return nil
    }

    // MARK: - str.lower

    /// Python's `str.lower()`: full lowercase mappings, and capital sigma becomes final sigma (ς)
    /// at the end of a word (Swift's `lowercased()` always gives σ).
    static func pythonLowercased(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, scalar) in scalars.enumerated() {
            guard scalar.value == 0x3A3 else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
                continue
            }
            // Final when a cased letter comes before and none after, skipping case-ignorable marks.
            let before = scalars[..<i].reversed().first { !$0.properties.isCaseIgnorable }
            let after = scalars[(i + 1)...].first { !$0.properties.isCaseIgnorable }
            let isFinal = (before?.properties.isCased ?? false) && !(after?.properties.isCased ?? false)
            out.append(isFinal ? "\u{3C2}" : "\u{3C3}")
        }
        return String(out)
    }

    // MARK: - whitespace_clean

    /// Python's `re.sub(r"\s+", " ", text).strip()`.
    private func collapseWhitespace(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if scalar.isPythonSpace {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(scalar)
            }
        }
        return String(out)
    }
}

extension Unicode.Scalar {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

/// Character tables taken from the reference implementation (Python's `html` module and ftfy),
/// keyed by code point.
struct TextTables: Sendable {
    let html5: [String: String]
    let invalidCharrefs: [UInt32: String]
    let invalidCodepoints: Set<UInt32>
    let ftfyEntities: [String: String]
    let ligatures: [UInt32: String]
    let widths: [UInt32: String]
    let controls: Set<UInt32>
    /// Windows-1252 bytes 0x80...0xFF as characters, undefined bytes standing for themselves (ftfy's "sloppy" codec).
    let cp1252: [String]
    let cp1252Encoder: [UInt32: UInt8]
    let latin1Encoder: [UInt32: UInt8]

    /// The resource's layout: JSON object keys are strings, so code points are decimal strings.
    private struct File: Decodable {
        let html5: [String: String]
        let invalid_charrefs: [String: String]
        let invalid_codepoints: [UInt32]
        let ftfy_entities: [String: String]
        let ligatures: [String: String]
        let widths: [String: String]
        let controls: [UInt32]
        let cp1252: [String]
    }

    private init(_ file: File) throws {
        func byCodePoint(_ table: [String: String]) throws -> [UInt32: String] {
            try Dictionary(uniqueKeysWithValues: table.map { key, value in
                guard let code = UInt32(key) else { throw CLIPError.invalidTokenizer("text table key \(key) is not a code point") }
                return (code, value)
            })
        }
        guard file.cp1252.count == 128, file.cp1252.allSatisfy({ $0.unicodeScalars.count == 1 }) else {
            throw CLIPError.invalidTokenizer("the cp1252 table must have 128 single characters")
        }
        html5 = file.html5
        invalidCharrefs = try byCodePoint(file.invalid_charrefs)
        invalidCodepoints = Set(file.invalid_codepoints)
        ftfyEntities = file.ftfy_entities
        ligatures = try byCodePoint(file.ligatures)
        widths = try byCodePoint(file.widths)
        controls = Set(file.controls)
        cp1252 = file.cp1252
        var cp1252Encoder = [UInt32: UInt8]()
        for (offset, character) in file.cp1252.enumerated() {
            cp1252Encoder[character.unicodeScalars.first!.value] = UInt8(0x80 + offset)
        }
        self.cp1252Encoder = cp1252Encoder
        latin1Encoder = Dictionary(uniqueKeysWithValues: (0x80...0xFF).map { (UInt32($0), UInt8($0)) })
    }

    private static let loaded: Result<TextTables, CLIPError> = {
        guard let url = Bundle.module.url(forResource: "text_tables", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { return .failure(.invalidTokenizer("the text tables resource is missing")) }
        do {
            return .success(try TextTables(JSONDecoder().decode(File.self, from: data)))
        } catch let error as CLIPError {
            return .failure(error)
        } catch {
            return .failure(.invalidTokenizer("the text tables resource is malformed: \(error)"))
        }
    }()

    static func shared() throws -> TextTables { try loaded.get() }
}
