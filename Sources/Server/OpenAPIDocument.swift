import ImageCollections

/// The OpenAPI 3.1 description served at `/openapi.json`.
enum OpenAPIDocument {
    /// A text needs one character that is neither white space nor a control character the text clean-up
    /// removes (CLIP's ftfy step); one made only of those has nothing to embed.
    static let textPattern = #"[^\s\x00-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]"#

    static func make(versions: [String]) -> [String: Any] {
        let query: [[String: Any]] = [
            ["name": "api-version", "in": "query", "required": true,
             "schema": ["type": "string", "enum": ServerConfiguration.apiVersions.sorted()]],
            ["name": "model-version", "in": "query", "required": false,
             "schema": ["type": "string", "enum": versions.sorted() + ["latest"]]],
        ]
        let key: [String: Any] = ["name": "Ocp-Apim-Subscription-Key", "in": "header", "required": false, "schema": ["type": "string"]]
        let vector: [String: Any] = ["$ref": "#/components/schemas/VectorResult"]
        let errors: [String: Any] = [
            "400": ["description": "Invalid input", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
            "401": ["description": "Missing or wrong subscription key", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
            "404": ["description": "Unknown api-version (Azure's gateway answers so) or resource", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
            "429": ["description": "Rate limit exceeded; see Retry-After", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
        ]
        /// A collection route's answers: its success, the shared errors, and the collection's own.
        func answers(_ description: String, _ status: Int) -> [String: Any] {
            let error: [String: Any] = ["content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
            return [String(status): ["description": description],
                    "404": error.merging(["description": "No such collection or item"]) { a, _ in a },
                    "409": error.merging(["description": "The collection's model is not served here"]) { a, _ in a }]
                .merging(errors) { a, _ in a }
        }
        func ok(_ schema: [String: Any]) -> [String: Any] {
            ["200": ["description": "The vector", "content": ["application/json": ["schema": schema]]]].merging(errors) { a, _ in a }
        }
        let binary: [String: Any] = ["type": "string", "format": "binary",
                                     "description": "JPEG, PNG, WebP, GIF, BMP or TIFF; 1 byte to 20 MB; each side 10 to 16,000 pixels"]
        return [
            "openapi": "3.1.0",
            "info": ["title": "Loupe", "version": "0.1.0",
                     "description": "Local CLIP embeddings with Azure AI Vision's multimodal embeddings API. "
                        + "Every GET path answers HEAD too. A path asked with a method it does not list answers 405 with an Allow header; "
                        + "a request that is not valid HTTP/1.1 answers 400 (InvalidHTTPRequest), or 431 when its headers are too large."],
            "paths": collectionPaths(key: key, binary: binary, versions: versions, answers: answers).merging([
                "/computervision/retrieval:vectorizeImage": ["post": [
                    "operationId": "vectorizeImage", "parameters": query + [key],
                    "requestBody": ["required": true, "content": [
                        "application/octet-stream": ["schema": binary], "image/*": ["schema": binary],
                        "multipart/form-data": ["schema": ["type": "object", "required": ["file"], "properties": ["file": binary]]],
                        "application/json": ["schema": ["type": "object", "required": ["url"],
                                                        "properties": ["url": ["type": "string", "format": "uri"]]]],
                    ]],
                    "responses": ok(vector),
                ]],
                "/computervision/retrieval:vectorizeText": ["post": [
                    "operationId": "vectorizeText", "parameters": query + [key],
                    "requestBody": ["required": true, "content": ["application/json": ["schema": [
                        "type": "object", "required": ["text"], "properties": ["text": [
                            "type": "string", "minLength": 1, "maxLength": 10000, "pattern": Self.textPattern,
                            "description": "1 to 70 words (runs of white space separate words)"]]]]]],
                    "responses": ok(vector),
                ]],
                "/classify": ["post": [
                    "operationId": "classify",
                    "description": "Zero-shot classification: each label's probability for the image, by the model family's rule (CLIP: a softmax across the labels).",
                    "parameters": [key, ["name": "model-version", "in": "query", "required": false,
                                         "schema": ["type": "string", "enum": versions.sorted() + ["latest"]]],
                                   ["name": "label", "in": "query", "required": false, "description": "With an image body: a label (repeat it)",
                                    "schema": ["type": "array", "items": ["type": "string"]], "style": "form", "explode": true]],
                    "requestBody": ["required": true, "content": [
                        "application/json": ["schema": ["type": "object", "required": ["labels", "url"], "properties": [
                            "labels": ["type": "array", "minItems": 1, "maxItems": 64,
                                       "items": ["type": "string", "minLength": 1, "maxLength": 10000, "pattern": Self.textPattern]],
                            "url": ["type": "string", "format": "uri"],
                            "modelVersion": ["type": "string", "enum": versions.sorted() + ["latest"]]]]],
                        "application/octet-stream": ["schema": binary], "image/*": ["schema": binary],
                    ]],
                    "responses": ["200": ["description": "The labels in the order given, each with its score", "content": ["application/json": ["schema": [
                        "type": "object", "required": ["modelVersion", "labels"], "properties": [
                            "modelVersion": ["type": "string"],
                            "labels": ["type": "array", "items": ["type": "object", "required": ["label", "score"], "properties": [
                                "label": ["type": "string"], "score": ["type": "number", "minimum": 0, "maximum": 1]]]]]]]]]].merging(errors) { a, _ in a },
                ]],
                "/health": ["get": ["operationId": "health", "responses": ["200": ["description": "The process is up"]]]],
                "/ready": ["get": ["operationId": "ready", "responses": ["200": ["description": "Models are loaded"]]]],
                "/openapi.json": ["get": ["operationId": "openapi", "responses": ["200": ["description": "This document"]]]],
                "/metrics": ["get": ["operationId": "metrics", "responses": ["200": ["description": "Prometheus metrics",
                                                                                         "content": ["text/plain": ["schema": ["type": "string"]]]]]]],
            ] as [String: Any]) { a, _ in a },
            "components": ["schemas": [
                "VectorResult": ["type": "object", "required": ["modelVersion", "vector"], "properties": [
                    "modelVersion": ["type": "string"], "vector": ["type": "array", "items": ["type": "number"]]]],
                "Error": ["type": "object", "required": ["error"], "properties": ["error": [
                    "type": "object", "required": ["code", "message"], "properties": [
                        "code": ["type": "string"], "message": ["type": "string"],
                        "innererror": ["type": "object", "properties": ["code": ["type": "string"], "message": ["type": "string"]]],
                    ]]]],
            ]],
        ]
    }

    /// Loupe's own collection routes.
    static func collectionPaths(key: [String: Any], binary: [String: Any], versions: [String], answers: (String, Int) -> [String: Any]) -> [String: Any] {
        let collection: [String: Any] = ["name": "name", "in": "path", "required": true, "schema": ["type": "string"]]
        let item: [String: Any] = ["name": "id", "in": "path", "required": true, "schema": ["type": "string"]]
        let idQuery: [String: Any] = ["name": "id", "in": "query", "required": false, "schema": ["type": "string", "minLength": 1, "maxLength": 512],
                                      "description": "The item's id; without it, the JSON body's id, else its url, or an image body's SHA-256"]
        let kQuery: [String: Any] = ["name": "k", "in": "query", "required": false, "schema": ["type": "integer", "minimum": 1, "maximum": 1000]]
        let groupByQuery: [String: Any] = ["name": "groupBy", "in": "query", "required": false, "schema": ["type": "string", "enum": ["video", "frame"]],
                                           "description": "video (default): one result per video with its moments; frame: each frame alone"]
        let rangeHeader: [String: Any] = ["name": "Range", "in": "header", "required": false, "schema": ["type": "string"],
                                          "description": "One byte range (bytes=FIRST-LAST, bytes=FIRST-, bytes=-SUFFIX); others get the whole file"]
        // The type's schema, with the model versions this server runs.
        var createJSON = CreateCollectionRequest.schema
        var createProperties = createJSON["properties"] as? [String: Any] ?? [:]
        createProperties["modelVersion"] = ["type": "string", "enum": versions.sorted()]
        createJSON["properties"] = createProperties
        func body(json: [String: Any], images: Bool) -> [String: Any] {
            var content: [String: Any] = ["application/json": ["schema": json]]
            if images {
                content["application/octet-stream"] = ["schema": binary]
                content["image/*"] = ["schema": binary]
            }
            return ["required": true, "content": content]
        }
        /// `returns` is the answer's body type, whose schema the success status gets.
        func operation(_ id: String, _ parameters: [[String: Any]], _ description: String, _ status: Int, body: [String: Any]? = nil,
                       returns: DocumentedBody.Type? = nil) -> [String: Any] {
            var responses = answers(description, status)
            if let returns {
                responses[String(status)] = ["description": description, "content": ["application/json": ["schema": returns.schema]]]
            }
            var operation: [String: Any] = ["operationId": id, "parameters": [key] + parameters, "responses": responses]
            if let body { operation["requestBody"] = body }
            return operation
        }
        var searchOperation = operation("search", [collection, kQuery, groupByQuery], "Results, best first", 200,
                                        body: body(json: SearchRequest.schema, images: true), returns: SearchResults.self)
        var searchResponses = searchOperation["responses"] as? [String: Any] ?? [:]
        searchResponses["501"] = ["description": "Hybrid search in a store that ranks no text (Milvus)",
                                  "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
        searchOperation["responses"] = searchResponses
        return [
            "/collections": ["get": operation("listCollections", [], "The collections", 200, returns: CollectionList.self),
                             "post": operation("createCollection", [], "Created", 201, body: body(json: createJSON, images: false),
                                               returns: CreatedCollection.self)],
            "/collections/{name}": ["delete": operation("deleteCollection", [collection], "Deleted", 204)],
            "/collections/{name}/items": ["post": operation("addItem", [collection, idQuery], "Added", 201, body: body(json: AddItemRequest.schema, images: true),
                                                            returns: AddedItem.self)],
            "/collections/{name}/items/{id}": ["get": operation("getItem", [collection, item], "The item", 200, returns: ItemDetails.self),
                                               "delete": operation("deleteItem", [collection, item], "Deleted", 204)],
            "/collections/{name}/items/{id}/image": ["get": operation("getItemImage", [collection, item], "The stored image", 200)],
            "/collections/{name}/items/{id}/thumbnail": ["get": operation("getItemThumbnail", [collection, item], "A 320-pixel JPEG", 200)],
            "/collections/{name}/items/{id}/video": ["get": operation("getItemVideo", [collection, item, rangeHeader], "The video a frame was taken from", 200)
                .merging(["responses": answers("The video a frame was taken from", 200).merging([
                    "206": ["description": "The byte range asked for, with Content-Range"],
                    "416": ["description": "The range starts past the end; Content-Range: bytes */SIZE"],
                ]) { a, _ in a }]) { _, b in b }],
            "/collections/{name}/search": ["post": searchOperation],
        ]
    }
}
