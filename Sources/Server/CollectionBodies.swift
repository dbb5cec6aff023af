import Foundation
import HTTPTypes
import Hummingbird
import ImageCollections

/// The collection routes' JSON bodies as types. Requests are decoded by Hummingbird through the server's
/// context (`ServerRequestContext`, whose decoder keeps Azure's error shape); responses are encoded with
/// `bodyResponse`. Each type carries its JSON Schema, from which the OpenAPI document is made, and
/// `CollectionBodiesTests` checks every schema against its type's fields.
protocol DocumentedBody: Codable {
    static var schema: [String: Any] { get }
}

struct CreateCollectionRequest: Codable, DocumentedBody {
    var name: String
    var modelVersion: String?

    static var schema: [String: Any] {
        ["type": "object", "required": ["name"], "properties": [
            "name": ["type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"], "modelVersion": ["type": "string"]]]
    }
}

/// An image fetched from `url`; the id is `?id=`, else `id`, else the URL.
struct AddItemRequest: Codable, DocumentedBody {
    var url: String
    var id: String?
    var metadata: [String: String]?

    static var schema: [String: Any] {
        ["type": "object", "required": ["url", "id"], "properties": [
            "url": ["type": "string", "format": "uri"], "id": ["type": "string", "minLength": 1, "maxLength": 512],
            "metadata": ["type": "object", "additionalProperties": ["type": "string"]]]]
    }
}

/// Exactly one of `text`, `like` (an item id) or `url`.
struct SearchRequest: Codable, DocumentedBody {
    var text: String?
    var like: String?
    var url: String?
    var k: Int?
    var filters: [String]?
    var hybrid: Bool?
    var vectorWeight: Double?
    var groupBy: String?

    static var schema: [String: Any] {
        ["type": "object", "oneOf": [["required": ["text"]], ["required": ["like"]], ["required": ["url"]]], "properties": [
            "text": ["type": "string", "minLength": 1, "maxLength": 10000, "pattern": OpenAPIDocument.textPattern],
            "like": ["type": "string", "minLength": 1, "maxLength": 512], "url": ["type": "string", "format": "uri"],
            "k": ["type": "integer", "minimum": 1, "maximum": 1000],
            "filters": ["type": "array", "items": ["type": "string", "pattern": MetadataFilter.pattern]], "hybrid": ["type": "boolean"],
            "vectorWeight": ["type": "number", "minimum": 0, "maximum": 1], "groupBy": ["type": "string", "enum": GroupBy.allCases.map(\.rawValue)]]]
    }
}

struct CollectionSummary: Codable, Equatable, DocumentedBody {
    var name: String
    var items: Int
    var model: String
    var dimension: Int
    /// The served model version that matches the collection's model, if one does.
    var modelVersion: String?

    static var schema: [String: Any] {
        ["type": "object", "required": ["name", "items", "model", "dimension"], "properties": [
            "name": ["type": "string"], "items": ["type": "integer"], "model": ["type": "string"], "dimension": ["type": "integer"],
            "modelVersion": ["type": "string"]]]
    }
}

struct CollectionList: Codable, Equatable, DocumentedBody {
    var collections: [CollectionSummary]

    static var schema: [String: Any] {
        ["type": "object", "required": ["collections"], "properties": ["collections": ["type": "array", "items": CollectionSummary.schema]]]
    }
}

struct CreatedCollection: Codable, Equatable, DocumentedBody {
    var name: String
    var items: Int
    var modelVersion: String

    static var schema: [String: Any] {
        ["type": "object", "required": ["name", "items", "modelVersion"], "properties": [
            "name": ["type": "string"], "items": ["type": "integer"], "modelVersion": ["type": "string"]]]
    }
}

struct AddedItem: Codable, Equatable, DocumentedBody {
    var id: String
    var collection: String

    static var schema: [String: Any] {
        ["type": "object", "required": ["id", "collection"], "properties": ["id": ["type": "string"], "collection": ["type": "string"]]]
    }
}

struct ItemDetails: Codable, Equatable, DocumentedBody {
    var id: String
    var metadata: [String: String]
    var contentHash: String

