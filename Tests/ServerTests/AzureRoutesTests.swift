import Foundation
import ImageIO
import Server
import Testing

@Suite struct AzureRoutesTests {
    static let query = "?api-version=2024-02-01"
    static let text = "/computervision/retrieval:vectorizeText"
    static let image = "/computervision/retrieval:vectorizeImage"
    static let json = ["Content-Type": "application/json"]
    static let binary = ["Content-Type": "application/octet-stream"]

    static func expectClose(_ a: [Float]?, _ b: [Float]) {
        guard let a else {
            Issue.record("no vector in the response")
            return
        }
        #expect(a.count == b.count)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 })
    }

    @Test func vectorizeTextAnswersWithTheModelsVector() async throws {
        let quick = ServerHarness.models["tiny-quickgelu"]!, gelu = ServerHarness.models["tiny-gelu"]!
        try await ServerHarness.withServer { base, send in
            let body = Data(#"{"text": "a blue house"}"#.utf8)
            let reply = try await send.send(base + Self.text + Self.query, headers: Self.json, body: body)
            #expect(reply.status == 200)
            #expect(reply.json["modelVersion"] as? String == "2023-04-15")
            Self.expectClose(reply.vector, try quick.embed(text: "a blue house"))
            for query in ["&model-version=tiny-gelu", "&modelVersion=tiny-gelu"] {
                let other = try await send.send(base + Self.text + Self.query + query, headers: Self.json, body: body)
                #expect(other.json["modelVersion"] as? String == "tiny-gelu")
                Self.expectClose(other.vector, try gelu.embed(text: "a blue house"))
            }
            let latest = try await send.send(base + Self.text + "?api-version=2023-02-01-preview&model-version=latest", headers: Self.json, body: body)
            #expect(latest.json["modelVersion"] as? String == "2023-04-15")
        }
    }

    @Test func vectorizeImageAcceptsBinaryImageTypesAndMultipart() async throws {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let jpeg = try ServerHarness.image("photo_progressive_800x600.jpg")
        let expected = model.embed(image: try ImageDecoder().decode(jpeg).rgb())
        try await ServerHarness.withServer { base, send in
            for contentType in ["application/octet-stream", "image/jpeg", "image/png"] {
                let reply = try await send.send(base + Self.image + Self.query, headers: ["Content-Type": contentType], body: jpeg)
                #expect(reply.status == 200, "\(contentType)")
                Self.expectClose(reply.vector, expected)
            }
            // The part named file is the image, wherever it stands among the others.
            var multipart = Data("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot an image\r\n".utf8)
            multipart.append(Data("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8))
            multipart.append(jpeg)
            multipart.append(Data("\r\n--XyZ--\r\n".utf8))
            let reply = try await send.send(base + Self.image + Self.query,
                                            headers: ["Content-Type": "multipart/form-data; boundary=XyZ"], body: multipart)
            #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")
            Self.expectClose(reply.vector, expected)
        }
    }

    /// Every bad input: a 4xx with Azure's body, the inner code in `x-ms-error-code`, never a 500.
    @Test func badInputGetsAzureErrors() async throws {
        let tiny = try ServerHarness.image("tiny_rgb_50x40.png")
        let cases: [(path: String, headers: [String: String], body: Data?, status: Int, code: String)] = [
            (Self.text, Self.json, Data(#"{"text":"x"}"#.utf8), 400, "MissingApiVersionParameter"),
            (Self.text + "?api-version=2099-01-01", Self.json, Data(#"{"text":"x"}"#.utf8), 404, "404"),
            (Self.text + Self.query + "&model-version=1999-01-01", Self.json, Data(#"{"text":"x"}"#.utf8), 400, "InvalidModel"),
            (Self.text + Self.query, Self.json, Data("{not json".utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, Data(#"{"txt":"x"}"#.utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, Data(#"{"text": 42}"#.utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, Data(#"["text"]"#.utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, nil, 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, Data(#"{"text":"   "}"#.utf8), 400, "InvalidTextLength"),
            (Self.text + Self.query, Self.json, Data(("{\"text\":\"" + String(repeating: "word ", count: 71) + "\"}").utf8), 400, "InvalidTextLength"),
            (Self.text + Self.query, Self.json, Data(("{\"text\":\"" + String(repeating: "x", count: 10_001) + "\"}").utf8), 400, "InvalidTextLength"),
            (Self.text + Self.query, Self.json, Data(("{\"text\":\"" + String(repeating: "x", count: 300_000) + "\"}").utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, Self.json, Data(#"{"text":"\ud800 lone"}"#.utf8), 400, "InvalidRequestBody"),
            (Self.text + Self.query, ["Content-Type": "text/plain"], Data("a blue house".utf8), 400, "UnsupportedMediaType"),
            (Self.image + Self.query, ["Content-Type": "text/plain"], tiny, 400, "UnsupportedMediaType"),
            (Self.image + Self.query, [:], tiny, 400, "UnsupportedMediaType"),
            (Self.image + Self.query, Self.binary, nil, 400, "InvalidImageSize"),
            (Self.image + Self.query, Self.binary, Data("<svg onload=alert(1)>".utf8), 400, "InvalidImageFormat"),
            (Self.image + Self.query, Self.binary, tiny.prefix(tiny.count / 2), 400, "InvalidImageFormat"),
            (Self.image + Self.query, Self.binary, Self.pngHeader(width: 9, height: 40), 400, "InvalidImageDimension"),
            (Self.image + Self.query, Self.binary, Self.pngHeader(width: 16_001, height: 40), 400, "InvalidImageDimension"),
            (Self.image + Self.query, ["Content-Type": "multipart/form-data"], tiny, 400, "InvalidRequestBody"),
            (Self.image + Self.query, ["Content-Type": "multipart/form-data; boundary=abc"], Data("--abc--\r\n".utf8), 400, "InvalidImageSize"),
            (Self.image + Self.query, Self.json, Data(#"{"url":"ftp://example.com/a.png"}"#.utf8), 400, "InvalidImageUrl"),
            (Self.image + Self.query, Self.json, Data(#"{"url":"not a url"}"#.utf8), 400, "InvalidImageUrl"),
            (Self.image + Self.query, Self.json, Data(#"{"url":"http://127.0.0.1:1/a.png"}"#.utf8), 400, "InvalidImageUrl"),
            (Self.image + Self.query, Self.json, Data(#"{"url":"http://169.254.169.254/latest/meta-data"}"#.utf8), 400, "InvalidImageUrl"),
            (Self.image + Self.query, Self.json, Data(#"{"url":"http://[::1]:80/"}"#.utf8), 400, "InvalidImageUrl"),
            ("/computervision/retrieval:vectorizeVideo" + Self.query, Self.json, Data("{}".utf8), 404, "404"),
            ("/../../etc/passwd", [:], nil, 404, "404"),
        ]
        try await ServerHarness.withServer { base, send in
            for item in cases {
                let reply = try await send.send(base + item.path, headers: item.headers, body: item.body)
                #expect(reply.status == item.status, "\(item.path) \(item.headers): \(String(decoding: reply.body, as: UTF8.self))")
                #expect((reply.innerCode ?? reply.errorCode) == item.code, "\(item.path): \(String(decoding: reply.body, as: UTF8.self))")
                #expect(reply.headers["x-ms-error-code"] == item.code)
                #expect(!String(decoding: reply.body, as: UTF8.self).contains("not a JSON object"), "a parse failure says what failed")
                #expect(reply.errorCode == (item.status == 400 ? "InvalidRequest" : String(item.status)))
            }
        }
    }

    @Test func bodiesOverTheLimitAreRefusedWithoutReadingThem() async throws {
        try await ServerHarness.withServer { base, send in
            let big = Data(count: 21 * 1024 * 1024 + 1)
            let reply = try await send.send(base + Self.image + Self.query, headers: Self.binary, body: big)
            #expect(reply.status == 400)
            #expect(reply.innerCode == "InvalidImageSize")
            // 20 MB of bytes that pass the body limit still fail the image's own 20 MB cap.
            var almost = Data([0xFF, 0xD8, 0xFF])
            almost.append(Data(count: 20 * 1024 * 1024 + 10))
            let second = try await send.send(base + Self.image + Self.query, headers: Self.binary, body: almost)
            #expect(second.status == 400)
            #expect(second.innerCode == "InvalidImageSize")
        }
    }

    @Test func keysAreRequiredWhenConfigured() async throws {
        try await ServerHarness.withServer(configure: { $0.keys = ["k-one", "k-two"] }) { base, send in
            let body = Data(#"{"text":"a blue house"}"#.utf8)
            let missing = try await send.send(base + Self.text + Self.query, headers: Self.json, body: body)
            #expect(missing.status == 401)
            #expect(missing.errorCode == "401")
            #expect(missing.headers["x-ms-error-code"] == "401")
            let wrong = try await send.send(base + Self.text + Self.query, headers: Self.json.merging(["Ocp-Apim-Subscription-Key": "k-on"]) { $1 }, body: body)
            #expect(wrong.status == 401)
            for key in ["k-one", "k-two"] {
                let right = try await send.send(base + Self.text + Self.query, headers: Self.json.merging(["Ocp-Apim-Subscription-Key": key]) { $1 }, body: body)
                #expect(right.status == 200)
            }
            #expect(try await send.send(.GET, base + "/health").status == 200)
        }
    }

    @Test func aKeyOverItsRateGets429WithRetryAfter() async throws {
        try await ServerHarness.withServer(configure: { $0.keys = ["a", "b"]; $0.rateLimit = 0.01; $0.rateBurst = 2 }) { base, send in
            let body = Data(#"{"text":"a blue house"}"#.utf8)
            func call(_ key: String) async throws -> ServerHarness.Reply {
                try await send.send(base + Self.text + Self.query, headers: Self.json.merging(["Ocp-Apim-Subscription-Key": key]) { $1 }, body: body)
            }
            #expect(try await call("a").status == 200)
            #expect(try await call("a").status == 200)
            let limited = try await call("a")
            #expect(limited.status == 429)
            #expect(limited.errorCode == "429")
            #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
            #expect(try await call("b").status == 200)  // other keys keep their own budget
        }
    }

    @Test func healthReadyMetricsAndOpenAPI() async throws {
        try await ServerHarness.withServer { base, send in
            #expect(try await send.send(.GET, base + "/health").json["status"] as? String == "ok")
            let ready = try await send.send(.GET, base + "/ready")
            #expect(ready.status == 200)
            #expect((ready.json["models"] as? [[String: Any]])?.count == 3)
            _ = try await send.send(base + Self.text + Self.query, headers: Self.json, body: Data(#"{"text":"x"}"#.utf8))
            _ = try await send.send(base + Self.text + Self.query, headers: Self.json, body: Data("{".utf8))
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            #expect(metrics.contains(#"loupe_http_requests_total{route="/computervision/retrieval:vectorizeText",status="200"} 1"#))
            #expect(metrics.contains(#"loupe_http_errors_total{code="InvalidRequestBody"} 1"#))
            #expect(metrics.contains("loupe_http_request_duration_seconds_bucket"))
            #expect(metrics.contains("loupe_batch_size_count 1"))
            let openapi = try await send.send(.GET, base + "/openapi.json").json
            #expect(openapi["openapi"] as? String == "3.1.0")
            #expect((openapi["paths"] as? [String: Any])?["/computervision/retrieval:vectorizeImage"] != nil)
            let paths = (openapi["paths"] as? [String: Any]) ?? [:]
            for path in ["/collections", "/collections/{name}", "/collections/{name}/items", "/collections/{name}/items/{id}",
                         "/collections/{name}/items/{id}/image", "/collections/{name}/items/{id}/thumbnail", "/collections/{name}/search"] {
                #expect(paths[path] != nil, "\(path) is described")
            }
        }
    }

    /// A client that sends part of a body and hangs up did nothing wrong on the server's side: it is counted
    /// apart (499, ClientClosedRequest), never as a 500.
    @Test func aClientThatDisconnectsMidBodyIsNotAServerError() async throws {
        try await ServerHarness.withServer { base, send in
            let port = try #require(URLComponents(string: base)?.port)
            let head = "POST \(Self.image + Self.query) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                + "Content-Length: 100000\r\n\r\n"
            try RawClient.sendAndHangUp(port: port, Data(head.utf8) + Data(repeating: 0xFF, count: 1000))
            var metrics = ""
            for _ in 0..<50 {
                metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
                if metrics.contains("ClientClosedRequest") { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(metrics.contains(#"loupe_http_errors_total{code="ClientClosedRequest"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"status="499""#))
            #expect(!metrics.contains(#"status="500""#) && !metrics.contains("InternalServerError"))
        }
    }

    /// Silent connections, idle or stopped in the middle of their headers, are closed after the idle timeout.
    @Test func silentConnectionsAreClosed() async throws {
        try await ServerHarness.withServer(configure: { $0.idleTimeout = .milliseconds(500) }) { base, send in
            let port = try #require(URLComponents(string: base)?.port)
            #expect(try RawClient.closedByServer(port: port, sending: Data(), within: 5))
            #expect(try RawClient.closedByServer(port: port, sending: Data("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8), within: 5))
            #expect(try await send.send(.GET, base + "/health").status == 200)
        }
    }

    /// Two decompression bombs (9-megapixel grey PNGs of a few kilobytes) in flight: health and text
    /// requests are answered while they decode, and the bombs are answered too.
    @Test func healthAndTextsAnswerWhileLargeImagesDecode() async throws {
        let bomb = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-bomb-\(UUID()).png")
        defer { try? FileManager.default.removeItem(at: bomb) }
        let script = """
            import struct, sys, zlib
            side = 3000
            rows = zlib.compress(bytes(side + 1) * side, 9)
            def chunk(kind, data):
                return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
            header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
            open(sys.argv[1], "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", script, bomb.path]
        try python.run()
        python.waitUntilExit()
        let bytes = try Data(contentsOf: bomb)
        #expect(bytes.count < 100_000)
        try await ServerHarness.withServer { base, send in
            let bombs = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<2 { group.addTask { try await send.send(base + Self.image + Self.query, headers: Self.binary, body: bytes).status } }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            defer { bombs.cancel() }
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await send.send(.GET, base + "/health").status == 200)
            #expect(try await send.send(base + Self.text + Self.query, headers: Self.json, body: Data(#"{"text":"a blue house"}"#.utf8)).status == 200)
            // Both answers came while the bombs were still decoding: no image answer is counted yet.
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            #expect(!metrics.contains(#"route="/computervision/retrieval:vectorizeImage",status="200""#))
            #expect(try await bombs.value == [200, 200])
        }
    }

    @Test func concurrentRequestsShareBatchesAndEachGetsItsOwnVector() async throws {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let files = ["landscape_rgb_512x384.png", "gray_l_257x199.png", "photo_progressive_800x600.jpg", "cmyk_360x240.jpg"]
        let images = try files.map { try ServerHarness.image($0) }
        let expected = try images.map { model.embed(image: try ImageDecoder().decode($0).rgb()) }
        try await ServerHarness.withServer(configure: { $0.batchWindow = .milliseconds(300) }) { base, send in
            try await withThrowingTaskGroup(of: (Int, [Float]?).self) { group in
                for index in 0..<16 {
                    group.addTask {
                        let reply = try await send.send(base + Self.image + Self.query, headers: Self.binary, body: images[index % 4])
                        return (index, reply.vector)
                    }
                }
                for try await (index, vector) in group { Self.expectClose(vector, expected[index % 4]) }
            }
            // Every request went through the engine once. How many shared a batch depends on how fast they
            // arrive against how fast the engine runs (a request that finds it idle runs at once; the rule
            // itself is tested in BatchingEmbedderTests).
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            func value(_ name: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
            }
            #expect(value("loupe_batch_size_sum") == 16)
            #expect((1...16).contains(value("loupe_batch_size_count")))
        }
    }

    /// A short, bounded version of benchmarks/loadtest.py's soak: many clients sending images of every
    /// format and texts without pause for a few seconds; every answer is a 200 and none is a server error.
    @Test func mixedLoadFromManyClientsGetsNoServerError() async throws {
        let images = try ["landscape_rgb_512x384.png", "gray_l_320x240.jpg", "cmyk_360x240.jpg", "wide_lossless_800x200.webp",
                          "frame_gif_120x90.gif", "bitmap_rgb_150x100.bmp", "tiff_rgb_130x170.tiff", "alpha_rgba_400x300.png"].map(ServerHarness.image)
        try await ServerHarness.withServer { base, send in
            let deadline = ContinuousClock.now + .seconds(4)
            let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                for client in 0..<24 {
                    group.addTask {
                        var statuses = [Int]()
                        var turn = client
                        while ContinuousClock.now < deadline {
                            turn += 1
                            let reply = turn % 2 == 0
                                ? try await send.send(base + Self.image + Self.query, headers: Self.binary, body: images[turn % images.count])
                                : try await send.send(base + Self.text + Self.query, headers: Self.json, body: Data(#"{"text": "a blue house"}"#.utf8))
                            statuses.append(reply.status)
                        }
                        return statuses
                    }
                }
                return try await group.reduce(into: [Int]()) { $0 += $1 }
            }
            #expect(statuses.count >= 24, "only \(statuses.count) requests in 4 s")
            #expect(statuses.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
            let metrics = String(decoding: try await send.send(.GET, base + "/metrics").body, as: UTF8.self)
            #expect(!metrics.contains(#"status="5"#))
        }
    }

    /// A SigLIP model version answers the Azure routes with its own vectors (a Russian text here) and
    /// `/classify` with its sigmoid probabilities.
    @Test func aSiglipModelVersionServesTheAzureRoutesAndClassify() async throws {
        let model = ServerHarness.models["tiny-siglip"]!
        let png = try ServerHarness.image("landscape_rgb_512x384.png")
        let labels = ["голубой дом", "a red car"]
        let image = model.embed(image: try model.imageDecoder().decode(png).rgb())
        let expected = model.labelProbabilities(image: image, labels: try model.embed(texts: labels))
        try await ServerHarness.withServer { base, send in
            let version = "&model-version=tiny-siglip"
            let text = try await send.send(base + Self.text + Self.query + version, headers: Self.json, body: Data(#"{"text": "лодка покидает гавань"}"#.utf8))
            #expect(text.status == 200 && text.json["modelVersion"] as? String == "tiny-siglip")
            Self.expectClose(text.vector, try model.embed(text: "лодка покидает гавань"))
            let picture = try await send.send(base + Self.image + Self.query + version, headers: ["Content-Type": "image/png"], body: png)
            #expect(picture.status == 200)
            Self.expectClose(picture.vector, image)
            let query = labels.map { "label=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }.joined(separator: "&")
            let classified = try await send.send(base + "/classify?" + query + version, headers: ["Content-Type": "image/png"], body: png)
            #expect(classified.status == 200, "\(String(decoding: classified.body, as: UTF8.self))")
            let scores = try #require(classified.json["labels"] as? [[String: Any]]).map { Float($0["score"] as? Double ?? -1) }
            #expect(zip(scores, expected).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(scores) against \(expected)")
        }
    }

    /// `POST /classify`: the family's probabilities for the labels, in the order given, from an image
    /// body with `?label=`; bad requests get Azure's errors.
    @Test func classifyScoresLabelsForAnImage() async throws {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let png = try ServerHarness.image("landscape_rgb_512x384.png")
        let labels = ["a blue house", "a red car", "the sea"]
        let expected = model.labelProbabilities(image: model.embed(image: try ImageDecoder().decode(png).rgb()), labels: try model.embed(texts: labels))
        try await ServerHarness.withServer { base, send in
            let query = labels.map { "label=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }.joined(separator: "&")
            let reply = try await send.send(base + "/classify?" + query, headers: ["Content-Type": "image/png"], body: png)
            #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")
            let entries = try #require(reply.json["labels"] as? [[String: Any]])
            #expect(entries.map { $0["label"] as? String } == labels)
            let scores = entries.map { Float($0["score"] as? Double ?? -1) }
            #expect(zip(scores, expected).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(scores) against \(expected)")
            #expect(reply.json["modelVersion"] as? String == "2023-04-15")

            let tooMany = (0..<65).map { "label=l\($0)" }.joined(separator: "&")
            let cases: [(String, [String: String], Data, String)] = [
                ("/classify", ["Content-Type": "image/png"], png, "InvalidRequestBody"),
                ("/classify?" + tooMany, ["Content-Type": "image/png"], png, "InvalidRequestBody"),
                ("/classify?label=%20%20", ["Content-Type": "image/png"], png, "InvalidTextLength"),
                ("/classify?label=x&model-version=9999", ["Content-Type": "image/png"], png, "InvalidModel"),
                ("/classify?label=x", ["Content-Type": "image/png"], Data("<html>".utf8), "InvalidImageFormat"),
                ("/classify", Self.json, Data(#"{"labels": "x", "url": "http://127.0.0.1:9/a.png"}"#.utf8), "InvalidRequestBody"),
                ("/classify", Self.json, Data(#"{"labels": ["x"]}"#.utf8), "InvalidRequestBody"),
                ("/classify?model-version=tiny-gelu", Self.json, Data(#"{"labels": ["x"], "modelVersion": "2023-04-15", "url": "http://127.0.0.1:9/a.png"}"#.utf8), "InvalidModel"),
                ("/classify", ["Content-Type": "text/plain"], Data("x".utf8), "UnsupportedMediaType"),
            ]
            for (path, headers, body, code) in cases {
                let reply = try await send.send(base + path, headers: headers, body: body)
                #expect(reply.status == 400 && reply.innerCode == code, "\(path): \(String(decoding: reply.body, as: UTF8.self))")
            }
        }
    }

    /// A PNG signature and IHDR with the given size and nothing else: refused from the header.
    static func pngHeader(width: UInt32, height: UInt32) -> Data {
        var data = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
        for value in [width, height] { data.append(contentsOf: [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) }) }
        data.append(contentsOf: [8, 2, 0, 0, 0, 0, 0, 0, 0])
        return data
    }
}

/// Bytes on a plain socket: what a client that goes away or falls silent mid-request does.
enum RawClient {
    static func sendAndHangUp(port: Int, _ bytes: Data) throws {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        usleep(100_000)
    }

    /// Sends `bytes`, then waits without sending more: true when the server closes the connection in time.
    static func closedByServer(port: Int, sending bytes: Data, within seconds: Int) throws -> Bool {
        let descriptor = try connected(port: port)
        defer { close(descriptor) }
        if !bytes.isEmpty { _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) } }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { return true }  // the server closed it
            if count < 0 { return errno == ECONNRESET }  // still open when the wait ran out (EAGAIN)
        }
    }

    static func connected(port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw POSIXError(.ECONNREFUSED)
        }
        return descriptor
    }
}
