import Foundation
import ImageIO

/// Pillow's `Image.resize` for 8-bit images with the BICUBIC or BILINEAR filter, reproduced to the last
/// bit: a separable convolution with the filter widened by the scale factor when shrinking (antialias),
/// coefficients normalised and then fixed to 22 fractional bits, horizontal pass first, each pass
/// rounded and clamped to 8 bits.
enum Resampler {
    private static let precisionBits = 32 - 8 - 2

    /// Pillow's filters by their `resample` numbers in image-processor settings.
    enum Filter: Int, Sendable {
        case bilinear = 2
        case bicubic = 3

        var support: Double { self == .bilinear ? 1 : 2 }

        func weight(_ x: Double) -> Double {
            let x = abs(x)
            switch self {
            case .bilinear:
                return x < 1 ? 1 - x : 0
            case .bicubic:
                let a = -0.5
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            }
        }
    }

    /// For each output sample: the first input index and the fixed-point weights that follow it.
    struct Coefficients {
        let kernelSize: Int
        let starts: [Int]
        let counts: [Int]
        let weights: [Int32]  // [output, kernelSize]
    }

    static func coefficients(inputSize: Int, outputSize: Int, filter: Filter) -> Coefficients {
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let kernelSize = Int(support.rounded(.up)) * 2 + 1
        var starts = [Int](repeating: 0, count: outputSize)
        var counts = [Int](repeating: 0, count: outputSize)
        var weights = [Int32](repeating: 0, count: outputSize * kernelSize)
        var kernel = [Double](repeating: 0, count: kernelSize)
        for out in 0..<outputSize {
            let center = (Double(out) + 0.5) * scale
            let inverseScale = 1 / filterScale
            // Pillow truncates `center ± support + 0.5` toward zero.
            let first = max(Int(center - support + 0.5), 0)
            let last = min(Int(center + support + 0.5), inputSize)
            let count = last - first
            var total = 0.0
            for i in 0..<count {
                let w = filter.weight((Double(i + first) - center + 0.5) * inverseScale)
                kernel[i] = w
                total += w
            }
            for i in 0..<count {
                let w = total != 0 ? kernel[i] / total : kernel[i]
                let fixed = w * Double(1 << precisionBits)
                weights[out * kernelSize + i] = Int32(w < 0 ? (fixed - 0.5) : (fixed + 0.5))
            }
            starts[out] = first
            counts[out] = count
        }
        return Coefficients(kernelSize: kernelSize, starts: starts, counts: counts, weights: weights)
    }

    @inline(__always)
    private static func clamp8(_ sum: Int32) -> UInt8 {
        let shifted = sum >> Int32(precisionBits)
        return shifted < 0 ? 0 : shifted > 255 ? 255 : UInt8(shifted)
    }

    static func resize(_ image: RGBImage, width: Int, height: Int, filter: Filter) -> RGBImage {
        var result = image
        if width != image.width { result = horizontal(result, width: width, filter: filter) }
        if height != image.height { result = vertical(result, height: height, filter: filter) }
        return result
    }

    private static func horizontal(_ image: RGBImage, width: Int, filter: Filter) -> RGBImage {
        let c = coefficients(inputSize: image.width, outputSize: width, filter: filter)
        var out = [UInt8](repeating: 0, count: width * image.height * 3)
        let rounding = Int32(1) << Int32(precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { source in
            for y in 0..<image.height {
                let row = y * image.width * 3
                for x in 0..<width {
                    var sums = (rounding, rounding, rounding)
                    let start = c.starts[x]
                    for k in 0..<c.counts[x] {
                        let w = c.weights[x * c.kernelSize + k]
                        let p = row + (start + k) * 3
                        sums.0 &+= Int32(source[p]) &* w
                        sums.1 &+= Int32(source[p + 1]) &* w
                        sums.2 &+= Int32(source[p + 2]) &* w
                    }
                    let o = (y * width + x) * 3
                    out[o] = clamp8(sums.0)
                    out[o + 1] = clamp8(sums.1)
                    out[o + 2] = clamp8(sums.2)
                }
            }
        }
        return RGBImage(width: width, height: image.height, pixels: out)
    }

    private static func vertical(_ image: RGBImage, height: Int, filter: Filter) -> RGBImage {
        let c = coefficients(inputSize: image.height, outputSize: height, filter: filter)
        let rowLength = image.width * 3
        var out = [UInt8](repeating: 0, count: rowLength * height)
        let rounding = Int32(1) << Int32(precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { source in
            for y in 0..<height {
                let start = c.starts[y]
                for i in 0..<rowLength {
                    var sum = rounding
                    for k in 0..<c.counts[y] {
                        sum &+= Int32(source[(start + k) * rowLength + i]) &* c.weights[y * c.kernelSize + k]
                    }
                    out[y * rowLength + i] = clamp8(sum)
                }
            }
        }
        return RGBImage(width: image.width, height: height, pixels: out)
    }
}
