/// Uncompressed Windows bitmaps: 1/4/8-bit palette, 24-bit, and 16/32-bit with or without bit fields,
/// bottom-up or top-down. RLE-compressed bitmaps are refused.
struct BMPDecoder {
    let bytes: [UInt8]
    let check: (Int, Int) throws -> Void

    init(bytes: [UInt8], check: @escaping (_ width: Int, _ height: Int) throws -> Void) {
        self.bytes = bytes
        self.check = check
    }

    private func u16(_ at: Int) -> Int { bytes.littleEndian16(at: at) }
    private func u32(_ at: Int) -> Int { bytes.littleEndian32(at: at) }
    private func corrupt(_ reason: String) -> ImageError { .corrupt(format: .bmp, reason: reason) }

    func decode() throws -> RasterImage {
        guard bytes.count >= 26 else { throw corrupt("file ends inside the header") }
        let dataOffset = u32(10)
        let headerSize = u32(14)
        let width: Int, rawHeight: Int, bitCount: Int, compression: Int
        if headerSize == 12 {
            (width, rawHeight, bitCount, compression) = (u16(18), Int(Int16(truncatingIfNeeded: u16(20))), u16(24), 0)
        } else {
            guard headerSize >= 40, bytes.count >= 14 + 40 else { throw corrupt("unknown header size \(headerSize)") }
            width = Int(Int32(truncatingIfNeeded: u32(18)))
            rawHeight = Int(Int32(truncatingIfNeeded: u32(22)))
            bitCount = u16(28)
            compression = u32(30)
        }
        let topDown = rawHeight < 0
        let height = abs(rawHeight)
        try check(width, height)
        guard compression == 0 || compression == 3 else {
            throw ImageError.unsupported(format: .bmp, reason: "compression \(compression) (only uncompressed bitmaps)")
        }
        guard [1, 4, 8, 16, 24, 32].contains(bitCount) else { throw corrupt("\(bitCount) bits per pixel") }

        let rowBytes = (width * bitCount + 31) / 32 * 4
        guard dataOffset >= 14, dataOffset + rowBytes * height <= bytes.count else { throw corrupt("pixel data is truncated") }

        // Palette entries follow the header: 4 bytes (BGRx) each, 3 in the old 12-byte header.
        var palette = [(UInt8, UInt8, UInt8)]()
        if bitCount <= 8 {
            let entrySize = headerSize == 12 ? 3 : 4
            let start = 14 + headerSize
            let count = min((dataOffset - start) / entrySize, 1 << bitCount)
            guard count > 0 else { throw corrupt("palette missing") }
            palette = (0..<count).map { i in
                let p = start + i * entrySize
                return (bytes[p + 2], bytes[p + 1], bytes[p])
            }
        }
        let masks = bitMasks(bitCount: bitCount, compression: compression, headerSize: headerSize)
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for y in 0..<height {
            let row = dataOffset + (topDown ? y : height - 1 - y) * rowBytes
            for x in 0..<width {
                let target = (y * width + x) * 4
                var rgba: (UInt8, UInt8, UInt8, UInt8)
                switch bitCount {
                case 1, 4, 8:
                    let bit = x * bitCount
                    let index = Int(bytes[row + bit / 8] >> UInt8(8 - bitCount - bit % 8)) & ((1 << bitCount) - 1)
                    guard index < palette.count else { throw corrupt("palette index \(index) out of range") }
                    let c = palette[index]
                    rgba = (c.0, c.1, c.2, 255)
                case 24:
                    let p = row + x * 3
                    rgba = (bytes[p + 2], bytes[p + 1], bytes[p], 255)
                default:
                    let value = bitCount == 16 ? u16(row + x * 2) : u32(row + x * 4)
                    rgba = (masks[0].extract(value), masks[1].extract(value), masks[2].extract(value),
                            masks[3].mask == 0 ? 255 : masks[3].extract(value))
                }
                pixels[target] = rgba.0
                pixels[target + 1] = rgba.1
                pixels[target + 2] = rgba.2
                pixels[target + 3] = rgba.3
            }
        }
        return RasterImage(width: width, height: height, channels: 4, pixels: pixels)
    }

    struct BitMask {
        let mask: Int
        func extract(_ value: Int) -> UInt8 {
            guard mask != 0 else { return 0 }
            let shift = mask.trailingZeroBitCount
            let maximum = mask >> shift
            return UInt8(((value & mask) >> shift) * 255 / maximum)
        }
    }

    private func bitMasks(bitCount: Int, compression: Int, headerSize: Int) -> [BitMask] {
        if compression == 3, bytes.count >= 14 + 40 + 12 {
            let alpha = headerSize >= 56 && bytes.count >= 14 + 56 ? u32(14 + 52) : 0
            return [u32(54), u32(58), u32(62), alpha].map(BitMask.init)
        }
        // Defaults: 5-5-5 for 16-bit, 8-8-8 (alpha ignored, as BI_RGB says) for 32-bit.
        return bitCount == 16
            ? [0x7C00, 0x03E0, 0x001F, 0].map(BitMask.init)
            : [0xFF0000, 0x00FF00, 0x0000FF, 0].map(BitMask.init)
    }
}

extension [UInt8] {
    /// The unsigned little-endian numbers that Windows formats (BMP, ICO) store; the caller checks the range.
    func littleEndian16(at offset: Int) -> Int { Int(self[offset]) | Int(self[offset + 1]) << 8 }
    func littleEndian32(at offset: Int) -> Int { littleEndian16(at: offset) | littleEndian16(at: offset + 2) << 16 }
}
