import ArgumentParser
import Foundation
import ImageCollections

extension Loupe {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a collection's vectors to a file: CSV (file name, then the vector) or NumPy .npy.",
            discussion: """
                CSV has a header `file_name,vector`, one row per item in id order, the vector as a JSON-style list in one \
                quoted field (the common "file name, vector" layout). An id that starts with =, +, -, @, a tab or a carriage \
                return is written with a ' before it, so spreadsheet programs show it instead of running it as a formula. npy writes a float32 [items, dimension] array and, \
                beside it, FILE.ids.txt with one id per line in the same order.
                """)

        @Option(help: "The collection to export.") var collection: String
        @Option(help: "csv or npy.") var format = "csv"
        @Option(name: .shortAndLong, help: "The file to write (default: COLLECTION.csv or COLLECTION.npy).") var output: String?
        @OptionGroup var store: StoreOptions

        func validate() throws {
            guard ["csv", "npy"].contains(format) else { throw ValidationError("--format is csv or npy") }
        }

        func run() async throws {
            let store = try await store.open()
            guard let info = try await store.collection(collection) else { throw CommandFailure(StoreError.noSuchCollection(collection).description) }
            let path = output ?? "\(collection).\(format)"
            var body = Data()
            var ids = [String]()
            if format == "csv" { body.append(Data("file_name,vector\n".utf8)) }
            try await store.forEachItem(in: collection) { item in
                if format == "csv" {
                    body.append(Data("\(CSVCell.quoted(item.id)),\"[\(item.vector.map { "\($0)" }.joined(separator: ", "))]\"\n".utf8))
                } else {
                    ids.append(item.id)
                    item.vector.withUnsafeBufferPointer { body.append(Data(buffer: $0)) }
                }
            }
            if format == "npy" {
                body = NPY.header(rows: ids.count, columns: info.model.dimension) + body
                try Data((ids.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path + ".ids.txt"))
            }
            try body.write(to: URL(fileURLWithPath: path))
            StandardStreams.writeError("wrote \(info.itemCount) items to \(path)\n")
        }
    }
}

/// One CSV field, quoted, with OWASP's defence against formula injection: a spreadsheet reads a cell that
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula, so such a cell gets a `'` first.
enum CSVCell {
    static func quoted(_ text: String) -> String {
        let formulaStarts: Set<Character> = ["=", "+", "-", "@", "\t", "\r"]
        let safe = text.first.map(formulaStarts.contains) == true ? "'" + text : text
        return "\"" + safe.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// The NumPy .npy format, version 1.0: magic, header length, a Python dict literal padded to 64 bytes.
enum NPY {
    static func header(rows: Int, columns: Int) -> Data {
        var dictionary = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        let unpadded = 10 + dictionary.utf8.count + 1
        dictionary += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0])
        let length = UInt16(dictionary.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(Data(dictionary.utf8))
        return data
    }
}
