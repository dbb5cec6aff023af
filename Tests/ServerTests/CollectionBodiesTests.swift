import Foundation
import Testing

@testable import Server

/// The collection routes' body types against the schemas the OpenAPI document is made of: a body with
/// every documented property decodes, and encodes back to exactly those properties; dropping a property
/// the schema requires fails to decode, dropping any other does not.
@Suite struct CollectionBodiesTests {
    static var hit: [String: Any] { ["id": "v.mp4", "kind": "video", "relevance": 0.5, "cosine": 0.25, "metadata": ["a": "b"], "source": "/x",
                                     "start": 1.0, "end": 2.0, "best": 1.5, "frame": "v.mp4#t=1.5",
                                     "moments": [["start": 1.0, "end": 2.0, "best": 1.5, "relevance": 0.5, "cosine": 0.25, "frame": "f"]]] }
    static var summary: [String: Any] { ["name": "c", "items": 3, "model": "m", "dimension": 512, "modelVersion": "2023-04-15"] }

    /// Each type with a body that holds every property its schema lists.
    static var examples: [(any DocumentedBody.Type, [String: Any])] { [
        (CreateCollectionRequest.self, ["name": "c", "modelVersion": "2023-04-15"]),
        (AddItemRequest.self, ["url": "https://example.com/a.png", "id": "a", "metadata": ["title": "A"]]),
        (SearchRequest.self, ["text": "a blue house", "like": "a", "url": "https://example.com/a.png", "k": 5, "filters": ["year>=1800"],
                              "hybrid": true, "vectorWeight": 0.5, "groupBy": "frame"]),
        (CollectionSummary.self, summary),
        (CollectionList.self, ["collections": [summary]]),
        (CreatedCollection.self, ["name": "c", "items": 0, "modelVersion": "2023-04-15"]),
        (AddedItem.self, ["id": "a", "collection": "c"]),
        (ItemDetails.self, ["id": "a", "metadata": ["title": "A"], "contentHash": "abc"]),
        (SearchResults.self, ["results": [hit]]),
    ] }

    @Test func everyBodyTypeHasAnExample() { #expect(Self.examples.count == 9) }

    @Test(arguments: 0..<9)
    func eachSchemaListsExactlyTheTypesFields(_ index: Int) throws {
        let (type, full) = Self.examples[index]
        let properties = try #require(type.schema["properties"] as? [String: Any])
        #expect(Set(full.keys) == Set(properties.keys), "\(type): the example covers the schema")
        let decoded = try JSONBodyDecoder.decode(type, from: try JSONSerialization.data(withJSONObject: full))
        let encoded = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(decoded)) as? [String: Any])
        #expect(Set(encoded.keys) == Set(properties.keys), "\(type) has fields the schema does not list, or lacks some")
        let required = Set(type.schema["required"] as? [String] ?? [])
        for key in properties.keys {
            var without = full
            without[key] = nil
            let decodes = (try? JSONBodyDecoder.decode(type, from: try JSONSerialization.data(withJSONObject: without))) != nil
            // AddItemRequest's id is required by the document (a client names its item) but optional to the
            // server, which falls back to the URL.
            let optionalToServer = type == AddItemRequest.self && key == "id"
            #expect(decodes == (!required.contains(key) || optionalToServer), "\(type).\(key)")
        }
    }

    @Test func nestedSchemasAreTheTypesOwn() throws {
        let list = try #require((CollectionList.schema["properties"] as? [String: Any])?["collections"] as? [String: Any])
        #expect(NSDictionary(dictionary: list["items"] as? [String: Any] ?? [:]).isEqual(to: CollectionSummary.schema))
        let hit = try #require(((SearchResults.schema["properties"] as? [String: Any])?["results"] as? [String: Any])?["items"] as? [String: Any])
        let hitProperties = try #require(hit["properties"] as? [String: Any])
        #expect(Set(hitProperties.keys) == Set(Self.hit.keys))
        let moment = try #require(((hitProperties["moments"] as? [String: Any])?["items"] as? [String: Any])?["properties"] as? [String: Any])
        #expect(Set(moment.keys) == Set(((Self.hit["moments"] as? [[String: Any]])?.first ?? [:]).keys))
    }

    @Test func badBodiesAreRefusedNamingTheField() throws {
        let cases: [(String, String)] = [
            ("", "The request body is empty."),
            ("{", "not valid JSON"),
            ("[1]", "JSON but not an object"),
            (#"{"text": "x", "k": null}"#, "The field k is null"),
            (#"{"text": "x", "k": "10"}"#, "The field k must be an integer"),
            (#"{"text": "x", "k": 1.5}"#, "does not fit its field"),
            (#"{"text": "x", "k": 9223372036854775808}"#, "does not fit its field"),
            (#"{"text": "x", "hybrid": 1}"#, "The field hybrid must be true or false"),
            (#"{"text": "x", "vectorWeight": true}"#, "The field vectorWeight must be a number"),
            (#"{"text": "x", "filters": "a>=1"}"#, "The field filters must be an array of strings"),
            (#"{"text": "x", "filters": ["a", 2]}"#, "The field filters[1] must be a string"),
        ]
        for (body, message) in cases {
            #expect {
                try JSONBodyDecoder.decode(SearchRequest.self, from: Data(body.utf8))
            } throws: { error in
                (error as? AzureError)?.message.contains(message) == true
            }
        }
        #expect {
            try JSONBodyDecoder.decode(AddItemRequest.self, from: Data(#"{"url": "u", "metadata": {"year": 1889}}"#.utf8))
        } throws: { ($0 as? AzureError)?.message.contains("The field metadata.year must be a string") == true }
        #expect {
            try JSONBodyDecoder.decode(AddItemRequest.self, from: Data(#"{"id": "a"}"#.utf8))
        } throws: { ($0 as? AzureError)?.message.contains("The body needs the field url") == true }
        // Fields the type does not have are ignored, null or not.
        #expect(try JSONBodyDecoder.decode(SearchRequest.self, from: Data(#"{"text": "x", "other": null}"#.utf8)).text == "x")
        // A number with a zero fraction is an integer, as JSON Schema counts it.
        #expect(try JSONBodyDecoder.decode(SearchRequest.self, from: Data(#"{"text": "x", "k": 2.0}"#.utf8)).k == 2)
    }
}
