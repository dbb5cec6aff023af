import Foundation
import ImageCollections

/// How Loupe's names and values are written for Milvus.
enum MilvusNames {
    /// Every Loupe collection is a Milvus collection of this prefix, so Loupe lists only its own.
    static let prefix = "loupe_"

    /// A Loupe collection name (letters, digits, - and _) as a Milvus one (letters, digits and _ only):
    /// `_` is doubled and `-` becomes `_d`, so no two Loupe names meet.
    static func collection(_ name: String) -> String {
        prefix + name.replacingOccurrences(of: "_", with: "__").replacingOccurrences(of: "-", with: "_d")
    }

    /// The Loupe name of a Milvus collection, or nil for a collection Loupe did not make.
    static func loupeName(_ milvusName: String) -> String? {
        guard milvusName.hasPrefix(prefix) else { return nil }
        var name = "", escaped = false
        for character in milvusName.dropFirst(prefix.count) {
            if escaped {
                switch character {
                case "_": name.append("_")
                case "d": name.append("-")
                default: return nil
                }
                escaped = false
            } else if character == "_" {
                escaped = true
            } else {
                name.append(character)
            }
        }
        return escaped || name.isEmpty ? nil : name
    }

    /// A string literal of Milvus's filter expressions: double quotes, with the C escapes both Milvus
    /// and Milvus Lite read (`\"`, `\\`, `\n`, `\r`, `\t`); every other character stands for itself.
    static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A number as the expressions read it: digits and a point, never an exponent.
    static func number(_ value: Double) -> String {
        let plain = "\(value)"
        return plain.contains("e") ? String(format: "%.1f", value) : plain
    }

    /// `id in [...]`.
    static func ids(_ ids: [String]) -> String {
        "id in [" + ids.map(literal).joined(separator: ", ") + "]"
    }

    /// The filters as one expression over the `metadata` field (equality) and the `numbers` field (each
    /// metadata field's first number, written with the item: ranges follow `MetadataFilter.number`).
    static func expression(_ filters: [MetadataFilter]) -> String? {
        guard !filters.isEmpty else { return nil }
        return filters.map { filter in
            switch filter {
            case .equals(let field, let value): "metadata[\(literal(field))] == \(literal(value))"
            case .atLeast(let field, let value): "numbers[\(literal(field))] >= \(number(value))"
            case .atMost(let field, let value): "numbers[\(literal(field))] <= \(number(value))"
            }
        }.joined(separator: " and ")
    }

    /// Each metadata field's first number, for range filters.
    static func numbers(_ metadata: [String: String]) -> [String: Double] {
        metadata.compactMapValues { MetadataFilter.number($0) }
    }
}
