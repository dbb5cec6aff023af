import Foundation
import Tensor
import Testing

/// Runs the built `loupe` executable as a user would.
enum LoupeBinary {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures")

    /// The executable sits beside the test bundle in the build products folder.
    static var url: URL {
        var folder = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("loupe")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder.deleteLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug/loupe")
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var lines: [[String: Any]] {
            stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    /// Runs `loupe` offline with a cache of its own.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        var overrides = ["HF_HOME": FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cli-hf-\(UUID())").path,
                         "HF_HUB_OFFLINE": "1"]
        overrides.merge(environment) { $1 }
        return try run(executable: url, arguments, environment: overrides)
    }

    /// Starts `loupe` with `arguments` and kills it with SIGKILL after `delay` (a crash at that moment).
    static func runKilled(_ arguments: [String], after delay: Duration) async throws {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Runs any program from the repository root and collects what it prints.
    static func run(executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite struct EmbedCommandTests {
    let model = "Tests/Fixtures/models/tiny-quickgelu"

    @Test func linesFollowInputOrderAndVectorsMatchTheReference() throws {
        let result = try LoupeBinary.run([
            "embed", "--model", model, "--image", "Tests/Fixtures/images/tiff_rgb_130x170.tiff",
            "--text", "a blue house", "--image=Tests/Fixtures/images/gray_l_320x240.jpg", "--text=--image",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.lines
        try #require(lines.count == 4)
        #expect(lines.map { $0["kind"] as? String } == ["image", "text", "image", "text"])
        #expect(lines.map { $0["input"] as? String } == [
            "Tests/Fixtures/images/tiff_rgb_130x170.tiff", "a blue house", "Tests/Fixtures/images/gray_l_320x240.jpg", "--image",
        ])
        #expect(lines.allSatisfy { ($0["model"] as? String) == model && ($0["vector"] as? [Double])?.count == 16 })

        struct Reference: Decodable { struct Item: Decodable { let text: String?; let file: String?; let vector: [Float] }; let texts: [Item]; let images: [Item] }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: LoupeBinary.fixtures.appendingPathComponent("reference/tiny-quickgelu.json")))
        let house = try #require(reference.texts.first { $0.text == "a blue house" }).vector
        let printed = try #require(lines[1]["vector"] as? [Double]).map(Float.init)
        #expect(zip(house, printed).allSatisfy { abs($0 - $1) <= 1e-4 })
        let tiff = try #require(reference.images.first { $0.file == "tiff_rgb_130x170.tiff" }).vector
        let printedImage = try #require(lines[0]["vector"] as? [Double]).map(Float.init)
        #expect(zip(tiff, printedImage).allSatisfy { abs($0 - $1) <= 1e-4 })
    }

    @Test func aFailedInputGetsAnErrorLineTheOthersStillRunAndTheStatusIsOne() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-empty-\(UUID()).jpg")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        defer { try? FileManager.default.removeItem(at: empty) }
        let result = try LoupeBinary.run([
            "embed", "--model", model, "--text", "", "--image", "/no/such/file.png", "--image", empty.path,
            "--image", "Package.swift", "--text", "still embedded",
        ])
        #expect(result.status == 1)
        let codes = result.lines.map { ($0["error"] as? [String: Any])?["code"] as? String }
        #expect(codes == ["EmptyText", "FileNotFound", "EmptyImage", "InvalidImageFormat", nil])
        #expect((result.lines.last?["vector"] as? [Double])?.count == 16)
    }

