import CLIP
import Crypto
import Embedding
import Foundation
import ImageCollections
import ImageIO
import StoreEmbedded
import Testing

@testable import Ingest

/// A temporary SemArt-style layout: a manifest with an Images folder beside it.
struct ManifestFolder {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-ingest-\(UUID())")
    var images: URL { root.appendingPathComponent("Images") }
    var manifest: URL { root.appendingPathComponent("semart_train.csv") }

    init(copying files: [String]) throws {
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for file in files {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("images/\(file)"), to: images.appendingPathComponent(file))
        }
    }

    func write(_ text: String, encoding: String.Encoding = .utf8) throws {
        try text.data(using: encoding)!.write(to: manifest)
    }
}

@Suite struct ManifestTests {
    @Test func semArtLayoutWorksWithoutFlags() async throws {
        let folder = try ManifestFolder(copying: ["gray_l_257x199.png", "cmyk_360x240.jpg"])
        try folder.write("IMAGE_FILE\tDESCRIPTION\tTITLE\tAUTHOR\tDATE\n"
            + "gray_l_257x199.png\tA grey study\tStudy\tAnon\t1890\n"
            + "cmyk_360x240.jpg\t\"Boats\" at dawn, \"quoted\"\tBoats\tVan Gogh\t1888\n")
        let (items, problems) = try ManifestSource(file: folder.manifest).items()
        #expect(problems.isEmpty)
        #expect(items.map(\.id) == ["gray_l_257x199.png", "cmyk_360x240.jpg"])
        #expect(items[1].metadata["DESCRIPTION"] == "\"Boats\" at dawn, \"quoted\"")
        #expect(items[1].metadata["AUTHOR"] == "Van Gogh")
        #expect(items[0].path.hasSuffix("/Images/gray_l_257x199.png"))
    }

    @Test func windows1252ManifestsAreRead() async throws {
        let folder = try ManifestFolder(copying: ["gray_l_257x199.png"])
        try folder.write("IMAGE_FILE\tAUTHOR\ngray_l_257x199.png\tCézanne, Paul\n", encoding: .windowsCP1252)
        #expect(try ManifestSource(file: folder.manifest).items().items.first?.metadata["AUTHOR"] == "Cézanne, Paul")
    }

    @Test func hostileRowsBecomeProblemsAndTheRestGoesOn() async throws {
        let folder = try ManifestFolder(copying: ["gray_l_257x199.png", "tiny_rgb_50x40.png"])
        try "secret".write(to: folder.root.deletingLastPathComponent().appendingPathComponent("outside-\(UUID()).png"), atomically: true, encoding: .utf8)
        let huge = String(repeating: "x", count: ManifestSource.maximumFieldLength + 1)
        try folder.write("""
            image,title,id
            gray_l_257x199.png,"'); DROP TABLE items; --",1
            gray_l_257x199.png,duplicate,1
            ../../etc/passwd,escape,2
            /etc/passwd,absolute,3
            missing.png,missing,4
            tiny_rgb_50x40.png,\(huge),5
            only-two-fields,6
            ,empty,7

            """)
        let (items, problems) = try ManifestSource(file: folder.manifest, idColumn: "id").items()
        #expect(items.map(\.id) == ["1"])
        #expect(items[0].metadata["title"] == "'); DROP TABLE items; --")
        #expect(problems.map(\.code) == ["DuplicateId", "PathOutsideFolder", "PathOutsideFolder", "FileNotFound", "FieldTooLong", "MalformedRow", "MissingImage"])
    }

    /// TSV has no quoting: a field that starts with a quote swallows nothing after it.
    @Test func aQuoteInATSVFieldIsACharacter() async throws {
        let folder = try ManifestFolder(copying: ["cmyk_360x240.jpg", "gray_l_257x199.png", "tiny_rgb_50x40.png", "palette_p_200x150.png",
                                                  "portrait_rgb_300x500.png", "landscape_rgb_512x384.png"])
        try folder.write("IMAGE_FILE\tTITLE\n" + "cmyk_360x240.jpg\t\"Twelve inch record\n"
            + ["gray_l_257x199.png", "tiny_rgb_50x40.png", "palette_p_200x150.png", "portrait_rgb_300x500.png", "landscape_rgb_512x384.png"]
                .map { "\($0)\tplain\n" }.joined())
        let (items, problems) = try ManifestSource(file: folder.manifest).items()
        #expect(problems.isEmpty)
        #expect(items.count == 6)
        #expect(items[0].metadata["TITLE"] == "\"Twelve inch record")
        #expect(items.dropFirst().allSatisfy { $0.metadata["TITLE"] == "plain" })
    }

