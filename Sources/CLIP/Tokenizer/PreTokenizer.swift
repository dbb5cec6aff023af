/// The CLIP split pattern, `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
/// applied to already lowercased text, scalar by scalar (not by grapheme: a combining mark is its own piece).
enum PreTokenizer {
    private static let specials = [CLIPTokenizer.startSpelling, CLIPTokenizer.endSpelling].map { Array($0.unicodeScalars) }
    private static let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map { Array($0.unicodeScalars) }

    static func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces = [String]()
        var i = 0
        func take(_ count: Int) {
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[i..<(i + count)])
            pieces.append(String(piece))
            i += count
        }
        func matches(_ literal: [Unicode.Scalar]) -> Bool {
            i + literal.count <= scalars.count && Array(scalars[i..<(i + literal.count)]) == literal
        }
        while i < scalars.count {
            let scalar = scalars[i]
            if let special = specials.first(where: matches) {
                take(special.count)
            } else if let contraction = contractions.first(where: matches) {
                take(contraction.count)
            } else if scalar.isLetter {
                var end = i + 1
                while end < scalars.count && scalars[end].isLetter { end += 1 }
                take(end - i)
            } else if scalar.isNumber {
                take(1)
            } else if scalar.isPythonSpace {
                i += 1
            } else {
                var end = i + 1
                while end < scalars.count && !scalars[end].isLetter && !scalars[end].isNumber && !scalars[end].isPythonSpace {
                    end += 1
                }
                take(end - i)
            }
        }
        return pieces
    }
}

extension Unicode.Scalar {
    /// `\p{L}`
    var isLetter: Bool {
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    /// `\p{N}`
    var isNumber: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    /// Python's `str.isspace()`, which `\s` follows: Unicode White_Space plus the four ASCII separators.
    var isPythonSpace: Bool {
        properties.isWhitespace || (0x1C...0x1F).contains(value)
    }
}
