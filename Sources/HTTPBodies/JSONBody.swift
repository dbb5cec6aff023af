import Foundation

/// A JSON request body read the way the API documents it: a UTF-8 object with typed fields.
public enum JSONBody {
    /// Why a body or a field was refused, in words for the client.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public static func object(_ bytes: [UInt8]) throws(Problem) -> [String: Any] {
        guard !bytes.isEmpty else { throw Problem(description: "The request body is empty.") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            // Malformed syntax, text that is not UTF-8, or an escape for a lone surrogate (\ud800).
            throw Problem(description: "The request body is not valid JSON in UTF-8.")
        }
        guard let object = parsed as? [String: Any] else { throw Problem(description: "The request body is JSON but not an object.") }
        return object
    }

    /// An optional integer field that must be a JSON integer in `range` when present: not a boolean, a
    /// string, a fraction, null or anything else JSON would let through.
    public static func integer(_ name: String, in object: [String: Any], range: ClosedRange<Int>) throws(Problem) -> Int? {
        guard let value = object[name] else { return nil }
        // JSON integers arrive as NSNumbers of an integer type; true and false as "c", fractions as "d".
        guard let number = value as? NSNumber, ["i", "l", "q", "s", "I", "L", "Q", "S"].contains(String(cString: number.objCType)),
            (Double(range.lowerBound)...Double(range.upperBound)).contains(number.doubleValue)
        else { throw Problem(description: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound).") }
        return number.intValue
    }

    public static func string(_ name: String, in object: [String: Any]) throws(Problem) -> String {
        guard let value = object[name] as? String else { throw Problem(description: "The JSON body needs a string field \"\(name)\".") }
        return value
    }
}
