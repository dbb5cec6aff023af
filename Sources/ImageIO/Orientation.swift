/// EXIF orientation (tag 0x0112): how the stored pixels must be turned to display upright.
enum Orientation {
    /// Reads the orientation from a TIFF-structured EXIF block (after the "Exif\0\0" prefix); 1 if absent.
    static func fromEXIF(_ exif: ArraySlice<UInt8>) -> Int {
        let b = Array(exif)
        guard b.count >= 8 else { return 1 }
        let little: Bool
        switch (b[0], b[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return 1
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= b.count else { return nil }
            return little ? Int(b[at]) | Int(b[at + 1]) << 8 : Int(b[at]) << 8 | Int(b[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let high = u16(little ? at + 2 : at), let low = u16(little ? at : at + 2) else { return nil }
            return high << 16 | low
        }
        guard let ifd = u32(4), let entries = u16(ifd) else { return 1 }
        for index in 0..<min(entries, 1000) {
            let entry = ifd + 2 + index * 12
            guard let tag = u16(entry) else { return 1 }
            if tag == 0x0112, let type = u16(entry + 2), type == 3, let value = u16(entry + 8), (1...8).contains(value) {
                return value
            }
        }
        return 1
    }

    /// Finds the EXIF block in a JPEG (APP1 "Exif\0\0"), scanning markers up to the image data.
    static func fromJPEG(_ data: [UInt8]) -> Int {
        var i = 2
        while i + 4 <= data.count, data[i] == 0xFF {
            let marker = data[i + 1]
            if marker == 0xDA || marker == 0xD9 { break }  // start of scan, end of image
            let length = Int(data[i + 2]) << 8 | Int(data[i + 3])
            guard length >= 2, i + 2 + length <= data.count else { break }
            let body = (i + 4)..<(i + 2 + length)
            if marker == 0xE1, body.count > 6, Array(data[body.lowerBound..<(body.lowerBound + 6)]) == Array("Exif\0\0".utf8) {
                return fromEXIF(data[(body.lowerBound + 6)..<body.upperBound])
            }
            i += 2 + length
        }
        return 1
    }

    /// PNG keeps EXIF in an `eXIf` chunk.
    static func fromPNG(_ data: [UInt8]) -> Int {
        var i = 8
        while i + 12 <= data.count {
            let length = Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3])
            let type = String(decoding: data[(i + 4)..<(i + 8)], as: UTF8.self)
            guard length >= 0, i + 12 + length <= data.count else { break }
            if type == "eXIf" { return fromEXIF(data[(i + 8)..<(i + 8 + length)]) }
            if type == "IDAT" || type == "IEND" { break }
            i += 12 + length
        }
        return 1
    }

    /// WebP keeps EXIF in an `EXIF` RIFF chunk.
    static func fromWebP(_ data: [UInt8]) -> Int {
        var i = 12
        while i + 8 <= data.count {
            let length = Int(data[i + 4]) | Int(data[i + 5]) << 8 | Int(data[i + 6]) << 16 | Int(data[i + 7]) << 24
            guard length >= 0, i + 8 + length <= data.count else { break }
            if Array(data[i..<(i + 4)]) == Array("EXIF".utf8) {
                var body = data[(i + 8)..<(i + 8 + length)]
                if body.starts(with: Array("Exif\0\0".utf8)) { body = body.dropFirst(6) }
                return fromEXIF(body)
            }
            i += 8 + length + (length & 1)
        }
        return 1
    }

    /// Turns the image upright, as Pillow's `ImageOps.exif_transpose`.
    static func apply(_ orientation: Int, to image: RasterImage) -> RasterImage {
        guard (2...8).contains(orientation) else { return image }
        let w = image.width
        let h = image.height
        let swaps = orientation >= 5
        let outWidth = swaps ? h : w
        let outHeight = swaps ? w : h
        let c = image.channels
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (w - 1 - x, y)
                case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                case 4: (sx, sy) = (x, h - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, h - 1 - x)
                case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                default: (sx, sy) = (w - 1 - y, x)
                }
                let source = (sy * w + sx) * c
                let target = (y * outWidth + x) * c
                for channel in 0..<c { out[target + channel] = image.pixels[source + channel] }
            }
        }
        return RasterImage(width: outWidth, height: outHeight, channels: c, pixels: out)
    }
}
