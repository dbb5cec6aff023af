import Foundation

/// Windows icons: the entry Pillow opens (the largest, and of equal sizes the lowest colour depth, the
/// first in the file), either a PNG or a bitmap whose transparency comes from its AND mask (or, at 32
/// bits, its fourth byte), as Pillow's `IcoImagePlugin` reads them.
struct ICODecoder {
    let bytes: [UInt8]
    let decoder: ImageDecoder

    private struct Entry {
        let width: Int, height: Int, bitCount: Int, colorDepth: Int, size: Int, offset: Int
    }

    private func u16(_ at: Int) -> Int { bytes.littleEndian16(at: at) }
    private func u32(_ at: Int) -> Int { bytes.littleEndian32(at: at) }
    private func corrupt(_ reason: String) -> ImageError { .corrupt(format: .ico, reason: reason) }

    func decode() throws -> RasterImage {
        guard bytes.count >= 6 else { throw corrupt("file ends inside the header") }
        let count = u16(4)
        guard count > 0 else { throw corrupt("no icons in the file") }
        guard bytes.count >= 6 + 16 * count else { throw corrupt("file ends inside the icon directory") }
        let entries = (0..<count).map { i -> Entry in
            let at = 6 + 16 * i
            let colors = Int(bytes[at + 2]), bitCount = u16(at + 6)
            // Pillow's colour depth: the bit count, else ⌈log2 of the palette size⌉ (computed as it does), else 256.
            let paletteBits = colors != 0 ? Int((log(Double(colors)) / log(2.0)).rounded(.up)) : 0
            let depth = bitCount != 0 ? bitCount : paletteBits != 0 ? paletteBits : 256
            return Entry(width: bytes[at] == 0 ? 256 : Int(bytes[at]), height: bytes[at + 1] == 0 ? 256 : Int(bytes[at + 1]),
                         bitCount: bitCount, colorDepth: depth, size: u32(at + 8), offset: u32(at + 12))
        }
        // Pillow sorts by depth, then (stably) by area, largest first, and opens the first entry: the
        // largest area, then the lowest depth, then the earliest in the file.
        func key(_ entry: Entry) -> (Int, Int) { (-entry.width * entry.height, entry.colorDepth) }
        let chosen = entries.dropFirst().reduce(entries[0]) { best, entry in key(entry) < key(best) ? entry : best }
        guard chosen.offset >= 6 + 16 * count, chosen.offset < bytes.count, chosen.size > 0, chosen.size <= bytes.count - chosen.offset else {
            throw corrupt("the icon's data lies outside the file")
        }
        let data = Array(bytes[chosen.offset..<(chosen.offset + chosen.size)])
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try decoder.decodePNG(data) }
        return try bitmap(data, bitCount: chosen.bitCount)
    }

    /// A bitmap entry: a BMP info header whose height counts the colour rows and the mask rows.
    private func bitmap(_ dib: [UInt8], bitCount entryBitCount: Int) throws -> RasterImage {
        guard dib.count >= 40 else { throw corrupt("bitmap ends inside its header") }
        let headerSize = dib.littleEndian32(at: 0), compression = dib.littleEndian32(at: 16), colorsUsed = dib.littleEndian32(at: 32)
        let width = Int(Int32(truncatingIfNeeded: dib.littleEndian32(at: 4))), doubledHeight = Int(Int32(truncatingIfNeeded: dib.littleEndian32(at: 8)))
        let bitCount = dib.littleEndian16(at: 14)
        guard headerSize >= 40, headerSize <= dib.count, doubledHeight > 0 else { throw corrupt("unreadable bitmap header") }
        let height = doubledHeight / 2
        try decoder.checkDimensions(width: width, height: height)
        // The colour rows as a BMP file: a file header pointing past the palette (and bit masks), and
        // the info header's height halved.
        let paletteEntries = bitCount <= 8 ? (colorsUsed > 0 ? min(colorsUsed, 1 << bitCount) : 1 << bitCount) : 0
        let masksBytes = compression == 3 && headerSize == 40 ? 12 : 0
        let dataOffset = 14 + headerSize + masksBytes + 4 * paletteEntries
        var file = Array("BM".utf8) + le32(14 + dib.count) + [0, 0, 0, 0] + le32(dataOffset) + dib
        file.replaceSubrange((14 + 8)..<(14 + 12), with: le32(height))
        let colour = try BMPDecoder(bytes: file, check: { _, _ in }).decode()
        let rowBytes = (width * bitCount + 31) / 32 * 4
        var pixels = colour.pixels
        if entryBitCount == 32 {
            // The directory says 32 bits: the fourth byte of each pixel is its alpha (bottom-up rows).
            guard bitCount == 32 else { throw corrupt("the directory says 32 bits, the bitmap \(bitCount)") }
            for y in 0..<height {
                let row = dataOffset - 14 + (height - 1 - y) * rowBytes
                for x in 0..<width { pixels[(y * width + x) * 4 + 3] = dib[row + 4 * x + 3] }
            }
        } else {
            // The AND mask ends the entry: 1 bit a pixel, rows padded to 32 bits, bottom-up; 1 is transparent.
            let maskRowBytes = (width + 31) / 32 * 4
            let maskStart = dib.count - maskRowBytes * height
            guard maskStart >= 0 else { throw corrupt("the transparency mask is truncated") }
            for y in 0..<height {
                let row = maskStart + (height - 1 - y) * maskRowBytes
                for x in 0..<width where dib[row + x / 8] & (0x80 >> UInt8(x % 8)) != 0 { pixels[(y * width + x) * 4 + 3] = 0 }
            }
        }
        return RasterImage(width: width, height: height, channels: 4, pixels: pixels)
    }

    private func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}
