import Foundation

/// A `multipart/form-data` body: where an uploaded image travels.
public enum Multipart {
    public struct Part: Equatable, Sendable {
        /// The `name` of its Content-Disposition, if it has one.
        public let name: String?
        public let content: [UInt8]
    }

    public static func boundary(contentType: String) -> String? {
        guard let value = parameter("boundary", in: contentType), !value.isEmpty, value.count <= 200 else { return nil }
        return value
    }

    /// A `key=value` (or `key="value"`) parameter of a header value such as `form-data; name="file"`.
    private static func parameter(_ key: String, in header: some StringProtocol) -> String? {
        for parameter in header.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == key {
                return pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2 ? String(pair[1].dropFirst().dropLast()) : pair[1]
            }
        }
        return nil
    }

    /// The uploaded file: the part named `file` (what Azure's and most clients send), else the first
    /// part with content, for clients that name it otherwise.
    public static func file(_ body: [UInt8], boundary: String) -> [UInt8]? {
        let parts = parts(body, boundary: boundary)
        return (parts.first { $0.name == "file" } ?? parts.first { !$0.content.isEmpty }).map(\.content)
    }

    /// The parts up to the closing delimiter (or up to where the body stops making sense).
    public static func parts(_ body: [UInt8], boundary: String) -> [Part] {
        let delimiter = Array("--\(boundary)".utf8)
        let headerEnd: [UInt8] = [13, 10, 13, 10]
        var parts = [Part]()
        guard var start = find(delimiter, in: body, from: 0) else { return [] }
        while true {
            let cursor = start + delimiter.count
            // "--" after a delimiter closes the body.
            if cursor + 2 <= body.count, body[cursor] == 45, body[cursor + 1] == 45 { return parts }
            guard let headersEnd = find(headerEnd, in: body, from: cursor) else { return parts }
            let contentStart = headersEnd + 4
            guard let next = find([13, 10] + delimiter, in: body, from: contentStart) else { return parts }
            parts.append(Part(name: name(inHeaders: body[cursor..<headersEnd]), content: Array(body[contentStart..<next])))
            start = next + 2
        }
    }

    /// `name="…"` from the part's Content-Disposition header.
    private static func name(inHeaders headers: ArraySlice<UInt8>) -> String? {
        let text = String(decoding: headers, as: UTF8.self)
        return text.split(whereSeparator: \.isNewline).lazy
            .filter { $0.lowercased().hasPrefix("content-disposition:") }
            .compactMap { parameter("name", in: $0) }.first
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard needle.count <= haystack.count, from <= haystack.count - needle.count else { return nil }
        var index = from
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] && haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
