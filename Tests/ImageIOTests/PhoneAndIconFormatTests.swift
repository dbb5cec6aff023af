import Foundation
import Testing

@testable import ImageIO

/// HEIC, AVIF and ICO against Pillow (with pillow-heif): each fixture decoded here and by the reference
/// (`generate_formats.py` saved Pillow's pixels as RGBA PNGs beside them), then damaged and hostile files.
@Suite struct PhoneAndIconFormatTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/formats")
    static let heif = ["photo.heic", "rotated.heic", "transposed.heic", "alpha.heic"]
    static let avif = ["photo.avif", "rotated.avif", "transposed.avif", "alpha.avif"]
    static let icons = ["png-entries.ico", "bitmap-32.ico", "bitmap-1.ico", "bitmap-4.ico", "bitmap-8.ico", "bitmap-16.ico", "bitmap-24.ico",
                        "depths.ico"]

    static func bytes(_ file: String) throws -> [UInt8] { Array(try Data(contentsOf: folder.appendingPathComponent(file))) }

    /// Both decodes as RGBA samples, after checking they have one size.
    static func pair(_ file: String) throws -> (ours: [UInt8], pillow: [UInt8]) {
        let ours = try ImageDecoder().decode(bytes(file))
        let pillow = try ImageDecoder().decode(Data(contentsOf: folder.appendingPathComponent("reference/" + file.replacingOccurrences(of: ".", with: "-") + ".png")))
        #expect(ours.width == pillow.width && ours.height == pillow.height, "\(file): \(ours.width)×\(ours.height)")
        #expect(pillow.channels == 4)
        guard ours.channels == 3 else { return (ours.pixels, pillow.pixels) }
        var rgba = [UInt8]()
        rgba.reserveCapacity(ours.width * ours.height * 4)
        for i in 0..<(ours.width * ours.height) { rgba += ours.pixels[(3 * i)..<(3 * i + 3)] + [255] }
        return (rgba, pillow.pixels)
    }

    static func error(_ bytes: [UInt8]) -> ImageError? {
        do {
            _ = try ImageDecoder().decode(bytes)
            return nil
        } catch {
            return error as? ImageError
        }
    }

    /// Every icon entry kind gives Pillow's pixels exactly, transparency included: PNG entries, 32-bit
    /// alpha, 1/4/8/16/24-bit AND masks on rows that need padding, and the entry Pillow picks among equal sizes.
    @Test(arguments: icons)
    func iconsDecodeAsPillowDoes(_ file: String) throws {
        let (ours, pillow) = try Self.pair(file)
        #expect(ours == pillow, "\(file)")
    }

    /// HEIC within one level of pillow-heif's (its libheif is newer than Debian's and rounds its colour
    /// conversion its own way), with the file's rotation and mirror applied and the alpha plane kept.
    @Test(arguments: heif)
    func heicDecodesAsPillowHeifDoes(_ file: String) throws {
        let (ours, pillow) = try Self.pair(file)
        let largest = zip(ours, pillow).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(ours.count == pillow.count && largest <= 1, "\(file): largest difference \(largest)")
    }

    /// AVIF: Pillow's libavif fills in the half-resolution colour planes by bilinear interpolation
    /// (libyuv), Debian's libheif 1.15 repeats each sample, so pixels at colour edges differ; measured on
    /// these files, the mean difference is 1.1–3.1 levels with no bias in any channel. What that does to
    /// the vectors is tested in PhoneFormatVectorTests (cosine ≥ 0.999).
    @Test(arguments: avif)
    func avifDecodesCloseToPillow(_ file: String) throws {
        let (ours, pillow) = try Self.pair(file)
        #expect(ours.count == pillow.count)
        let differences = zip(ours, pillow).map { Int($0) - Int($1) }
        let mean = Double(differences.map(abs).reduce(0, +)) / Double(differences.count)
        #expect(mean <= 3.5, "\(file): mean difference \(mean)")
        for channel in 0..<4 {
            let samples = stride(from: channel, to: differences.count, by: 4).map { differences[$0] }
            let bias = Double(samples.reduce(0, +)) / Double(samples.count)
            #expect(abs(bias) <= 0.25, "\(file): channel \(channel) is off by \(bias) on average")
        }
    }

    @Test func formatsAreToldApartByTheirBrands() throws {
        for file in Self.heif { #expect(ImageFormat(signature: try Self.bytes(file)) == .heif, "\(file)") }
        for file in Self.avif { #expect(ImageFormat(signature: try Self.bytes(file)) == .avif, "\(file)") }
        for file in Self.icons { #expect(ImageFormat(signature: try Self.bytes(file)) == .ico, "\(file)") }
        // A generic image brand with AVIF among the compatible ones, and a video brand.
        let mif1 = [0, 0, 0, 24] + Array("ftypmif1".utf8) + [0, 0, 0, 0] + Array("miafavif".utf8)
        #expect(ImageFormat(signature: mif1) == .avif)
        #expect(ImageFormat(signature: [0, 0, 0, 20] + Array("ftypisom".utf8) + [0, 0, 2, 0] + Array("isom".utf8)) == nil)
        #expect(ImageFormat(signature: [0, 0, 1, 0, 0, 0]) == nil)  // an icon directory of no icons
    }

    /// The header's size, for budgeting a decode, equals the decoded size (after a HEIF's rotation).
    @Test func dimensionsComeFromTheHeader() throws {
        for file in Self.heif + Self.avif + Self.icons {
            let bytes = try Self.bytes(file)
            let header = try ImageDecoder().dimensions(of: bytes), image = try ImageDecoder().decode(bytes)
            #expect(header.width == image.width && header.height == image.height, "\(file)")
        }
    }

    /// Cut anywhere, each format is refused with a reason and nothing crashes.
    @Test(arguments: ["photo.heic", "alpha.avif", "png-entries.ico", "bitmap-8.ico", "bitmap-32.ico"])
    func truncatedFilesAreRefused(_ file: String) throws {
        let bytes = try Self.bytes(file)
        for fraction in [0.05, 0.3, 0.6, 0.9, 0.99] {
            let cut = Array(bytes.prefix(Int(Double(bytes.count) * fraction)))
            let error = Self.error(cut)
            #expect(error != nil, "\(file) cut to \(cut.count) bytes decoded")
            #expect(["CorruptImage", "InvalidImageFormat"].contains(error?.code ?? ""), "\(file) cut to \(cut.count): \(String(describing: error))")
        }
    }

    /// A HEIF whose `ispe` box announces 20,000 × 20,000 is refused from its header, before any decode.
    @Test func anOversizedHEIFIsRefusedFromItsHeader() throws {
        var bytes = try Self.bytes("photo.heic")
        let ispe = Array("ispe".utf8)
        let at = try #require((0..<(bytes.count - 16)).first { Array(bytes[$0..<($0 + 4)]) == ispe })
        // Box type, version and flags (4 bytes), then width and height, big-endian.
        bytes.replaceSubrange((at + 8)..<(at + 16), with: [0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20])
        #expect(Self.error(bytes)?.code == "InvalidImageDimension")
        #expect(Self.error(Array(bytes.prefix(40)) + [UInt8](repeating: 0xAB, count: 64))?.code == "CorruptImage")
    }

    /// Icon directories that lie: more entries than the file holds, data outside the file, sizes out of range.
    @Test func hostileIconsAreRefused() throws {
        func icon(count: Int, entries: [(size: Int, offset: Int)], payload: [UInt8]) -> [UInt8] {
            var bytes: [UInt8] = [0, 0, 1, 0, UInt8(count & 0xFF), UInt8(count >> 8)]
            for entry in entries {
                bytes += [16, 16, 0, 0, 1, 0, 32, 0] + le32(entry.size) + le32(entry.offset)
            }
            return bytes + payload
        }
        func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let valid = try Self.bytes("bitmap-24.ico")
        #expect(Self.error(icon(count: 65535, entries: [(40, 22)], payload: [UInt8](repeating: 0, count: 40)))?.code == "CorruptImage")
        #expect(Self.error(icon(count: 1, entries: [(40, 1 << 30)], payload: [UInt8](repeating: 0, count: 40)))?.code == "CorruptImage")
        #expect(Self.error(icon(count: 1, entries: [(Int(Int32.max), 22)], payload: [UInt8](repeating: 0, count: 40)))?.code == "CorruptImage")
        #expect(Self.error(icon(count: 1, entries: [(40, 2)], payload: [UInt8](repeating: 0, count: 40)))?.code == "CorruptImage")
        // The bitmap's header (after the 6-byte header and one 16-byte entry) claiming 20,000 pixels a
        // side, no width, no height, or a negative height.
        for (width, height, code) in [(20_000, 40_000, "InvalidImageDimension"), (0, 32, "InvalidImageDimension"), (16, 0, "CorruptImage"),
                                      (16, -32, "CorruptImage")] {
            var bytes = valid
            bytes.replaceSubrange(26..<34, with: le32(width) + le32(height))
            #expect(Self.error(bytes)?.code == code, "\(width)×\(height)")
        }
        // The directory says 32 bits and the bitmap holds 24.
        var mismatched = valid
        mismatched[6 + 6] = 32
        #expect(Self.error(mismatched)?.code == "CorruptImage")
    }
}
