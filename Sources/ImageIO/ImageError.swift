/// Why an image was refused. `code` is stable and machine-readable; `description` is for people.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(String)
    case unreadable(String)
    case empty
    case tooLarge(bytes: Int, limit: Int)
    case unknownFormat
    case dimensionsOutOfRange(width: Int, height: Int, limits: ImageLimits)
    case corrupt(format: ImageFormat, reason: String)
    case unsupported(format: ImageFormat, reason: String)

    public var code: String {
        switch self {
        case .fileNotFound: "FileNotFound"
        case .unreadable: "FileUnreadable"
        case .empty: "EmptyImage"
        case .tooLarge: "InvalidImageSize"
        case .unknownFormat, .unsupported: "InvalidImageFormat"
        case .dimensionsOutOfRange: "InvalidImageDimension"
        case .corrupt: "CorruptImage"
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path): "no file at \(path)"
        case .unreadable(let reason): "cannot read the file: \(reason)"
        case .empty: "the image is empty (0 bytes)"
        case .tooLarge(let bytes, let limit): "the image is \(bytes) bytes, over the limit of \(limit) bytes"
        case .unknownFormat: "not a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF, AVIF, ICO)"
        case .dimensionsOutOfRange(let width, let height, let limits):
            "the image is \(width)×\(height) pixels; each side must be between \(limits.minimumSide) and \(limits.maximumSide)"
        case .corrupt(let format, let reason): "the \(format.rawValue) data is damaged or truncated: \(reason)"
        case .unsupported(let format, let reason): "this \(format.rawValue) variant is not supported: \(reason)"
        }
    }
}

/// The limits checked before an image is decoded (Azure AI Vision's, by default).
public struct ImageLimits: Sendable, Equatable {
    public var maximumBytes: Int
    public var minimumSide: Int
    public var maximumSide: Int

    public init(maximumBytes: Int = 20 * 1024 * 1024, minimumSide: Int = 10, maximumSide: Int = 16_000) {
        self.maximumBytes = maximumBytes
        self.minimumSide = minimumSide
        self.maximumSide = maximumSide
    }

    public static let azure = ImageLimits()
}

public enum ImageFormat: String, Sendable, Equatable, CaseIterable {
    case jpeg = "JPEG", png = "PNG", webp = "WebP", gif = "GIF", bmp = "BMP", tiff = "TIFF", heif = "HEIF", avif = "AVIF", ico = "ICO"

    /// Recognises a format from its first bytes (never from a file name). HEIF and AVIF are told apart
    /// by the brands of their `ftyp` box, which the first 64 bytes hold.
    public init?<Bytes: Collection<UInt8>>(signature: Bytes) {
        let bytes = Array(signature.prefix(64))
        func starts(_ prefix: [UInt8]) -> Bool { bytes.count >= prefix.count && Array(bytes.prefix(prefix.count)) == prefix }
        if starts([0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) {
            self = .gif
        } else if bytes.count >= 12 && starts(Array("RIFF".utf8)) && Array(bytes[8..<12]) == Array("WEBP".utf8) {
            self = .webp
        } else if starts(Array("BM".utf8)) {
            self = .bmp
        } else if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) {
            self = .tiff
        } else if let brands = Self.fileTypeBrands(bytes) {
            // The major brand, or for the generic image brands the compatible ones, say which codec.
            let (major, compatible) = (brands[0], brands.dropFirst())
            if ["avif", "avis"].contains(major) || (["mif1", "msf1"].contains(major) && compatible.contains { ["avif", "avis"].contains($0) }) {
                self = .avif
            } else if ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "msf1"].contains(major) {
                self = .heif
            } else {
                return nil
            }
        } else if starts([0, 0, 1, 0]) && bytes.count >= 6 && (bytes[4] != 0 || bytes[5] != 0) {
            self = .ico  // reserved 0, type 1 (icon), then a count of at least one
        } else {
            return nil
        }
    }

    /// The brands of an ISO base media `ftyp` box at the start: the major brand, then the compatible ones.
    private static func fileTypeBrands(_ bytes: [UInt8]) -> [String]? {
        guard bytes.count >= 12, Array(bytes[4..<8]) == Array("ftyp".utf8) else { return nil }
        let boxSize = bytes[0..<4].reduce(0) { $0 << 8 | Int($1) }
        let end = min(boxSize, bytes.count)
        // Major brand at 8, minor version at 12, compatible brands from 16.
        let offsets = [8] + Array(stride(from: 16, to: end - 3, by: 4))
        return offsets.map { String(decoding: bytes[$0..<($0 + 4)], as: UTF8.self) }
    }

    /// The media type the format is served with.
    public var mediaType: String {
        switch self {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .webp: "image/webp"
        case .gif: "image/gif"
        case .bmp: "image/bmp"
        case .tiff: "image/tiff"
        case .heif: "image/heic"
        case .avif: "image/avif"
        case .ico: "image/x-icon"
        }
    }
}
