import Foundation
import ImageCollections
import StoreEmbedded
import Testing

/// `loupe import`: the seed workflow's CSV, .npy with ids, and Loupe's own export; every bad row reported
/// and not loaded; re-runs and runs killed midway end with every row exactly once.
@Suite struct ImportCommandTests {
    static let azure = ["--model", "azure:https://example.cognitiveservices.azure.com", "--dimension", "4"]

    struct Folder {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-import-\(UUID())")
        var data: String { root.appendingPathComponent("data").path }
        func write(_ name: String, _ text: String) throws -> String {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let url = root.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url.path
        }
        func report(_ collection: String) -> [[String]] {
            let text = (try? String(contentsOfFile: root.appendingPathComponent("data/\(collection)-errors.tsv").path, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        }
        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    @Test func theSeedWorkflowsCSVLoadsItsGoodRowsAndReportsEveryBadOne() async throws {
        let folder = Folder()
        defer { folder.remove() }
        let csv = try folder.write("semart_vectors.csv", """
            IMAGE_FILE,TITLE,DATE,vector
            1-a.jpg,A blue house,c. 1889,"[0.5, 0.5, 0.5, 0.5]"
            2-b.jpg,"Sea, at night",1901,"[1.0,0,0,0]"
            3-c.jpg,Three,1700,"[-1e-3, 2E+0, .5, 0]"
            4-d.jpg,Short,1700,"[1, 2, 3]"
            5-e.jpg,Not a number,1700,"[1, NaN, 3, 4]"
            6-f.jpg,Infinite,1700,"[1, 2, inf, 4]"
            7-g.jpg,Words,1700,"[1, two, 3, 4]"
            8-h.jpg,Twice,1700,"[1, 0, 0, 0]"
            8-h.jpg,Twice again,1700,"[0, 1, 0, 0]"
            ,No id,1700,"[0, 0, 1, 0]"
            9-i.jpg,Too many fields,1700,"[0, 0, 1, 0]",extra
            10-j.jpg,"Unclosed,1700,"[0, 0, 1, 0]"
            11-k.jpg,Empty,1700,"[]"
            12-l.jpg,Hostile,1700,"[1e40, 0, 0, 0]"
            13-m.jpg,Brackets,1700,"[[1, 0, 0, 0]]"

            """)
        let result = try LoupeBinary.run(["import", csv, "--collection", "art", "--data", folder.data] + Self.azure)
        #expect(result.status == 0, "\(result.stderr)")
        let store = try CollectionStore.embedded(folder: URL(fileURLWithPath: folder.data))
        #expect(try await store.contentHashes(in: "art").keys.sorted() == ["1-a.jpg", "2-b.jpg", "3-c.jpg"])
        #expect(try await store.collection("art")?.model == ModelIdentity(id: "azure:example.cognitiveservices.azure.com/2023-04-15", revision: "2023-04-15", dimension: 4))
        let sea = try #require(try await store.item("2-b.jpg", in: "art"))
        #expect(sea.vector == [1, 0, 0, 0] && sea.metadata == ["IMAGE_FILE": "2-b.jpg", "TITLE": "Sea, at night", "DATE": "1901"])
        #expect(try await store.item("3-c.jpg", in: "art")?.vector == [-0.001, 2, 0.5, 0])
        let codes = folder.report("art").map { $0[2] }
        #expect(codes.sorted() == ["DuplicateId", "DuplicateId", "InvalidId", "MalformedRow", "MalformedRow", "NonFiniteVector", "NonFiniteVector",
                                   "NonFiniteVector", "UnparseableVector", "UnparseableVector", "WrongDimension", "WrongDimension"].sorted(),
                "\(folder.report("art"))")

        // Again: nothing changes.
        let again = try LoupeBinary.run(["import", csv, "--collection", "art", "--data", folder.data] + Self.azure)
        #expect(again.status == 0 && again.stderr.contains("added 0, updated 0, skipped 3 unchanged"), "\(again.stderr)")
        // Another model's vectors cannot join the collection.
        let other = try LoupeBinary.run(["import", csv, "--collection", "art", "--data", folder.data, "--model", "azure:https://other.example.com", "--dimension", "4"])
        #expect(other.status != 0 && other.stderr.contains("azure:other.example.com"), "\(other.stderr)")
    }

    @Test func npyMatricesLoadWithTheirIds() async throws {
        let folder = Folder()
        defer { folder.remove() }
        // float64, as numpy writes by default, with a NaN in the third row.
        let rows: [[Double]] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, .nan, 0, 0]]
        let npy = folder.root.appendingPathComponent("v.npy")
        try FileManager.default.createDirectory(at: folder.root, withIntermediateDirectories: true)
        try Self.npy(rows, descr: "<f8").write(to: npy)
        _ = try folder.write("v.npy.ids.txt", "first\nsecond\nthird\n")
        let result = try LoupeBinary.run(["import", npy.path, "--collection", "m", "--data", folder.data] + Self.azure)
        #expect(result.status == 0, "\(result.stderr)")
        let store = try CollectionStore.embedded(folder: URL(fileURLWithPath: folder.data))
        #expect(try await store.contentHashes(in: "m").keys.sorted() == ["first", "second"])
        #expect(folder.report("m").map { $0[2] } == ["NonFiniteVector"])

