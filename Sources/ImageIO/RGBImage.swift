/// Decoded 8-bit pixels, row-major and interleaved: `channels` samples per pixel
/// (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA).
public struct RasterImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel count does not match the image size")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Three-channel RGB as the reference preprocessing makes it: gray is repeated and transparent
    /// pixels are composited onto white with Pillow's `alpha_composite` integer arithmetic.
    public func rgb() -> RGBImage {
        if channels == 3 { return RGBImage(width: width, height: height, pixels: pixels) }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let hasAlpha = channels == 2 || channels == 4
        for i in 0..<(width * height) {
            let source = i * channels
            let color = channels <= 2
                ? (pixels[source], pixels[source], pixels[source])
                : (pixels[source], pixels[source + 1], pixels[source + 2])
            let alpha = hasAlpha ? pixels[source + channels - 1] : 255
            out[3 * i] = Self.overWhite(color.0, alpha: alpha)
            out[3 * i + 1] = Self.overWhite(color.1, alpha: alpha)
            out[3 * i + 2] = Self.overWhite(color.2, alpha: alpha)
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Pillow's `ImagingAlphaComposite` of one channel over an opaque white background
    /// (7 fractional bits, divisions by 255 done with shifts).
    static func overWhite(_ value: UInt8, alpha: UInt8) -> UInt8 {
        if alpha == 255 { return value }
        if alpha == 0 { return 255 }
        let a = UInt32(alpha)
        let outAlpha255 = a * 255 + 255 * (255 - a)
        let sourceWeight = a * 255 * 255 * 128 / outAlpha255
        let backgroundWeight = 255 * 128 - sourceWeight
        let sum = UInt32(value) * sourceWeight + 255 * backgroundWeight + (0x80 << 7)
        return UInt8((((sum >> 8) + sum) >> 8) >> 7)
    }
}

/// An 8-bit RGB image, row-major, interleaved: what CLIP preprocessing takes.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "pixel count does not match the image size")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
