/// The first non-empty part of a `multipart/form-data` body: where an uploaded image travels.
public enum Multipart {
    public static func boundary(contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                let value = pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2
                    ? String(pair[1].dropFirst().dropLast()) : pair[1]
                return value.isEmpty || value.count > 200 ? nil : value
            }
        }
        return nil
    }

    public static func firstPart(_ body: [UInt8], boundary: String) -> [UInt8]? {
        let delimiter = Array("--\(boundary)".utf8)
        let headerEnd: [UInt8] = [13, 10, 13, 10]
        var cursor = 0
        guard var start = find(delimiter, in: body, from: 0) else { return nil }
        while true {
            cursor = start + delimiter.count
            // "--" after a delimiter closes the body.
            if cursor + 2 <= body.count, body[cursor] == 45, body[cursor + 1] == 45 { return nil }
            guard let headersEnd = find(headerEnd, in: body, from: cursor) else { return nil }
            let contentStart = headersEnd + 4
            guard let next = find([13, 10] + delimiter, in: body, from: contentStart) else { return nil }
            if next > contentStart { return Array(body[contentStart..<next]) }
            start = next + 2
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard needle.count <= haystack.count, from <= haystack.count - needle.count else { return nil }
        var index = from
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] && Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }
}