        // Ids and metadata from a CSV in row order.
        let manifest = try folder.write("ids.csv", "name,TITLE\na,One\nb,Two\nc,Three\n")
        #expect(try LoupeBinary.run(["import", npy.path, "--ids", manifest, "--id-column", "name", "--collection", "n", "--data", folder.data] + Self.azure).status == 0)
        #expect(try await store.item("b", in: "n")?.metadata == ["name": "b", "TITLE": "Two"])

        // Too few ids, a wrong dimension, a damaged file: the whole file is refused with the reason.
        _ = try folder.write("v.npy.ids.txt", "first\nsecond\n")
        let short = try LoupeBinary.run(["import", npy.path, "--collection", "x", "--data", folder.data] + Self.azure)
        #expect(short.status != 0 && short.stderr.contains("2 ids for 3 vectors"), "\(short.stderr)")
        let wide = try LoupeBinary.run(["import", npy.path, "--collection", "x", "--data", folder.data, "--model", "azure:https://e.example", "--dimension", "8"])
        #expect(wide.status != 0 && wide.stderr.contains("4-d vectors"), "\(wide.stderr)")
        for damaged in [Data(), Data("NUMPY".utf8), try Self.npy(rows, descr: "<f8").prefix(100), try Self.npy(rows, descr: ">i4")] {
            try damaged.write(to: npy)
            let refused = try LoupeBinary.run(["import", npy.path, "--collection", "x", "--data", folder.data] + Self.azure)
            #expect(refused.status != 0 && refused.stderr.contains("not a usable .npy file"), "\(refused.stderr)")
        }
        #expect(try await store.collection("x") == nil)
    }

    /// Empty files, files that are not text, tables without a vector column: clear errors, nothing loaded.
    @Test func unusableFilesAreRefusedWithTheirReason() async throws {
        let folder = Folder()
        defer { folder.remove() }
        let cases: [(String, Data, String)] = [
            ("empty.csv", Data(), "empty"),
            ("binary.csv", Data([0xFF, 0xFE, 0x00, 0xC3]), "not UTF-8"),
            ("novector.csv", Data("IMAGE_FILE,TITLE\na.jpg,x\n".utf8), "no vector column"),
        ]
        for (name, data, message) in cases {
            try FileManager.default.createDirectory(at: folder.root, withIntermediateDirectories: true)
            try data.write(to: folder.root.appendingPathComponent(name))
            let result = try LoupeBinary.run(["import", folder.root.appendingPathComponent(name).path, "--collection", "c", "--data", folder.data] + Self.azure)
            #expect(result.status != 0 && result.stderr.contains(message), "\(name): \(result.stderr)")
        }
    }

    /// An import killed with SIGKILL at random moments, then run to the end: every row once, each with its vector.
    @Test func killedImportsEndExact() async throws {
        let folder = Folder()
        defer { folder.remove() }
        let count = 10_000
        var text = "IMAGE_FILE,vector\n"
        for row in 0..<count { text += "item-\(row),\"[\(row), \(row % 7), 1, -\(row % 3)]\"\n" }
        let csv = try folder.write("many.csv", text)
        let arguments = ["import", csv, "--collection", "many", "--data", folder.data, "--batch", "100"] + Self.azure
        // Reading the file takes about a second in a debug build; the kills land while batches are written.
        for delay in [1200, 1800, 2400] { try await LoupeBinary.runKilled(arguments, after: .milliseconds(delay)) }
        let final = try LoupeBinary.run(arguments)
        #expect(final.status == 0, "\(final.stderr)")
        let store = try CollectionStore.embedded(folder: URL(fileURLWithPath: folder.data))
        let hashes = try await store.contentHashes(in: "many")
        let itemCount = try await store.collection("many")?.itemCount
        #expect(hashes.count == count && itemCount == count)
        for row in stride(from: 0, to: count, by: 997) {
            #expect(try await store.item("item-\(row)", in: "many")?.vector == [Float(row), Float(row % 7), 1, -Float(row % 3)])
        }
    }

    /// A NumPy 1.0 file of `rows` with the given dtype.
    static func npy(_ rows: [[Double]], descr: String) throws -> Data {
        var dictionary = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(rows.count), \(rows[0].count)), }"
        dictionary += String(repeating: " ", count: (64 - (11 + dictionary.utf8.count) % 64) % 64) + "\n"
        var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0, UInt8(dictionary.utf8.count & 0xFF), UInt8(dictionary.utf8.count >> 8)])
        data.append(Data(dictionary.utf8))
        for value in rows.joined() {
            if descr == "<f8" {
                withUnsafeBytes(of: value) { data.append(contentsOf: $0) }
            } else {
                withUnsafeBytes(of: Int32(value.isNaN ? 0 : value).bigEndian) { data.append(contentsOf: $0) }
            }
        }
        return data
    }
}
