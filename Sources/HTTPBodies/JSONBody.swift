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
    /// string, a fraction, null or anything else JSON would let through. A number with a zero fraction
    /// (`10.0`) is an integer, as JSON Schema counts it.
    public static func integer(_ name: String, in object: [String: Any], range: ClosedRange<Int>) throws(Problem) -> Int? {
        guard let value = object[name] else { return nil }
        guard let number = value as? NSNumber, !isBoolean(number), number.doubleValue.rounded(.towardZero) == number.doubleValue,
            (Double(range.lowerBound)...Double(range.upperBound)).contains(number.doubleValue)
        else { throw Problem(description: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound).") }
        return Int(number.doubleValue)
    }

    /// An optional number field (integer or fraction, not a boolean) in `range`.
    public static func number(_ name: String, in object: [String: Any], range: ClosedRange<Double>) throws(Problem) -> Double? {
        guard let value = object[name] else { return nil }
        guard let number = value as? NSNumber, !isBoolean(number), range.contains(number.doubleValue) else {
            throw Problem(description: "\(name) must be a number from \(range.lowerBound) to \(range.upperBound).")
        }
        return number.doubleValue
    }

    /// An optional boolean field: `true` or `false`, not 0, 1 or a string.
    public static func boolean(_ name: String, in object: [String: Any]) throws(Problem) -> Bool? {
        guard let value = object[name] else { return nil }
        guard let number = value as? NSNumber, isBoolean(number) else { throw Problem(description: "\(name) must be true or false.") }
        return number.boolValue
    }

    /// A string field the body must have.
    public static func string(_ name: String, in object: [String: Any]) throws(Problem) -> String {
        guard let value = try optionalString(name, in: object) else { throw Problem(description: "The JSON body needs a string field \"\(name)\".") }
        return value
    }

    /// An optional string field: nil when absent, refused when present with another type (null included).
    public static func optionalString(_ name: String, in object: [String: Any]) throws(Problem) -> String? {
        guard let value = object[name] else { return nil }
        guard let string = value as? String else { throw Problem(description: "\(name) must be a string.") }
        return string
    }

    /// An optional array of strings.
    public static func strings(_ name: String, in object: [String: Any]) throws(Problem) -> [String]? {
        guard let value = object[name] else { return nil }
        guard let array = value as? [Any], let strings = array as? [String], strings.count == array.count else {
            throw Problem(description: "\(name) must be an array of strings.")
        }
        return strings
    }

    /// An optional object whose values are all strings.
    public static func stringMap(_ name: String, in object: [String: Any]) throws(Problem) -> [String: String]? {
        guard let value = object[name] else { return nil }
        guard let map = value as? [String: Any] else { throw Problem(description: "\(name) must be an object.") }
        var strings = [String: String]()
        for (key, value) in map {
            guard let string = value as? String else { throw Problem(description: "\(name) values must be strings; \(key) is not.") }
            strings[key] = string
        }
        return strings
    }

    // JSONSerialization gives numbers and booleans as NSNumbers, booleans with the type code "c".
    private static func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }
}
