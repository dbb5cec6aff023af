import Foundation
import ImageCollections
import StoreEmbedded
import Testing

@Suite struct ExportCommandTests {
    @Test func csvAndNpyHoldEveryVectorInIdOrder() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-export-\(UUID())")
        let data = root.appendingPathComponent("data").path
        let model = LoupeBinary.fixtures.appendingPathComponent("models/tiny-gelu").path
        let ingest = try LoupeBinary.run(["ingest", LoupeBinary.fixtures.appendingPathComponent("images").path, "--collection", "c",
                                          "--model", model, "--data", data])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let store = try CollectionStore.embedded(folder: URL(fileURLWithPath: data))
        var items = [Item]()
        try await store.forEachItem(in: "c") { items.append($0) }
        #expect(items.count == 14 && items.map(\.id) == items.map(\.id).sorted())

        let csv = root.appendingPathComponent("c.csv").path
        #expect(try LoupeBinary.run(["export", "--collection", "c", "--data", data, "-o", csv]).status == 0)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "file_name,vector")
        for (line, item) in zip(lines.dropFirst(), items) {
            #expect(line.hasPrefix("\"\(item.id)\",\"["))
            let numbers = line.split(separator: "[")[1].split(separator: "]")[0].split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
            #expect(numbers == item.vector)
        }

        let npy = root.appendingPathComponent("c.npy").path
        #expect(try LoupeBinary.run(["export", "--collection", "c", "--format", "npy", "--data", data, "-o", npy]).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: npy))
        #expect(bytes.prefix(6) == Data([0x93]) + Data("NUMPY".utf8))
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self).contains("'shape': (14, 12)"))
        let values = bytes.dropFirst(10 + headerLength).withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        #expect(values == items.flatMap(\.vector))
        #expect(try String(contentsOfFile: npy + ".ids.txt", encoding: .utf8).split(separator: "\n").map(String.init) == items.map(\.id))

        // Ids a spreadsheet would run as formulas are written with a ' first (OWASP's CSV injection advice).
        let hostile = ["=HYPERLINK(\"http://127.0.0.1/\",\"x\")", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain=1"]
        try await store.upsert(hostile.map { Item(id: $0, source: "/x", contentHash: "h", metadata: [:], vector: items[0].vector) }, into: "c")
        #expect(try LoupeBinary.run(["export", "--collection", "c", "--data", data, "-o", csv]).status == 0)
        let exported = try String(contentsOfFile: csv, encoding: .utf8)
        #expect(exported.contains("\n\"'=HYPERLINK(\"\"http://127.0.0.1/\"\",\"\"x\"\")\",\"["))
        for id in hostile.dropFirst().dropLast() { #expect(exported.contains("\"'\(id)\",\"[")) }
        #expect(exported.contains("\n\"plain=1\",\"["))

        let missing = try LoupeBinary.run(["export", "--collection", "nope", "--data", data])
        #expect(missing.status == 1 && missing.stderr.contains("no collection nope"))
        try? FileManager.default.removeItem(at: root)
    }
}
