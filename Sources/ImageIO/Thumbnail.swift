import CImageCodecs
import Foundation

/// Small JPEG previews for display: any decodable image becomes one a browser can show.
public enum Thumbnail {
    public static let defaultMaximumSide = 320

    /// Scales `image` to fit `maximumSide` (area averaging; never enlarges) and encodes it as JPEG.
    public static func jpeg(from image: RGBImage, maximumSide: Int = defaultMaximumSide, quality: Int = 85) throws -> Data {
        let scale = min(1, Double(maximumSide) / Double(max(image.width, image.height)))
        let width = max(1, Int((Double(image.width) * scale).rounded()))
        let height = max(1, Int((Double(image.height) * scale).rounded()))
        let small = scale < 1 ? areaAverage(image, width: width, height: height) : image
        guard let handle = tjInitCompress() else { throw ImageError.unsupported(format: .jpeg, reason: "no JPEG encoder") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = small.pixels.withUnsafeBufferPointer { pixels in
            tjCompress2(handle, pixels.baseAddress, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &output, &size,
                        Int32(TJSAMP_420.rawValue), Int32(quality), 0)
        }
        defer { tjFree(output) }
        guard status == 0, let output else {
            throw ImageError.unsupported(format: .jpeg, reason: String(cString: tjGetErrorStr2(handle)))
        }
        return Data(bytes: output, count: Int(size))
    }

    /// Each output pixel is the mean of the source pixels it covers.
    static func areaAverage(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let y0 = y * image.height / height, y1 = max(y0 + 1, (y + 1) * image.height / height)
            for x in 0..<width {
                let x0 = x * image.width / width, x1 = max(x0 + 1, (x + 1) * image.width / width)
                var sums = (0, 0, 0)
                for sy in y0..<y1 {
                    for sx in x0..<x1 {
                        let i = (sy * image.width + sx) * 3
                        sums.0 += Int(image.pixels[i])
                        sums.1 += Int(image.pixels[i + 1])
                        sums.2 += Int(image.pixels[i + 2])
                    }
                }
                let count = (y1 - y0) * (x1 - x0)
                let o = (y * width + x) * 3
                out[o] = UInt8((sums.0 + count / 2) / count)
                out[o + 1] = UInt8((sums.1 + count / 2) / count)
                out[o + 2] = UInt8((sums.2 + count / 2) / count)
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