    static var schema: [String: Any] {
        ["type": "object", "required": ["id", "metadata", "contentHash"], "properties": [
            "id": ["type": "string"], "metadata": ["type": "object", "additionalProperties": ["type": "string"]],
            "contentHash": ["type": "string"]]]
    }
}

struct SearchResults: Codable, Equatable, DocumentedBody {
    var results: [HitBody]

    static var schema: [String: Any] {
        let number: [String: Any] = ["type": "number"], string: [String: Any] = ["type": "string"]
        let moment: [String: Any] = ["type": "object", "required": ["start", "end", "best", "relevance", "cosine", "frame"], "properties": [
            "start": number, "end": number, "best": number, "relevance": number, "cosine": number, "frame": string]]
        let hit: [String: Any] = ["type": "object", "required": ["id", "kind", "relevance", "cosine", "metadata"], "properties": [
            "id": string, "kind": ["type": "string", "enum": ["image", "frame", "video"]], "relevance": number, "cosine": number,
            "metadata": ["type": "object", "additionalProperties": string], "source": string,
            "start": number, "end": number, "best": number, "frame": string, "moments": ["type": "array", "items": moment]]]
        return ["type": "object", "required": ["results"], "properties": ["results": ["type": "array", "items": hit]]]
    }
}

/// A JSON response from an `Encodable` body (keys sorted, as `jsonResponse` writes them).
func bodyResponse(_ body: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
}

/// The server's request context: Hummingbird's basic one, with a decoder that reads JSON bodies as the API
/// documents them and answers a bad one with Azure's error shape.
struct ServerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    var requestDecoder: JSONBodyDecoder { JSONBodyDecoder() }
}

/// Decodes a JSON body of at most `RequestInputs.jsonLimit` bytes with Foundation's `JSONDecoder` (which
/// takes `true` for no number and `"10"` for no integer) after refusing `null` in the type's fields, which
/// none of them takes (fields the type does not have are ignored). Every failure is Azure's
/// `InvalidRequestBody` naming the field.
struct JSONBodyDecoder: RequestDecoder {
    func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        let bytes = try await RequestInputs.body(request, limit: RequestInputs.jsonLimit, tooLarge: "InvalidRequestBody")
        return try Self.decode(type, from: Data(bytes))
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        func refuse(_ message: String) -> AzureError { .invalidRequest("InvalidRequestBody", message) }
        guard !data.isEmpty else { throw refuse("The request body is empty.") }
        let decoder = JSONDecoder()
        let fields: [String: NullField]
        do {
            fields = try decoder.decode([String: NullField].self, from: data)
        } catch DecodingError.typeMismatch {
            throw refuse("The request body is JSON but not an object.")
        } catch {
            throw refuse("The request body is not valid JSON in UTF-8.")
        }
        // Only the type's own fields: others are ignored, whatever they hold.
        let known = ((type as? any DocumentedBody.Type)?.schema["properties"] as? [String: Any]).map { Set($0.keys) }
        if let null = fields.first(where: { $0.value.isNull && known?.contains($0.key) != false })?.key {
            throw refuse("The field \(null) is null; leave it out instead.")
        }
        do {
            return try decoder.decode(type, from: data)
        } catch DecodingError.typeMismatch(let expected, let context) {
            throw refuse("The field \(Self.path(context)) must be \(Self.kind(expected)).")
        } catch DecodingError.keyNotFound(let key, _) {
            throw refuse("The body needs the field \(key.stringValue).")
        } catch DecodingError.valueNotFound(_, let context) {
            throw refuse("The field \(Self.path(context)) is null; leave it out instead.")
        } catch {
            // The JSON was read above: what is left is a number that does not fit its field.
            throw refuse("A number in the body does not fit its field (integers are whole numbers within range).")
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.reduce("") { path, key in
            key.intValue.map { path + "[\($0)]" } ?? (path.isEmpty ? key.stringValue : path + "." + key.stringValue)
        }
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "an array of strings" : "an object of strings"
        }
    }
}

/// Any JSON value, noting only whether it is null.
private struct NullField: Decodable {
    let isNull: Bool

    init(from decoder: any Decoder) throws {
        isNull = (try? decoder.singleValueContainer().decodeNil()) ?? false
    }
}
