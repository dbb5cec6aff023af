import Crypto
import Foundation
import ImageCollections
import ImageIO
import Ingest
import LoupeTestSupport
import Server
import StoreEmbedded
import StorePostgres
import StoreMilvus
import Testing

@Suite struct CollectionRoutesTests {
    static let json = ["Content-Type": "application/json"]

    static func store(_ kind: String = "embedded") async throws -> CollectionStore {
        switch kind {
        case "postgres": try await CollectionStore.postgres(url: try TestPostgres.freshURL())
        case "milvus": try await CollectionStore.milvus(url: try TestMilvus.freshURL())
        default: try CollectionStore.embedded(folder: FileManager.default.temporaryDirectory.appendingPathComponent("loupe-routes-\(UUID())"))
        }
    }

    @Test(arguments: ["embedded", "postgres", "milvus"])
    func createAddGetSearchAndDelete(_ kind: String) async throws {
        let store = try await Self.store(kind)
        let uploads = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-uploads-\(UUID())")
        let model = ServerHarness.models["tiny-quickgelu"]!
        let files = ["landscape_rgb_512x384.png", "gray_l_320x240.jpg", "cmyk_360x240.jpg"]
        try await ServerHarness.withServer(configure: { $0.uploadsFolder = uploads }, store: store) { base, send in
            let created = try await send.send(base + "/collections", headers: Self.json, body: Data(#"{"name": "paintings"}"#.utf8))
            #expect(created.status == 201)
            for file in files {
                let reply = try await send.send(base + "/collections/paintings/items?id=\(file)", headers: ["Content-Type": "image/png"],
                                                body: try ServerHarness.image(file))
                #expect(reply.status == 201, "\(String(decoding: reply.body, as: UTF8.self))")
            }
            let listed = try await send.send(.GET, base + "/collections").json["collections"] as? [[String: Any]]
            #expect(listed?.first?["items"] as? Int == 3)
            #expect(listed?.first?["modelVersion"] as? String == "2023-04-15")

            let item = try await send.send(.GET, base + "/collections/paintings/items/cmyk_360x240.jpg")
            #expect(item.json["id"] as? String == "cmyk_360x240.jpg")
            let image = try await send.send(.GET, base + "/collections/paintings/items/cmyk_360x240.jpg/image")
            #expect(image.status == 200 && image.headers["content-type"] == "image/jpeg")
            #expect(image.body == (try ServerHarness.image("cmyk_360x240.jpg")))
            let thumbnail = try await send.send(.GET, base + "/collections/paintings/items/landscape_rgb_512x384.png/thumbnail")
            #expect(thumbnail.status == 200 && thumbnail.headers["content-type"] == "image/jpeg")
            let preview = try ImageDecoder().decode(thumbnail.body)
            #expect(preview.width == 320 && preview.height == 240)
            let etag = try #require(thumbnail.headers["etag"])
            #expect(thumbnail.headers["cache-control"]?.contains("max-age") == true)
            let cached = try await send.send(.GET, base + "/collections/paintings/items/landscape_rgb_512x384.png/thumbnail", headers: ["If-None-Match": etag])
            #expect(cached.status == 304 && cached.body.isEmpty)

            // Text search ranks by the model's own similarities.
            let text = "a painting of a blue house"
            let query = try model.embed(text: text)
            let expected = try files.map { file -> (String, Float) in
                let vector = model.embed(image: try ImageDecoder().decode(ServerHarness.image(file)).rgb())
                return (file, zip(query, vector).map(*).reduce(0, +))
            }.sorted { $0.1 > $1.1 }.map(\.0)
            let search = try await send.send(base + "/collections/paintings/search", headers: Self.json,
                                             body: Data(#"{"text": "\#(text)", "k": 3}"#.utf8))
            #expect(((search.json["results"] as? [[String: Any]]) ?? []).map { $0["id"] as? String } == expected)

            // Hybrid: uploads carry no metadata, so the text adds nothing and the order stays the vector order.
            // Milvus ranks no text: a clear 501.
            let hybrid = try await send.send(base + "/collections/paintings/search", headers: Self.json,
                                             body: Data(#"{"text": "\#(text)", "k": 3, "hybrid": true}"#.utf8))
            if kind == "milvus" {
                #expect(hybrid.status == 501 && (hybrid.json["error"] as? [String: Any])?["code"] as? String == "NotSupportedByStore", "\(String(decoding: hybrid.body, as: UTF8.self))")
            } else {
                #expect(((hybrid.json["results"] as? [[String: Any]]) ?? []).map { $0["id"] as? String } == expected)
            }
            let badWeight = try await send.send(base + "/collections/paintings/search", headers: Self.json,
                                                body: Data(#"{"text": "x", "hybrid": true, "vectorWeight": 2}"#.utf8))
            #expect(badWeight.status == 400)

            // More like this: the item itself first.
            let like = try await send.send(base + "/collections/paintings/search", headers: Self.json,
                                           body: Data(#"{"like": "gray_l_320x240.jpg", "k": 1}"#.utf8))
            #expect(((like.json["results"] as? [[String: Any]]) ?? []).first?["id"] as? String == "gray_l_320x240.jpg")
            // By image upload.
            let byImage = try await send.send(base + "/collections/paintings/search?k=1", headers: ["Content-Type": "image/png"],
                                              body: try ServerHarness.image("landscape_rgb_512x384.png"))
            #expect(((byImage.json["results"] as? [[String: Any]]) ?? []).first?["id"] as? String == "landscape_rgb_512x384.png")

            #expect(try await send.send(.DELETE, base + "/collections/paintings/items/gray_l_320x240.jpg").status == 204)
            #expect(try await send.send(.GET, base + "/collections/paintings/items/gray_l_320x240.jpg").status == 404)
            #expect(try await send.send(.DELETE, base + "/collections/paintings").status == 204)
            #expect(try await send.send(.GET, base + "/collections/paintings/items/cmyk_360x240.jpg").status == 404)
        }
    }

    /// Phone and icon formats through the routes: uploaded, served back with their own media type (the
    /// page falls back to the JPEG thumbnail where a browser shows no HEIC), and found by themselves.
    @Test func heicAvifAndIconItemsAreStoredServedAndFound() async throws {
        let store = try await Self.store("embedded")
        let uploads = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-uploads-\(UUID())")
        defer { try? FileManager.default.removeItem(at: uploads) }
        let formats = ServerHarness.fixtures.appendingPathComponent("formats")
        let files = [("photo.heic", "image/heic"), ("alpha.avif", "image/avif"), ("bitmap-32.ico", "image/x-icon")]
        try await ServerHarness.withServer(configure: { $0.uploadsFolder = uploads }, store: store) { base, send in
            #expect(try await send.send(base + "/collections", headers: Self.json, body: Data(#"{"name": "phone"}"#.utf8)).status == 201)
            for (file, _) in files {
                let reply = try await send.send(base + "/collections/phone/items?id=\(file)", headers: ["Content-Type": "application/octet-stream"],
                                                body: try Data(contentsOf: formats.appendingPathComponent(file)))
                #expect(reply.status == 201, "\(file): \(String(decoding: reply.body, as: UTF8.self))")
            }
            for (file, type) in files {
                let image = try await send.send(.GET, base + "/collections/phone/items/\(file)/image")
                #expect(image.status == 200 && image.headers["content-type"] == type, "\(file)")
                #expect(image.body == (try Data(contentsOf: formats.appendingPathComponent(file))))
                let thumbnail = try await send.send(.GET, base + "/collections/phone/items/\(file)/thumbnail")
                #expect(thumbnail.headers["content-type"] == "image/jpeg" && ImageFormat(signature: thumbnail.body) == .jpeg)
                let found = try await send.send(base + "/collections/phone/search?k=1", headers: ["Content-Type": "application/octet-stream"],
                                                body: try Data(contentsOf: formats.appendingPathComponent(file)))
                #expect(((found.json["results"] as? [[String: Any]]) ?? []).first?["id"] as? String == file)
            }
        }
    }

    /// An id with a NUL is refused with a 400 and never lands on, or finds, the item whose id is its prefix.
    @Test(arguments: ["embedded", "postgres", "milvus"])
    func aNULInAnItemIdNeverAliasesAnotherItem(_ kind: String) async throws {
        let store = try await Self.store(kind)
        let uploads = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-uploads-\(UUID())")
        try await ServerHarness.withServer(configure: { $0.uploadsFolder = uploads }, store: store) { base, send in
            _ = try await send.send(base + "/collections", headers: Self.json, body: Data(#"{"name": "c"}"#.utf8))
            let png = try ServerHarness.image("tiny_rgb_50x40.png")
            #expect(try await send.send(base + "/collections/c/items?id=victim", headers: ["Content-Type": "image/png"], body: png).status == 201)
            let before = try await send.send(.GET, base + "/collections/c/items/victim").json["contentHash"] as? String
            let attack = try await send.send(base + "/collections/c/items?id=victim%00attacker", headers: ["Content-Type": "image/jpeg"],
                                             body: try ServerHarness.image("cmyk_360x240.jpg"))
            #expect(attack.status == 400 && attack.innerCode == "InvalidRequest", "\(String(decoding: attack.body, as: UTF8.self))")
            #expect(String(decoding: attack.body, as: UTF8.self).contains("NUL"))
            let lookup = try await send.send(.GET, base + "/collections/c/items/victim%00anything")
            #expect(lookup.status == 400)
            let victim = try await send.send(.GET, base + "/collections/c/items/victim")
            #expect(before != nil && victim.json["contentHash"] as? String == before)
            #expect(try await store.collection("c")?.itemCount == 1)
        }
    }

    @Test func badRequestsAreRefusedClearly() async throws {
        let store = try await Self.store()
        _ = try await store.openCollection("other-model", model: ModelIdentity(id: "elsewhere", revision: "r", dimension: 16))
        try await ServerHarness.withServer(configure: { $0.uploadsFolder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-uploads-\(UUID())") }, store: store) { base, send in
            _ = try await send.send(base + "/collections", headers: Self.json, body: Data(#"{"name": "c"}"#.utf8))
            let cases: [(String, String, [String: String], Data?, Int, String)] = [
                ("POST", "/collections", Self.json, Data(#"{"name": "a b"}"#.utf8), 400, "InvalidRequest"),
                ("POST", "/collections", Self.json, Data(#"{"name": "x", "modelVersion": "9999"}"#.utf8), 400, "InvalidModel"),
                ("POST", "/collections", Self.json, Data("[1]".utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections", Self.json, Data(), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x""#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(("{\"text\":\"" + String(repeating: "x", count: 300_000) + "\"}").utf8), 400,
                 "InvalidRequestBody"),
                ("POST", "/collections/c/items?id=", ["Content-Type": "image/png"], try ServerHarness.image("tiny_rgb_50x40.png"), 400, "InvalidRequestBody"),
                // Fields of the wrong type are refused, never read as absent or turned into text.
                ("POST", "/collections", Self.json, Data(#"{"name": "y", "modelVersion": {}}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/items", Self.json, Data(#"{"url": "http://127.0.0.1:9/a.png", "id": 5}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/items", Self.json, Data(#"{"url": "http://127.0.0.1:9/a.png", "metadata": {"year": 1889}}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "filters": "DATE>=1800"}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "hybrid": 1}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "vectorWeight": true}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": 5, "like": "missing"}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/items?id=x", ["Content-Type": "image/png"], Data("<html>".utf8), 400, "InvalidImageFormat"),
                ("POST", "/collections/c/items", Self.json, Data(#"{"url": "http://127.0.0.1:9/a.png"}"#.utf8), 400, "InvalidImageUrl"),
                ("POST", "/collections/nope/items?id=x", ["Content-Type": "image/png"], try ServerHarness.image("tiny_rgb_50x40.png"), 404, "CollectionNotFound"),
                ("POST", "/collections/other-model/search", Self.json, Data(#"{"text": "x"}"#.utf8), 409, "ModelNotServed"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "filters": ["DATE>>1"]}"#.utf8), 400, "InvalidFilter"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": 0}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": true}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": "10"}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": null}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": 1.5}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": []}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": 9223372036854775808}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"text": "x", "k": 1001}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search?k=abc", Self.json, Data(#"{"text": "x"}"#.utf8), 400, "InvalidRequestBody"),
                ("POST", "/collections/c/search", Self.json, Data(#"{"like": "missing"}"#.utf8), 404, "ItemNotFound"),
                ("POST", "/collections/c/search", ["Content-Type": "text/plain"], Data("x".utf8), 400, "UnsupportedMediaType"),
                ("GET", "/collections/c/items/..%2F..%2Fetc%2Fpasswd/image", [:], nil, 404, "ItemNotFound"),
                ("DELETE", "/collections/nope", [:], nil, 404, "CollectionNotFound"),
            ]
            // An image uploaded without an id is named by its SHA-256.
            let image = try ServerHarness.image("tiny_rgb_50x40.png")
            let unnamed = try await send.send(base + "/collections/c/items", headers: ["Content-Type": "image/png"], body: image)
            #expect(unnamed.status == 201)
            #expect(unnamed.json["id"] as? String == SHA256.hash(data: image).map { String(format: "%02x", $0) }.joined())
            // A number with a zero fraction is an integer, as JSON Schema counts it.
            #expect(try await send.send(base + "/collections/c/search", headers: Self.json, body: Data(#"{"text": "x", "k": 2.0}"#.utf8)).status == 200)
            for (method, path, headers, body, status, code) in cases {
                let reply = try await send.send(.init(rawValue: method), base + path, headers: headers, body: body)
                #expect(reply.status == status, "\(method) \(path): \(String(decoding: reply.body, as: UTF8.self))")
                #expect((reply.innerCode ?? reply.errorCode) == code, "\(method) \(path): \(String(decoding: reply.body, as: UTF8.self))")
            }
        }
    }
}