    /// CSV: an unterminated quote is one malformed row; the rows after it are read and numbered right.
    @Test func anUnterminatedCSVQuoteIsOneMalformedRow() async throws {
        let folder = try ManifestFolder(copying: ["cmyk_360x240.jpg", "gray_l_257x199.png"])
        try folder.write("""
            image,title
            cmyk_360x240.jpg,"Twelve inch record
            gray_l_257x199.png,"a title
            over two lines"
            missing.png,plain
            only-one-field

            """)
        let (items, problems) = try ManifestSource(file: folder.manifest).items()
        #expect(items.map(\.id) == ["gray_l_257x199.png"])
        #expect(items.first?.metadata["title"] == "a title\nover two lines")
        #expect(problems.map(\.code) == ["MalformedRow", "FileNotFound", "MalformedRow"])
        #expect(problems.first?.message == "line 2 has a quoted field that is never closed")
        #expect(problems.last?.message.hasPrefix("line 6 ") == true)
    }

    @Test func aNULInAFieldIsReportedAndTheRowSkipped() async throws {
        let folder = try ManifestFolder(copying: ["cmyk_360x240.jpg", "gray_l_257x199.png"])
        try folder.write("image,id\ncmyk_360x240.jpg,victim\u{0}attacker\ngray_l_257x199.png,fine\n")
        let (items, problems) = try ManifestSource(file: folder.manifest, idColumn: "id").items()
        #expect(items.map(\.id) == ["fine"])
        #expect(problems.map(\.code) == ["InvalidText"])
    }

    @Test func missingColumnsAndEmptyFilesAreClearErrors() async throws {
        let folder = try ManifestFolder(copying: [])
        try folder.write("TITLE\tAUTHOR\nx\ty\n")
        #expect(throws: IngestSourceError.missingColumn("IMAGE_FILE", available: ["TITLE", "AUTHOR"])) { try ManifestSource(file: folder.manifest).items() }
        #expect(throws: IngestSourceError.missingColumn("PICTURE", available: ["TITLE", "AUTHOR"])) {
            try ManifestSource(file: folder.manifest, imageColumn: "PICTURE").items()
        }
        try folder.write("")
        #expect(throws: IngestSourceError.self) { try ManifestSource(file: folder.manifest).items() }
        #expect(throws: IngestSourceError.notFound(folder.root.appendingPathComponent("nope.tsv").path)) {
            try ManifestSource(file: folder.root.appendingPathComponent("nope.tsv")).items()
        }
    }
}

@Suite struct IngestPipelineTests {
    static let model = Result { try CLIPModel(folder: ManifestFolder.fixtures.appendingPathComponent("models/tiny-gelu")) }

    static func pipeline(_ store: CollectionStore) throws -> IngestPipeline {
        let model = try Self.model.get()
        let identity = ModelFingerprint.identity(of: ManifestFolder.fixtures.appendingPathComponent("models/tiny-gelu"), name: "tiny-gelu", dimension: model.dimension)
        return IngestPipeline(embedder: LocalEmbedder(model: model, identity: identity), store: store)
    }

