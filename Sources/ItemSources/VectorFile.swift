import Foundation

/// One precomputed vector and what its item records.
public struct ImportRow: Sendable, Equatable {
    public let id: String
    public let source: String
    public let metadata: [String: String]
    public let vector: [Float]

    public init(id: String, source: String, metadata: [String: String], vector: [Float]) {
        self.id = id
        self.source = source
        self.metadata = metadata
        self.vector = vector
    }
}

/// Reading vectors computed elsewhere: a CSV/TSV with a column holding each vector as a JSON-style list
/// (the seed workflow's file, and `loupe export`'s), or a NumPy `.npy` matrix with its ids in row order.
/// Rows that cannot be trusted (wrong length, NaN or infinity, unreadable numbers, an id given twice)
/// are reported with their line and never loaded.
public enum VectorFile {
    /// `idColumn`: IMAGE_FILE, file_name or the first column unless named; `vectorColumn`: vector,
    /// embedding or the only column whose first value is a list unless named. Every other column becomes
    /// metadata; an image column (as a manifest names it) whose file exists beside the file becomes the
    /// item's source.
    public static func delimited(file: URL, dimension: Int, idColumn: String? = nil, vectorColumn: String? = nil) throws
        -> (rows: [ImportRow], problems: [SourceProblem])
    {
        try delimited(text: try text(of: file), file: file, dimension: dimension, idColumn: idColumn, vectorColumn: vectorColumn)
    }

    /// The same from the file's text (`file` names it in reports and is where images are looked for).
    public static func delimited(text: String, file: URL, dimension: Int, idColumn: String? = nil, vectorColumn: String? = nil) throws
        -> (rows: [ImportRow], problems: [SourceProblem])
    {
        let (header, records) = try table(text)
        func column(_ named: String?, _ candidates: [String], option: String, fallback: () -> Int?) throws -> Int {
            for wanted in named.map({ [$0] }) ?? candidates {
                if let index = header.firstIndex(where: { $0.caseInsensitiveCompare(wanted) == .orderedSame }) { return index }
            }
            if named == nil, let index = fallback() { return index }
            throw IngestSourceError.unreadableManifest(
                "it has no \(named ?? candidates[0]) column (it has: \(header.prefix(20).joined(separator: ", "))); name it with \(option)")
        }
        let firstRow = records.first { $0.problem == nil && $0.fields.count == header.count }?.fields ?? []
        let vectorIndex = try column(vectorColumn, ["vector", "embedding", "embeddings", "image_vector"], option: "--vector-column") {
            let lists = firstRow.indices.filter { firstRow[$0].trimmingCharacters(in: .whitespaces).hasPrefix("[") }
            return lists.count == 1 ? lists[0] : nil
        }
        let idIndex = try column(idColumn, ["IMAGE_FILE", "file_name", "id"], option: "--id-column") { header.indices.first { $0 != vectorIndex } }
        let imageIndex = header.firstIndex { name in ["IMAGE_FILE", "image", "file", "path", "filename", "file_name"].contains { $0.caseInsensitiveCompare(name) == .orderedSame } }
        let folder = file.standardizedFileURL.deletingLastPathComponent()
        let roots = [folder.appendingPathComponent("Images"), folder.appendingPathComponent("images"), folder]

        var rows = [(line: Int, row: ImportRow)](), problems = [SourceProblem]()
        for record in records where record.fields != [""] {
            let line = record.line
            func problem(_ code: String, _ message: String, id: String = "line \(line)") {
                problems.append(SourceProblem(id: id, path: file.path, code: code, message: message))
            }
            if let reason = record.problem {
                problem("MalformedRow", "line \(line) has \(reason)")
                continue
            }
            guard record.fields.count == header.count else {
                problem("MalformedRow", "line \(line) has \(record.fields.count) fields, the header has \(header.count)")
                continue
            }
            let id = exportedID(record.fields[idIndex].trimmingCharacters(in: .whitespaces))
            if let field = zip(header, record.fields).first(where: { $0.1.utf8.contains(0) }) {
                problem("InvalidText", "field \(field.0) on line \(line) holds a NUL character")
                continue
            }
            do {
                let vector = try parseVector(record.fields[vectorIndex], dimension: dimension)
                var metadata = [String: String]()
                for (index, name) in header.enumerated() where index != vectorIndex && !name.isEmpty { metadata[name] = record.fields[index] }
                let source = imageIndex.flatMap { ManifestSource.resolve(record.fields[$0].trimmingCharacters(in: .whitespaces), in: roots) } ?? ""
                rows.append((line, ImportRow(id: id, source: source, metadata: metadata, vector: vector)))
            } catch let failure as RowFailure {
                problem(failure.code, "line \(line): \(failure.message)", id: id.isEmpty ? "line \(line)" : id)
            }
        }
        return checked(rows, file: file, problems: problems)
    }

