import Foundation

/// What a `Range` header asks of a file of `size` bytes (RFC 9110 §14): one byte range, the whole file
/// (no header, another unit, several ranges, or a header that does not parse: a server may ignore a
/// Range it does not serve), or nothing it can give (416).
public enum ByteRangeRequest: Equatable, Sendable {
    case whole
    /// Inclusive bounds, as `Content-Range` states them.
    case range(ClosedRange<Int>)
    case unsatisfiable

    public init(header: String?, size: Int) {
        guard let header, header.hasPrefix("bytes=") else {
            self = .whole
            return
        }
        let spec = header.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        // Several ranges would need a multipart answer; one whole answer serves them too.
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else {
            self = .whole
            return
        }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        func number(_ text: Substring) -> Int? {
            guard !text.isEmpty, text.count <= 18, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(text)
        }
        if first.isEmpty {
            // bytes=-N: the last N bytes.
            guard let suffix = number(last) else {
                self = .whole
                return
            }
            self = suffix == 0 || size == 0 ? .unsatisfiable : .range(max(0, size - suffix)...(size - 1))
            return
        }
        guard let start = number(first) else {
            self = .whole
            return
        }
        var end = size - 1
        if !last.isEmpty {
            guard let stated = number(last), stated >= start else {
                self = .whole
                return
            }
            end = min(stated, size - 1)
        }
        self = start < size ? .range(start...end) : .unsatisfiable
    }
}
