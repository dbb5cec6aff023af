/// The OpenAPI 3.1 description served at `/openapi.json`.
enum OpenAPIDocument {
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
            "429": ["description": "Rate limit exceeded; see Retry-After", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]],
        ]
        func ok(_ schema: [String: Any]) -> [String: Any] {
            ["200": ["description": "The vector", "content": ["application/json": ["schema": schema]]]].merging(errors) { a, _ in a }
        }
        let binary: [String: Any] = ["type": "string", "format": "binary"]
        return [
            "openapi": "3.1.0",
            "info": ["title": "Loupe", "version": "0.1.0",
                     "description": "Local CLIP embeddings with Azure AI Vision's multimodal embeddings API."],
            "paths": [
                "/computervision/retrieval:vectorizeImage": ["post": [
                    "operationId": "vectorizeImage", "parameters": query + [key],
                    "requestBody": ["required": true, "content": [
                        "application/octet-stream": ["schema": binary], "image/*": ["schema": binary],
                        "multipart/form-data": ["schema": ["type": "object", "properties": ["file": binary]]],
                        "application/json": ["schema": ["type": "object", "required": ["url"],
                                                        "properties": ["url": ["type": "string", "format": "uri"]]]],
                    ]],
                    "responses": ok(vector),
                ]],
                "/computervision/retrieval:vectorizeText": ["post": [
                    "operationId": "vectorizeText", "parameters": query + [key],
                    "requestBody": ["required": true, "content": ["application/json": ["schema": [
                        "type": "object", "required": ["text"], "properties": ["text": ["type": "string", "maxLength": 10000]]]]]],
                    "responses": ok(vector),
                ]],
                "/health": ["get": ["operationId": "health", "responses": ["200": ["description": "The process is up"]]]],
                "/ready": ["get": ["operationId": "ready", "responses": ["200": ["description": "Models are loaded"]]]],
                "/metrics": ["get": ["operationId": "metrics", "responses": ["200": ["description": "Prometheus metrics",
                                                                                         "content": ["text/plain": ["schema": ["type": "string"]]]]]]],
            ],
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
}