    /// A `.npy` float32 or float64 matrix [rows, dimension] (C order) and its ids: a text file with one
    /// id per line (`loupe export --format npy` writes FILE.ids.txt), or a CSV/TSV whose rows, in the
    /// same order, give each id (`idColumn`, else the first column) and its metadata.
    public static func npy(file: URL, ids idFile: URL, dimension: Int, idColumn: String? = nil) throws -> (rows: [ImportRow], problems: [SourceProblem]) {
        let matrix = try NumPyMatrix(file: file)
        guard matrix.columns == dimension else {
            throw IngestSourceError.unreadableManifest("\(file.lastPathComponent) holds \(matrix.columns)-d vectors; the model's are \(dimension)-d")
        }
        var labels = [(id: String, metadata: [String: String])]()
        if ["csv", "tsv"].contains(idFile.pathExtension.lowercased()) {
            let (header, records) = try table(try text(of: idFile))
            let idIndex = try idColumn.map { name in
                guard let index = header.firstIndex(of: name) else {
                    throw IngestSourceError.unreadableManifest("\(idFile.lastPathComponent) has no \(name) column (it has: \(header.prefix(20).joined(separator: ", ")))")
                }
                return index
            } ?? 0
            for record in records where record.fields != [""] {
                guard record.problem == nil, record.fields.count == header.count else {
                    throw IngestSourceError.unreadableManifest("line \(record.line) of \(idFile.lastPathComponent) is malformed; rows must match the matrix's one for one")
                }
                labels.append((record.fields[idIndex].trimmingCharacters(in: .whitespaces),
                               Dictionary(zip(header, record.fields).filter { !$0.0.isEmpty }, uniquingKeysWith: { first, _ in first })))
            }
        } else {
            guard let data = FileManager.default.contents(atPath: idFile.path), let text = String(data: data, encoding: .utf8) else {
                throw IngestSourceError.notFound(idFile.path)
            }
            labels = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }.map { (String($0), [:]) }
            if labels.last?.id == "" { labels.removeLast() }
        }
        guard labels.count == matrix.rows else {
            throw IngestSourceError.unreadableManifest("\(idFile.lastPathComponent) names \(labels.count) ids for \(matrix.rows) vectors")
        }
        var rows = [(line: Int, row: ImportRow)](), problems = [SourceProblem]()
        for (index, label) in labels.enumerated() {
            let vector = matrix.row(index)
            if let bad = vector.firstIndex(where: { !$0.isFinite }) {
                problems.append(SourceProblem(id: label.id, path: file.path, code: "NonFiniteVector",
                                              message: "row \(index) has \(vector[bad]) at position \(bad)"))
                continue
            }
            rows.append((index + 1, ImportRow(id: label.id, source: "", metadata: label.metadata, vector: vector)))
        }
        return checked(rows, file: file, problems: problems)
    }

    /// Ids must be present, storable, and given once: every row of an id given twice is reported, since
    /// which of them is right cannot be known.
    private static func checked(_ rows: [(line: Int, row: ImportRow)], file: URL, problems: [SourceProblem]) -> ([ImportRow], [SourceProblem]) {
        var problems = problems
        var counts = [String: Int]()
        for entry in rows { counts[entry.row.id, default: 0] += 1 }
        var kept = [ImportRow]()
        for (line, row) in rows {
            if row.id.isEmpty || row.id.count > 512 || row.id.utf8.contains(0) {
                problems.append(SourceProblem(id: "line \(line)", path: file.path, code: "InvalidId", message: "line \(line) has an id that is empty, over 512 characters or holds NUL"))
            } else if counts[row.id, default: 0] > 1 {
                problems.append(SourceProblem(id: row.id, path: file.path, code: "DuplicateId",
                                              message: "id \(row.id) is given \(counts[row.id]!) times; line \(line) is not loaded"))
            } else {
                kept.append(row)
            }
        }
        return (kept, problems)
    }

    private struct RowFailure: Error {
        let code: String
        let message: String
    }

    /// `[0.1, -2e-3, …]` (brackets optional) with exactly `dimension` finite numbers.
    private static func parseVector(_ text: String, dimension: Int) throws -> [Float] {
        var body = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        if body.hasPrefix("[") && body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        let parts = body.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == dimension else {
            throw RowFailure(code: "WrongDimension", message: "the vector has \(body.isEmpty ? 0 : parts.count) numbers; the model's have \(dimension)")
        }
        var vector = [Float]()
        vector.reserveCapacity(dimension)
        for (position, part) in parts.enumerated() {
            let token = part.trimmingCharacters(in: .whitespaces)
            guard let number = number(token) else {
                throw RowFailure(code: "UnparseableVector", message: "position \(position) holds \"\(token.prefix(40))\", not a number")
            }
            guard number.isFinite else { throw RowFailure(code: "NonFiniteVector", message: "position \(position) is \(token)") }
            vector.append(number)
        }
        return vector
    }

    /// A decimal number as Python, JSON and C print them, or NaN / infinity by their usual names; nil for
    /// anything else (Swift's own parser also takes hexadecimal floats, which no vector file holds).
    private static func number(_ token: String) -> Float? {
        let unsigned = token.hasPrefix("-") || token.hasPrefix("+") ? token.dropFirst() : Substring(token)
        if ["nan", "inf", "infinity"].contains(unsigned.lowercased()) { return unsigned.lowercased() == "nan" ? .nan : .infinity }
        var digits = 0, exponent = false, point = false
        var previous: UInt8 = 0
        for byte in unsigned.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: ".") where !point && !exponent: point = true
            case UInt8(ascii: "e") where digits > 0 && !exponent, UInt8(ascii: "E") where digits > 0 && !exponent: exponent = true
            case UInt8(ascii: "-") where previous | 0x20 == UInt8(ascii: "e"), UInt8(ascii: "+") where previous | 0x20 == UInt8(ascii: "e"): break
            default: return nil
            }
            previous = byte
        }
        guard digits > 0 else { return nil }
        return Float(token)
    }

    /// `loupe export` puts a ' before an id a spreadsheet would run as a formula; importing takes it off.
    private static func exportedID(_ id: String) -> String {
        guard id.hasPrefix("'"), let second = id.dropFirst().first, ["=", "+", "-", "@", "\t", "\r"].contains(second) else { return id }
        return String(id.dropFirst())
    }

    static func text(of file: URL) throws -> String {
        guard let data = FileManager.default.contents(atPath: file.path) else { throw IngestSourceError.notFound(file.path) }
        guard let text = String(data: data, encoding: .utf8) else { throw IngestSourceError.unreadableManifest("it is not UTF-8") }
        return text
    }

    /// The header and records of a CSV or TSV text (delimiter as manifests have it), vectors' long fields allowed.
    static func table(_ text: String) throws -> (header: [String], records: [DelimitedText.Record]) {
        let body = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        let firstLine = body.prefix { $0 != "\n" && $0 != "\r\n" }
        let delimiter: Character = firstLine.contains("\t") ? "\t" : (firstLine.contains(";") && !firstLine.contains(",") ? ";" : ",")
        var records = DelimitedText.records(body, delimiter: delimiter, maximumQuotedLength: 1 << 20)
        guard !records.isEmpty, !(records.count == 1 && records[0].fields == [""]) else { throw IngestSourceError.unreadableManifest("it is empty") }
        let header = records.removeFirst()
        if let problem = header.problem { throw IngestSourceError.unreadableManifest("its header row has \(problem)") }
        return (header.fields.map { $0.trimmingCharacters(in: .whitespaces) }, records)
    }
}

