import Foundation
import Testing

@testable import ImageIO

@Suite struct ImageDecoderTests {
    static let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    static func bytes(_ file: String) throws -> [UInt8] { Array(try Data(contentsOf: images.appendingPathComponent(file))) }

    static func error(_ body: () throws -> RasterImage) -> ImageError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? ImageError
        }
    }

    @Test(arguments: [
        ("landscape_rgb_512x384.png", 512, 384, 3), ("gray_l_257x199.png", 257, 199, 1),
        ("alpha_rgba_400x300.png", 400, 300, 4), ("palette_p_200x150.png", 200, 150, 3),
        ("photo_progressive_800x600.jpg", 800, 600, 3), ("gray_l_320x240.jpg", 320, 240, 1),
        ("cmyk_360x240.jpg", 360, 240, 3), ("wide_lossless_800x200.webp", 800, 200, 3),
        ("frame_gif_120x90.gif", 120, 90, 4), ("bitmap_rgb_150x100.bmp", 150, 100, 4),
        ("tiff_rgb_130x170.tiff", 130, 170, 4), ("exif_rotated_240x160.jpg", 160, 240, 3),
    ])
    func decodesEveryFormatUpright(_ file: String, _ width: Int, _ height: Int, _ channels: Int) throws {
        let image = try ImageDecoder().decode(Self.bytes(file))
        #expect(image.width == width && image.height == height && image.channels == channels)
    }

    /// The header's size, for budgeting a decode, in every format; nothing is decoded (a 16,000 px square's
    /// header alone answers), and sizes out of range are refused as a decode would refuse them.
    @Test func dimensionsComeFromTheHeaderAlone() throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.images.path) {
            let bytes = try Self.bytes(file)
            let stored = try ImageDecoder().dimensions(of: bytes)
            let image = try ImageDecoder().decode(bytes)
            // EXIF orientation may turn the decoded image; the header has the stored size.
            #expect([stored.width, stored.height].sorted() == [image.width, image.height].sorted(), "\(file)")
        }
        var header: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]
        header += [0, 0, 0x3E, 0x80, 0, 0, 0x3E, 0x80, 8, 0, 0, 0, 0]  // 16,000 × 16,000 grey, and no pixel data
        #expect(try ImageDecoder().dimensions(of: header) == (16_000, 16_000))
        header[18] = 0x3E; header[19] = 0x81
        #expect(throws: ImageError.self) { try ImageDecoder().dimensions(of: header) }
        #expect(throws: ImageError.self) { try ImageDecoder().dimensions(of: Array("not an image".utf8)) }
    }

    @Test func sixteenBitPNGKeepsTheHighByte() throws {
        func sample(_ x: Int, _ y: Int) -> UInt16 { UInt16(x * 5000 + y * 10 + 7) }
        let image = try ImageDecoder().decode(PNGWriter.rgb16(width: 12, height: 11, sample: sample))
        #expect(image.channels == 3 && image.width == 12 && image.height == 11)
        let expected = UInt8(sample(5, 2) >> 8)
        #expect(image.pixels[3 * (2 * 12 + 5)] == expected)
    }

    @Test func missingFile() {
        #expect(Self.error { try ImageDecoder().decode(fileAt: "/nonexistent/loupe.png") } == .fileNotFound("/nonexistent/loupe.png"))
    }

    @Test func directoryIsNotAnImage() {
        #expect(Self.error { try ImageDecoder().decode(fileAt: "/tmp") }?.code == "FileUnreadable")
    }

    /// A named pipe (which a manifest may name) is refused at once, not waited on for a writer.
    @Test(.timeLimit(.minutes(1))) func aNamedPipeIsRefusedWithoutWaiting() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-fifo-\(UUID()).jpg").path
        #expect(mkfifo(path, 0o600) == 0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(Self.error { try ImageDecoder().decode(fileAt: path) } == .unreadable("\(path) is not a regular file"))
    }

    @Test func emptyFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-empty-\(UUID()).png").path
        FileManager.default.createFile(atPath: path, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(Self.error { try ImageDecoder().decode(fileAt: path) } == .empty)
    }

    @Test(arguments: [Array("hello, world".utf8), Array("<html><script>alert(1)</script>".utf8), [UInt8](repeating: 0, count: 64)])
    func nonImageBytes(_ bytes: [UInt8]) {
        #expect(Self.error { try ImageDecoder().decode(bytes) } == .unknownFormat)
    }

    @Test(arguments: ["photo_progressive_800x600.jpg", "gray_l_320x240.jpg", "landscape_rgb_512x384.png",
                      "wide_lossless_800x200.webp", "frame_gif_120x90.gif", "bitmap_rgb_150x100.bmp", "tiff_rgb_130x170.tiff"])
    func truncatedFilesAreCorrupt(_ file: String) throws {
        let bytes = try Self.bytes(file)
        for keep in [bytes.count / 2, 40] {
            let error = Self.error { try ImageDecoder().decode(Array(bytes.prefix(keep))) }
            #expect(error != nil, "\(file) cut to \(keep) bytes decoded")
            #expect(error?.code == "CorruptImage" || error?.code == "InvalidImageFormat", "\(file) cut to \(keep): \(String(describing: error))")
        }
    }

    /// A GIF cut at any byte is refused with a message. (Cut right after the image descriptor, giflib
    /// fails without setting its error code, and reading its message for that code crashed the process.)
    @Test func aGIFCutAnywhereIsRefused() throws {
        let bytes = try Self.bytes("frame_gif_120x90.gif")
        #expect(bytes.last == 0x3B)  // the trailer: without only it, the frame is whole and decodes
        for keep in 0..<(bytes.count - 1) {
            let error = Self.error { try ImageDecoder().decode(Array(bytes.prefix(keep))) }
            #expect(error != nil && !(error?.description.isEmpty ?? true), "cut to \(keep) bytes")
        }
    }

    /// The offset of a GIF's first image descriptor (after the header, the colour table and extensions).
    static func firstImageDescriptor(_ gif: [UInt8]) -> Int {
        var i = 13 + (gif[10] & 0x80 != 0 ? 3 << (Int(gif[10] & 7) + 1) : 0)
        while gif[i] == 0x21 {  // extension: label, then sub-blocks up to an empty one
            i += 2
            while gif[i] != 0 { i += Int(gif[i]) + 1 }
            i += 1
        }
        return i
    }

    /// A first frame reaching past the logical screen enlarges the canvas, as Pillow's does; so the size
    /// checked against the limits (and budgeted by the decode gate) is the one allocated. A 30-byte GIF
    /// whose frame claims 65,416 × 65,189 pixels took 4 GB before this.
    @Test func aGIFFrameLargerThanItsScreenEnlargesTheCanvasWithinTheLimits() throws {
        let original = try Self.bytes("frame_gif_120x90.gif")
        let descriptor = Self.firstImageDescriptor(original)
        #expect(original[descriptor] == 0x2C)
        var smallScreen = original
        smallScreen.replaceSubrange(6..<10, with: [60, 0, 45, 0])
        #expect(try ImageDecoder().dimensions(of: smallScreen) == (120, 90))
        #expect(try ImageDecoder().decode(smallScreen) == ImageDecoder().decode(original))

        var bomb = original
        bomb.replaceSubrange((descriptor + 5)..<(descriptor + 9), with: [0x88, 0xFF, 0xA5, 0xFE])
        #expect(Self.error { try ImageDecoder().decode(bomb) }?.code == "InvalidImageDimension")
        #expect(throws: ImageError.self) { try ImageDecoder().dimensions(of: bomb) }
    }

    @Test func tooSmallAndTooLargeSidesAreRefusedFromTheHeader() throws {
        let small = PNGWriter.rgb16(width: 9, height: 30) { _, _ in 0 }
        #expect(Self.error { try ImageDecoder().decode(small) }?.code == "InvalidImageDimension")
        // A header claiming 20,000 × 20 pixels, with no pixel data: refused before any decoding.
        var huge = PNGWriter.rgb16(width: 20, height: 20) { _, _ in 0 }
        huge.replaceSubrange(16..<20, with: [0, 0, 0x4E, 0x20])
        #expect(Self.error { try ImageDecoder().decode(huge) }?.code == "InvalidImageDimension")
    }

    @Test func tooManyBytesAreRefusedBeforeReading() throws {
        let decoder = ImageDecoder(limits: ImageLimits(maximumBytes: 1000))
        let bytes = try Self.bytes("photo_progressive_800x600.jpg")
        #expect(Self.error { try decoder.decode(bytes) } == .tooLarge(bytes: bytes.count, limit: 1000))
        #expect(Self.error { try decoder.decode(fileAt: Self.images.appendingPathComponent("photo_progressive_800x600.jpg").path) }
            == .tooLarge(bytes: bytes.count, limit: 1000))
    }

    @Test func exifOrientationTurnsPixels() {
        let image = RasterImage(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        // 1 2 3      rotate 90° clockwise (6):  4 1
        // 4 5 6                                 5 2
        //                                       6 3
        #expect(Orientation.apply(6, to: image).pixels == [4, 1, 5, 2, 6, 3])
        #expect(Orientation.apply(8, to: image).pixels == [3, 6, 2, 5, 1, 4])
        #expect(Orientation.apply(3, to: image).pixels == [6, 5, 4, 3, 2, 1])
        #expect(Orientation.apply(2, to: image).pixels == [3, 2, 1, 6, 5, 4])
    }

    @Test func thumbnailsFitTheirBoxAsJPEG() throws {
        let photo = try ImageDecoder().decode(Self.bytes("photo_progressive_800x600.jpg")).rgb()
        let thumbnail = try ImageDecoder().decode(Thumbnail.jpeg(from: photo, maximumSide: 320))
        #expect(thumbnail.width == 320 && thumbnail.height == 240)
        let tiny = try ImageDecoder().decode(Self.bytes("tiny_rgb_50x40.png")).rgb()
        let kept = try ImageDecoder().decode(Thumbnail.jpeg(from: tiny))
        #expect(kept.width == 50 && kept.height == 40)
        // Area averaging: a flat colour stays that colour (within JPEG's rounding).
        let flat = RGBImage(width: 90, height: 30, pixels: [UInt8](repeating: 200, count: 90 * 30 * 3))
        let averaged = Thumbnail.areaAverage(flat, width: 30, height: 10)
        #expect(averaged.pixels.allSatisfy { $0 == 200 })
    }

    @Test func transparentPixelsBecomeWhite() {
        let image = RasterImage(width: 1, height: 3, channels: 4, pixels: [10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 128])
        #expect(image.rgb().pixels == [255, 255, 255, 10, 20, 30, 127, 127, 127])
    }
}

/// Writes minimal 16-bit RGB PNGs (stored, uncompressed deflate blocks), which Pillow cannot make.
enum PNGWriter {
    static func rgb16(width: Int, height: Int, sample: (Int, Int) -> UInt16) -> [UInt8] {
        var raw = [UInt8]()
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width {
                let value = sample(x, y)
                for _ in 0..<3 { raw += [UInt8(value >> 8), UInt8(value & 0xFF)] }
            }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let count = min(65535, raw.count - offset)
            let last: UInt8 = offset + count == raw.count ? 1 : 0
            zlib += [last, UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            zlib += raw[offset..<(offset + count)]
            offset += count
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        zlib += bigEndian(b << 16 | a)
        let header = bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [16, 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlib) + chunk("IEND", [])
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) } }

    private static func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + body
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in typed {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return bigEndian(UInt32(body.count)) + typed + bigEndian(~crc)
    }
}
