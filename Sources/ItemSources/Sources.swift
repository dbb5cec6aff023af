import Foundation

/// One image or video to ingest: its stable id, the file, and metadata (a manifest's columns).
public struct SourceItem: Sendable, Equatable {
    public let id: String
    public let path: String
    public let metadata: [String: String]

    public init(id: String, path: String, metadata: [String: String]) {
        self.id = id
        self.path = path
        self.metadata = metadata
    }

    /// Videos are told apart by their file's extension (`MediaFiles.videoExtensions`).
    public var isVideo: Bool { MediaFiles.videoExtensions.contains((path as NSString).pathExtension.lowercased()) }
}

/// A problem with one input that does not stop the run.
public struct SourceProblem: Error, Sendable, Equatable {
    public let id: String
    public let path: String
    public let code: String
    public let message: String

    public init(id: String, path: String, code: String, message: String) {
        self.id = id
        self.path = path
        self.code = code
        self.message = message
    }
}

public enum IngestSourceError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case unreadableManifest(String)
    case missingColumn(String, available: [String])

    public var description: String {
        switch self {
        case .notFound(let path): "nothing to ingest at \(path)"
        case .unreadableManifest(let reason): "the manifest cannot be read: \(reason)"
        case .missingColumn(let column, let available):
            "the manifest has no \(column) column (it has: \(available.prefix(20).joined(separator: ", "))); name the image column with --image-column"
        }
    }
}

public enum MediaFiles {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif", "ico"]
    public static let videoExtensions: Set<String> = ["mp4", "m4v", "mov", "mkv", "webm", "avi"]
    static let extensions = imageExtensions.union(videoExtensions)
}

/// Every image and video file under a folder, recursively; the id is the path relative to the folder.
public struct FolderSource: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    public func items() throws -> [SourceItem] {
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey],
                                                              options: [.skipsHiddenFiles]) else {
            throw IngestSourceError.notFound(root.path)
        }
        var items = [SourceItem]()
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in enumerator where MediaFiles.extensions.contains(url.pathExtension.lowercased()) {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(prefix) else { continue }
            items.append(SourceItem(id: String(path.dropFirst(prefix.count)), path: path, metadata: [:]))
        }
        return items.sorted { $0.id < $1.id }
    }
}

/// A TSV or CSV manifest: a header row, one image per row. The image column defaults to IMAGE_FILE
/// (SemArt's layout), then `image`, `file`, `path`; the id is that column's value unless an id column is
/// named. Image paths are relative to the manifest's folder, or to an `Images`/`images` folder beside it,
/// and may not leave that folder. Files that are not UTF-8 are read as Windows-1252 (SemArt's own
/// manifests are).
public struct ManifestSource: Sendable {
    public let file: URL
    public let imageColumn: String?
    public let idColumn: String?
    public static let maximumFieldLength = 64 * 1024

    public init(file: URL, imageColumn: String? = nil, idColumn: String? = nil) {
        self.file = file.standardizedFileURL
        self.imageColumn = imageColumn
        self.idColumn = idColumn
    }

    public func items() throws -> (items: [SourceItem], problems: [SourceProblem]) {
        guard let data = FileManager.default.contents(atPath: file.path) else { throw IngestSourceError.notFound(file.path) }
        guard let text = String(data: data, encoding: .utf8) ?? String(data: data, encoding: .windowsCP1252) else {
            throw IngestSourceError.unreadableManifest("neither UTF-8 nor Windows-1252")
        }
        let body = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        let firstLine = body.prefix { $0 != "\n" && $0 != "\r\n" }
        let delimiter: Character = firstLine.contains("\t") ? "\t" : (firstLine.contains(";") && !firstLine.contains(",") ? ";" : ",")
        var rows = DelimitedText.records(body, delimiter: delimiter)
        guard !rows.isEmpty, !(rows.count == 1 && rows[0].fields == [""]) else { throw IngestSourceError.unreadableManifest("it is empty") }
        let headerRecord = rows.removeFirst()
        if let problem = headerRecord.problem { throw IngestSourceError.unreadableManifest("its header row has \(problem)") }
        let header = headerRecord.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        let imageColumnName = try imageColumn ?? ["IMAGE_FILE", "image", "file", "path", "filename"].first { wanted in
            header.contains { $0.caseInsensitiveCompare(wanted) == .orderedSame }
        }.flatMap { wanted in header.first { $0.caseInsensitiveCompare(wanted) == .orderedSame } } ?? {
            throw IngestSourceError.missingColumn("IMAGE_FILE", available: header)
        }()
        guard let imageIndex = header.firstIndex(of: imageColumnName) else {
            throw IngestSourceError.missingColumn(imageColumnName, available: header)
        }
        var idIndex = imageIndex
        if let idColumn {
            guard let index = header.firstIndex(of: idColumn) else { throw IngestSourceError.missingColumn(idColumn, available: header) }
            idIndex = index
        }

        let folder = file.deletingLastPathComponent()
        let roots = [folder.appendingPathComponent("Images"), folder.appendingPathComponent("images"), folder]
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        var items = [SourceItem]()
        var problems = [SourceProblem]()
        var seen = Set<String>()
        for record in rows where record.fields != [""] {
            let line = record.line, row = record.fields
            func problem(_ code: String, _ message: String, id: String = "line \(line)", path: String = "") {
                problems.append(SourceProblem(id: id, path: path, code: code, message: message))
            }
            if let reason = record.problem {
                problem("MalformedRow", "line \(line) has \(reason)")
                continue
            }
            guard row.count == header.count else {
                problem("MalformedRow", "line \(line) has \(row.count) fields, the header has \(header.count)")
                continue
            }
            if let long = zip(header, row).first(where: { $0.1.count > Self.maximumFieldLength }) {
                problem("FieldTooLong", "field \(long.0) on line \(line) is over \(Self.maximumFieldLength) characters")
                continue
            }
            if let field = zip(header, row).first(where: { $0.1.utf8.contains(0) }) {
                problem("InvalidText", "field \(field.0) on line \(line) holds a NUL character")
                continue
            }
            let relative = row[imageIndex].trimmingCharacters(in: .whitespaces)
            let id = row[idIndex].trimmingCharacters(in: .whitespaces)
            guard !relative.isEmpty, !id.isEmpty else {
                problem("MissingImage", "line \(line) names no image")
                continue
            }
            guard seen.insert(id).inserted else {
                problem("DuplicateId", "id \(id) appears more than once; line \(line) is skipped", id: id)
                continue
            }
            guard let path = Self.resolve(relative, in: roots) else {
                if Self.staysInside(relative) {
                    problem("FileNotFound", "no image file \(relative) beside the manifest", id: id, path: relative)
                } else {
                    problem("PathOutsideFolder", "\(relative) points outside \(folder.path)", id: id, path: relative)
                }
                continue
            }
            var metadata = [String: String]()
            for (name, value) in zip(header, row) where !name.isEmpty { metadata[name] = value }
            items.append(SourceItem(id: id, path: path, metadata: metadata))
        }
        return (items, problems)
    }