    @Test func ingestsSkipsUnchangedReembedsChangedAndReportsBadFiles() async throws {
        let files = ["gray_l_257x199.png", "cmyk_360x240.jpg", "photo_progressive_800x600.jpg", "frame_gif_120x90.gif", "tiff_rgb_130x170.tiff"]
        let folder = try ManifestFolder(copying: files)
        try Data("not an image".utf8).write(to: folder.images.appendingPathComponent("broken.jpg"))
        let store = try CollectionStore.embedded(folder: folder.root.appendingPathComponent("data"))
        let pipeline = try Self.pipeline(store)
        let items = try FolderSource(root: folder.images).items()
        #expect(items.count == 6)

        let first = try await pipeline.run(items, into: "c", options: IngestOptions(jobs: 3, batch: 2))
        #expect(first.progress.added == 5 && first.progress.failed == 1 && first.progress.skipped == 0)
        #expect(first.problems.map(\.code) == ["InvalidImageFormat"])
        let model = try Self.model.get()
        let expected = model.embed(image: try ImageDecoder().decode(fileAt: folder.images.appendingPathComponent("cmyk_360x240.jpg").path).rgb())
        #expect(try await store.item("cmyk_360x240.jpg", in: "c")?.vector == expected)

        // The same files again: all skipped by hash. One file changed: embedded again, replaced.
        try FileManager.default.removeItem(at: folder.images.appendingPathComponent("gray_l_257x199.png"))
        try FileManager.default.copyItem(at: ManifestFolder.fixtures.appendingPathComponent("images/tiny_rgb_50x40.png"),
                                         to: folder.images.appendingPathComponent("gray_l_257x199.png"))
        let second = try await pipeline.run(items, into: "c", options: IngestOptions(jobs: 2, batch: 4))
        #expect(second.progress.skipped == 4 && second.progress.updated == 1 && second.progress.added == 0 && second.progress.failed == 1)
        let changed = model.embed(image: try ImageDecoder().decode(fileAt: folder.images.appendingPathComponent("gray_l_257x199.png").path).rgb())
        #expect(try await store.item("gray_l_257x199.png", in: "c")?.vector == changed)
        #expect(try await store.collection("c")?.itemCount == 5)
    }

    /// The hash taken while a file is read, a megabyte at a time, is the hash of its bytes; the stored
    /// item carries it. A file that is not a regular one is refused before it is read.
    @Test func theContentHashIsTakenWhileTheFileIsRead() async throws {
        let folder = try ManifestFolder(copying: ["photo_progressive_800x600.jpg"])
        let large = folder.root.appendingPathComponent("large.bin")
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(2_500_000)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: large)
        let (read, hash) = try ItemWriter.readAndHash(fileAt: large.path)
        #expect(read == bytes && hash == ItemWriter.contentHash(bytes))
        #expect(hash == SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined())
        #expect(throws: ImageError.unreadable("\(folder.root.path) is not a regular file")) { try ItemWriter.readAndHash(fileAt: folder.root.path) }
        #expect(throws: ImageError.fileNotFound(large.path + ".gone")) { try ItemWriter.readAndHash(fileAt: large.path + ".gone") }
        // A video's hash (read a few megabytes at a time) is the same hash; a named pipe is refused, not waited on.
        #expect(try ItemWriter.contentHash(ofFileAt: large.path) == hash)
        let pipe = folder.root.appendingPathComponent("pipe.mp4").path
        #expect(mkfifo(pipe, 0o600) == 0)
        #expect(throws: CocoaError.self) { try ItemWriter.contentHash(ofFileAt: pipe) }

        let store = try CollectionStore.embedded(folder: folder.root.appendingPathComponent("data"))
        _ = try await Self.pipeline(store).run(try FolderSource(root: folder.images).items(), into: "c")
        let photo = try Data(contentsOf: folder.images.appendingPathComponent("photo_progressive_800x600.jpg"))
        #expect(try await store.item("photo_progressive_800x600.jpg", in: "c")?.contentHash == ItemWriter.contentHash(Array(photo)))
    }

    @Test func anotherModelCannotAddToTheCollection() async throws {
        let folder = try ManifestFolder(copying: ["gray_l_257x199.png"])
        let store = try CollectionStore.embedded(folder: folder.root.appendingPathComponent("data"))
        _ = try await store.openCollection("c", model: ModelIdentity(id: "other", revision: "x", dimension: 12))
        await #expect(throws: StoreError.self) {
            try await Self.pipeline(store).run(try FolderSource(root: folder.images).items(), into: "c")
        }
    }
}