    /// `loupe classify`: one line per image in order, the labels in the order given with scores that sum
    /// to 1 (CLIP's softmax); a bad image gets an error line and the status 1.
    @Test func classifyPrintsEachImagesLabelScores() throws {
        let result = try LoupeBinary.run([
            "classify", "--model", model, "--label", "a blue house", "--label", "a red car",
            "Tests/Fixtures/images/cmyk_360x240.jpg", "/no/such/file.png", "Tests/Fixtures/images/tiny_rgb_50x40.png",
        ])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.lines.map { $0["input"] as? String } == ["Tests/Fixtures/images/cmyk_360x240.jpg", "/no/such/file.png", "Tests/Fixtures/images/tiny_rgb_50x40.png"])
        for line in [result.lines[0], result.lines[2]] {
            let labels = try #require(line["labels"] as? [[String: Any]])
            #expect(labels.map { $0["label"] as? String } == ["a blue house", "a red car"])
            #expect(abs(labels.compactMap { $0["score"] as? Double }.reduce(0, +) - 1) <= 1e-5)
        }
        #expect((result.lines[1]["error"] as? [String: Any])?["code"] as? String == "FileNotFound")
        #expect(try LoupeBinary.run(["classify", "--model", model, "Tests/Fixtures/images/cmyk_360x240.jpg"]).status != 0)
    }

    /// SigLIP folders work in `embed` and `classify` as CLIP's do: a Russian text and an image give the
    /// reference's vectors, and classify prints transformers' sigmoid probabilities (which need not sum to 1).
    @Test(arguments: ["tiny-siglip", "tiny-siglip2"])
    func siglipEmbedsAndClassifiesAsTheReference(_ name: String) throws {
        struct Reference: Decodable {
            struct Text: Decodable { let text: String; let vector: [Float] }
            struct Image: Decodable { let file: String; let vector: [Float]; let probabilities: [Float] }
            let texts: [Text]
            let images: [Image]
            let labels: [String]
        }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: LoupeBinary.fixtures.appendingPathComponent("reference/\(name).json")))
        let text = try #require(reference.texts.first { $0.text == "лодка покидает гавань" })
        let image = try #require(reference.images.first { $0.file == "cmyk_360x240.jpg" })
        let siglip = "Tests/Fixtures/models/\(name)"
        let embedded = try LoupeBinary.run(["embed", "--model", siglip, "--exact-decode", "--text", text.text,
                                            "--image", "Tests/Fixtures/images/\(image.file)"])
        #expect(embedded.status == 0, "\(embedded.stderr)")
        try #require(embedded.lines.count == 2)
        for (line, expected) in zip(embedded.lines, [text.vector, image.vector]) {
            let printed = try #require(line["vector"] as? [Double]).map(Float.init)
            #expect(printed.count == expected.count && zip(printed, expected).allSatisfy { abs($0 - $1) <= 1e-4 })
        }
        let classified = try LoupeBinary.run(["classify", "--model", siglip, "--exact-decode"] + reference.labels.flatMap { ["--label", $0] }
                                             + ["Tests/Fixtures/images/\(image.file)"])
        #expect(classified.status == 0, "\(classified.stderr)")
        let scores = try #require(classified.lines.first?["labels"] as? [[String: Any]]).compactMap { $0["score"] as? Double }
        #expect(scores.count == reference.labels.count)
        #expect(zip(scores, image.probabilities).allSatisfy { abs($0 - Double($1)) <= 1e-5 }, "\(scores) against \(image.probabilities)")
    }

    /// A SigLIP collection: ingest, search by a text in another language and by an item's own image (found
    /// first, cosine 1); a CLIP model is refused for it, at ingest and at search.
    @Test func siglipCollectionsIngestAndSearch() throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-siglip-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let siglip = "Tests/Fixtures/models/tiny-siglip2", images = "Tests/Fixtures/images"
        let ingest = try LoupeBinary.run(["ingest", images, "--collection", "s", "--model", siglip, "--data", data])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let byText = try LoupeBinary.run(["search", "--collection", "s", "голубой дом у моря", "-k", "3", "--data", data])
        #expect(byText.status == 0 && byText.lines.count == 3, "\(byText.stderr)")
        let byImage = try LoupeBinary.run(["search", "--collection", "s", "--image", images + "/tiff_rgb_130x170.tiff", "-k", "1", "--data", data])
        #expect(byImage.lines.first?["id"] as? String == "tiff_rgb_130x170.tiff", "\(byImage.stdout)\(byImage.stderr)")
        #expect(abs((byImage.lines.first?["cosine"] as? Double ?? 0) - 1) < 1e-5)
        let clip = try LoupeBinary.run(["ingest", images, "--collection", "s", "--model", model, "--data", data])
        #expect(clip.status != 0 && clip.stderr.contains("tiny-siglip2"), "\(clip.stderr)")
        let clipSearch = try LoupeBinary.run(["search", "--collection", "s", "a blue house", "--model", model, "--data", data])
        #expect(clipSearch.status != 0, "\(clipSearch.stdout)")
    }

    /// `--precision int8` gives vectors near float32's, not equal to them; an unknown precision is a usage
    /// error. Where the processor lacks VNNI, the command must say so instead.
    @Test func int8PrecisionIsCloseToFloat32() throws {
        let float32 = try LoupeBinary.run(["embed", "--model", model, "--text", "a blue house"])
        let int8 = try LoupeBinary.run(["embed", "--model", model, "--precision", "int8", "--text", "a blue house"])
        if !ProductKernel.int8.isSupported {
            #expect(int8.status == 1 && int8.stderr.contains("AVX-512 VNNI"), "\(int8.stderr)")
        } else {
            #expect(int8.status == 0, "\(int8.stderr)")
            let a = try #require(float32.lines.first?["vector"] as? [Double])
            let b = try #require(int8.lines.first?["vector"] as? [Double])
            let cosine = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }  // both unit length
            #expect(cosine >= 0.995 && cosine < 0.999999, "cosine \(cosine)")
        }
        let unknown = try LoupeBinary.run(["embed", "--model", model, "--precision", "int4", "--text", "hi"])
        #expect(unknown.status == 64 && unknown.stderr.contains("int4"), "\(unknown.stderr)")
    }

    @Test func noInputsIsAUsageError() throws {
        let result = try LoupeBinary.run(["embed", "--model", model])
        #expect(result.status == 64)
        #expect(result.stderr.contains("at least one --text or --image"))
    }

    @Test func anUncachedHubModelOfflineNamesTheModelAndTheWayOut() throws {
        let result = try LoupeBinary.run(["embed", "--text", "hi"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("openai/clip-vit-base-patch32"))
        #expect(result.stderr.contains("local model folder"))
        #expect(result.stdout.isEmpty)
    }

    @Test func aBrokenModelFolderIsAClearError() throws {
        let result = try LoupeBinary.run(["embed", "--model", "Tests/Fixtures/images", "--text", "hi"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("config.json"))
        let missing = try LoupeBinary.run(["embed", "--model", "./no/such/folder", "--text", "hi"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("./no/such/folder is not a CLIP model in Hugging Face format: there is no folder there"))
        #expect(!missing.stderr.contains("model cache"))
    }

    @Test func modelsListOnAnEmptyCacheSaysHowToPull() throws {
        let result = try LoupeBinary.run(["models", "list"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("loupe models pull"))
    }
}