    /// Whether a relative path stays inside its folder by its text alone (no absolute path, no `..` escape).
    static func staysInside(_ relative: String) -> Bool {
        guard !relative.hasPrefix("/"), !relative.contains("\0") else { return false }
        var depth = 0
        for component in relative.split(separator: "/") {
            if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
            if depth < 0 { return false }
        }
        return true
    }

    /// The first root under which `relative` names an existing file without leaving the root
    /// (no absolute paths, no `..` escapes, no symlinks pointing out).
    public static func resolve(_ relative: String, in roots: [URL]) -> String? {
        guard !relative.hasPrefix("/"), !relative.contains("\0") else { return nil }
        for root in roots {
            let rootPath = root.resolvingSymlinksInPath().path
            let candidate = root.appendingPathComponent(relative).standardizedFileURL.resolvingSymlinksInPath().path
            guard candidate.hasPrefix(rootPath + "/") else { continue }
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isFolder), !isFolder.boolValue { return candidate }
        }
        return nil
    }
}

/// Rows of a manifest with the line each starts on.
public enum DelimitedText {
    public struct Record: Equatable, Sendable {
        public let line: Int
        public let fields: [String]
        /// Why the row could not be read; its fields are then empty.
        public var problem: String? = nil
    }

    /// TSV (SemArt's format) has no quoting: a tab separates fields, a line is a row, and a quote is a
    /// character like any other. CSV (`,` or `;`) follows RFC 4180: a field that starts with a quote runs
    /// to the closing quote, which the delimiter or the line's end must follow; doubled quotes inside stand
    /// for one, and the field may span lines. A quote that is never closed (by the end of the file, within
    /// `maximumQuotedLength` characters, or before other text) makes its row one malformed record; reading
    /// goes on with the next line, so later rows and line numbers stay right.
    public static func records(_ text: String, delimiter: Character, maximumQuotedLength: Int = ManifestSource.maximumFieldLength) -> [Record] {
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        if delimiter == "\t" {
            return lines.enumerated().map { Record(line: $0.offset + 1, fields: $0.element.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)) }
        }
        var records = [Record]()
        var start = 0
        while start < lines.count {
            if let (fields, last) = quotedRecord(lines, from: start, delimiter: delimiter, maximumQuotedLength: maximumQuotedLength) {
                records.append(Record(line: start + 1, fields: fields))
                start = last + 1
            } else {
                records.append(Record(line: start + 1, fields: [], problem: "a quoted field that is never closed"))
                start += 1
            }
        }
        return records
    }

    /// The fields of the CSV row that starts on `lines[first]`, and the line it ends on; nil when a quoted
    /// field is not closed properly.
    private static func quotedRecord(_ lines: [Substring], from first: Int, delimiter: Character, maximumQuotedLength: Int) -> ([String], Int)? {
        var fields = [String]()
        var field = ""
        var quoted = false
        var quotedLength = 0
        var index = first
        while true {
            var characters = lines[index].makeIterator()
            var pending: Character? = nil
            while let character = pending ?? characters.next() {
                pending = nil
                if quoted {
                    if character == "\"" {
                        let next = characters.next()
                        if next == "\"" {
                            field.append("\"")
                        } else if next == nil || next == delimiter {
                            quoted = false
                            pending = next
                        } else {
                            return nil  // text after a closing quote: the quote was not where the field ends
                        }
                    } else {
                        field.append(character)
                        quotedLength += 1
                    }
                } else if character == "\"" && field.isEmpty {
                    quoted = true
                    quotedLength = 0
                } else if character == delimiter {
                    fields.append(field)
                    field = ""
                } else {
                    field.append(character)
                }
            }
            guard quoted else { break }
            index += 1
            guard index < lines.count, quotedLength <= maximumQuotedLength else { return nil }
            field.append("\n")
        }
        fields.append(field)
        return (fields, index)
    }
}
