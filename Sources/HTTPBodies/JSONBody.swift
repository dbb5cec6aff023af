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
}
