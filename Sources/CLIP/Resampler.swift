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

    // Both passes read through unsafe pointers (the indices are the coefficients' own, in range by
    // construction) and sum in Int32 as Pillow does, so any order of the sums gives its bits.
    private static func horizontal(_ image: RGBImage, width: Int, filter: Filter) -> RGBImage {
        let c = coefficients(inputSize: image.width, outputSize: width, filter: filter)
        var out = [UInt8](repeating: 0, count: width * image.height * 3)
        let rounding = Int32(1) << Int32(precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { source in
            c.weights.withUnsafeBufferPointer { weights in
                out.withUnsafeMutableBufferPointer { target in
                    let source = source.baseAddress!, weights = weights.baseAddress!, target = target.baseAddress!
                    for y in 0..<image.height {
                        let row = source + y * image.width * 3
                        let outRow = target + y * width * 3
                        // A pixel is read as four bytes (its RGB and the next byte, weighted but
                        // unused), which the last row's last pixel does not have.
                        let wide = y < image.height - 1
                        for x in 0..<width {
                            let pixel = row + c.starts[x] * 3, w = weights + x * c.kernelSize
                            var sums = SIMD4<Int32>(repeating: rounding)
                            if wide {
                                for k in 0..<c.counts[x] {
                                    let bytes = UnsafeRawPointer(pixel + 3 * k).loadUnaligned(as: SIMD4<UInt8>.self)
                                    sums &+= SIMD4<Int32>(truncatingIfNeeded: bytes) &* SIMD4(repeating: w[k])
                                }
                            } else {
                                for k in 0..<c.counts[x] {
                                    sums &+= SIMD4(Int32(pixel[3 * k]), Int32(pixel[3 * k + 1]), Int32(pixel[3 * k + 2]), 0) &* SIMD4(repeating: w[k])
                                }
                            }
                            outRow[3 * x] = clamp8(sums[0])
                            outRow[3 * x + 1] = clamp8(sums[1])
                            outRow[3 * x + 2] = clamp8(sums[2])
                        }
                    }
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
        // One output row at a time: each input row it needs is added whole, weighted, to a row of sums
        // (a loop the compiler vectorises), then the sums are rounded to bytes.
        var sums = [Int32](repeating: 0, count: rowLength)
        image.pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                sums.withUnsafeMutableBufferPointer { sums in
                    let source = source.baseAddress!, target = target.baseAddress!, sums = sums.baseAddress!
                    for y in 0..<height {
                        sums.update(repeating: rounding, count: rowLength)
                        for k in 0..<c.counts[y] {
                            let row = source + (c.starts[y] + k) * rowLength, w = c.weights[y * c.kernelSize + k]
                            for i in 0..<rowLength { sums[i] &+= Int32(row[i]) &* w }
                        }
                        let outRow = target + y * rowLength
                        for i in 0..<rowLength { outRow[i] = clamp8(sums[i]) }
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: height, pixels: out)
    }
}