/// A NumPy `.npy` file (format 1.0–3.0) holding a C-order float32 or float64 matrix.
public struct NumPyMatrix: Sendable {
    public let rows: Int
    public let columns: Int
    private let values: [Float]

    init(file: URL) throws {
        guard let data = FileManager.default.contents(atPath: file.path) else { throw IngestSourceError.notFound(file.path) }
        try self.init(bytes: [UInt8](data), name: file.lastPathComponent)
    }

    public init(bytes: [UInt8], name: String) throws {
        func bad(_ reason: String) -> IngestSourceError { .unreadableManifest("\(name) is not a usable .npy file: \(reason)") }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else { throw bad("no NUMPY signature") }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: (headerLength, headerStart) = (Int(bytes[8]) | Int(bytes[9]) << 8, 10)
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("the header is cut") }
            (headerLength, headerStart) = ((0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }, 12)
        default: throw bad("format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count,
              let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else { throw bad("the header is cut") }
        guard header.contains("'fortran_order': False") else { throw bad("only C-order matrices are read") }
        let width: Int
        if header.contains("'descr': '<f4'") { width = 4 } else if header.contains("'descr': '<f8'") { width = 8 } else {
            throw bad("the values must be little-endian float32 or float64 ('<f4', '<f8')")
        }
        guard let shape = header.firstMatch(of: /'shape': \((\d+), (\d+)\)/), let rows = Int(shape.1), let columns = Int(shape.2) else {
            throw bad("the shape must be (rows, columns)")
        }
        let start = headerStart + headerLength
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, count <= (bytes.count - start) / width, bytes.count - start == count * width else {
            throw bad("it holds \(bytes.count - start) bytes of values for a \(rows)×\(columns) matrix")
        }
        self.rows = rows
        self.columns = columns
        values = bytes[start...].withUnsafeBytes { raw in
            width == 4 ? (0..<count).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
                : (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
        }
    }

    public func row(_ index: Int) -> [Float] { Array(values[(index * columns)..<((index + 1) * columns)]) }
}

