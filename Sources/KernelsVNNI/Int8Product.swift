// 8-bit products with AVX-512 VNNI, built with `-target-cpu cascadelake` (the first CPU with VNNI) and
// the Builtin module: `vpdpbusd` multiplies four unsigned bytes by four signed bytes and adds the sum to
// a 32-bit lane, 64 products per instruction against 16 for a float32 FMA. Swift has no name for that
// instruction, so it is reached as the LLVM intrinsic behind it.
#if arch(x86_64)
import Builtin

typealias Bytes4 = SIMD16<Int32>  // sixteen lanes of four packed bytes
/// Two vectors of 16 output features by ten rows, as in the float32 kernel.
typealias Accumulators = InlineArray<20, SIMD16<Int32>>
let tileRows = 10

@inline(__always)
func addDotProducts(_ sum: SIMD16<Int32>, unsigned a: Bytes4, signed b: Bytes4) -> SIMD16<Int32> {
    unsafeBitCast(
        Builtin.int_x86_avx512_vpdpbusd_512(sum._storage._value, a._storage._value, b._storage._value),
        to: SIMD16<Int32>.self)
}

@inline(__always)
func floats(_ value: SIMD16<Int32>) -> SIMD16<Float> {
    unsafeBitCast(Builtin.sitofp_Vec16xInt32_Vec16xFPIEEE32(value._storage._value), to: SIMD16<Float>.self)
}

/// `output = input · weightᵀ (+ bias) (+ output)` with an 8-bit weight (one scale per output feature,
/// symmetric, −127…127) and the input quantised on the fly to 8 bits per row (its own scale and zero
/// point, 0…255). The 32-bit sums are exact; the error is the rounding of each value to 8 bits.
public enum Int8Product {
    public static let panelWidth = 32
    /// Panels per group, as in the float32 kernel: the group's bytes stay in L2 while every tile passes.
    static let panelGroup = 8

    /// Input features are taken four at a time; a weight is padded with zero features to a multiple.
    public static func groups(inFeatures: Int) -> Int { (inFeatures + 3) / 4 }

    public static func packedByteCount(outFeatures: Int, inFeatures: Int) -> Int {
        (outFeatures + panelWidth - 1) / panelWidth * groups(inFeatures: inFeatures) * panelWidth * 4
    }

    /// Quantises `rows` (one per output feature) and packs them: panel by panel of 32 features, group by
    /// group of four inputs, the 32 features' four bytes side by side. Writes each feature's scale and
    /// the sum of its quantised values (which the zero point of the input multiplies).
    public static func pack(
        rows: [UnsafePointer<Float>], inFeatures: Int, into packed: UnsafeMutablePointer<Int8>,
        scales: UnsafeMutablePointer<Float>, columnSums: UnsafeMutablePointer<Float>
    ) {
        let groupCount = groups(inFeatures: inFeatures)
        let panels = (rows.count + panelWidth - 1) / panelWidth
        packed.initialize(repeating: 0, count: panels * groupCount * panelWidth * 4)
        for (feature, row) in rows.enumerated() {
            var largest: Float = 0
            for k in 0..<inFeatures { largest = max(largest, abs(row[k])) }
            let scale = largest > 0 ? largest / 127 : 1
            var sum = 0
            let panel = feature / panelWidth, column = feature % panelWidth
            for k in 0..<inFeatures {
                let q = Int8(clampedToByte((row[k] / scale).rounded(.toNearestOrEven), -127, 127))
                packed[((panel * groupCount + k / 4) * panelWidth + column) * 4 + k % 4] = q
                sum += Int(q)
            }
            scales[feature] = scale
            columnSums[feature] = Float(sum)
        }
        for feature in rows.count..<(panels * panelWidth) {
            scales[feature] = 0
            columnSums[feature] = 0
        }
    }

    /// Computes the output columns of `panels` for all `rows` rows (see `PackedProduct.multiply`).
    public static func multiply(
        _ input: UnsafePointer<Float>, rows: Int, inFeatures: Int,
        packed: UnsafePointer<Int8>, scales: UnsafePointer<Float>, columnSums: UnsafePointer<Float>,
        outFeatures: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool, panels: Range<Int>
    ) {
        let groupCount = groups(inFeatures: inFeatures)
        let tileCount = (rows + tileRows - 1) / tileRows
        // Quantised rows as tiles of [groups, tileRows] four-byte words, and each row's scale and zero point.
        let tiles = UnsafeMutablePointer<UInt32>.allocate(capacity: tileCount * groupCount * tileRows)
        defer { tiles.deallocate() }
        for r in rows..<(tileCount * tileRows) {  // the last tile's rows past the end are zero
            let target = tiles + (r / tileRows) * groupCount * tileRows + r % tileRows
            for g in 0..<groupCount { target[g * tileRows] = 0 }
        }
        var rowScales = [Float](repeating: 0, count: tileCount * tileRows)
        var zeroPoints = [Float](repeating: 0, count: tileCount * tileRows)
        var bytes = [UInt8](repeating: 0, count: groupCount * 4)
        for r in 0..<rows {
            let (scale, zero) = quantize(input + r * inFeatures, count: inFeatures, into: &bytes)
            rowScales[r] = scale
            zeroPoints[r] = zero
            let target = tiles + (r / tileRows) * groupCount * tileRows + r % tileRows
            bytes.withUnsafeBytes { raw in
                for g in 0..<groupCount { target[g * tileRows] = raw.loadUnaligned(fromByteOffset: 4 * g, as: UInt32.self) }
            }
        }
        let panelBytes = groupCount * panelWidth * 4
        // A single tile (a short text) reads each weight once from memory: asked for ahead, as in the
        // float32 kernel.
        let streaming = tileCount == 1
        var groupStart = panels.lowerBound
        while groupStart < panels.upperBound {
            let group = groupStart..<min(groupStart + panelGroup, panels.upperBound)
            for t in 0..<tileCount {
                for panel in group {
                    var sums = Accumulators(repeating: SIMD16<Int32>())
                    let input = tiles + t * groupCount * tileRows
                    let weights = UnsafeRawPointer(packed + panel * panelBytes)
                    let height = min(tileRows, rows - t * tileRows)
                    // Only the rows there are, each height a constant in its own copy of the loop (so
                    // the accumulators stay in registers): a short text's five rows are half a tile.
                    switch height {
                    case 1: tile(input, weights: weights, groups: groupCount, rows: 1, streaming: streaming, into: &sums)
                    case 2: tile(input, weights: weights, groups: groupCount, rows: 2, streaming: streaming, into: &sums)
                    case 3: tile(input, weights: weights, groups: groupCount, rows: 3, streaming: streaming, into: &sums)
                    case 4: tile(input, weights: weights, groups: groupCount, rows: 4, streaming: streaming, into: &sums)
                    case 5: tile(input, weights: weights, groups: groupCount, rows: 5, streaming: streaming, into: &sums)
                    case 6: tile(input, weights: weights, groups: groupCount, rows: 6, streaming: streaming, into: &sums)
                    case 7: tile(input, weights: weights, groups: groupCount, rows: 7, streaming: streaming, into: &sums)
                    case 8: tile(input, weights: weights, groups: groupCount, rows: 8, streaming: streaming, into: &sums)
                    case 9: tile(input, weights: weights, groups: groupCount, rows: 9, streaming: streaming, into: &sums)
                    default: tile(input, weights: weights, groups: groupCount, rows: tileRows, streaming: streaming, into: &sums)
                    }
                    let first = panel * panelWidth
                    for r in 0..<height {
                        let row = t * tileRows + r
                        for v in 0..<2 {
                            let column = first + 16 * v
                            let count = min(16, outFeatures - column)
                            guard count > 0 else { continue }
                            let weightScales = UnsafeRawPointer(scales + column).loadUnaligned(as: SIMD16<Float>.self)
                            let sumsOfWeights = UnsafeRawPointer(columnSums + column).loadUnaligned(as: SIMD16<Float>.self)
                            var value = (floats(sums[2 * r + v]) - zeroPoints[row] * sumsOfWeights) * (rowScales[row] * weightScales)
                            let target = output + row * outFeatures + column
                            if count == 16 {
                                if let bias { value += UnsafeRawPointer(bias + column).loadUnaligned(as: SIMD16<Float>.self) }
                                if accumulate { value += UnsafeRawPointer(target).loadUnaligned(as: SIMD16<Float>.self) }
                                UnsafeMutableRawPointer(target).storeBytes(of: value, as: SIMD16<Float>.self)
                            } else {
                                for i in 0..<count {
                                    target[i] = value[i] + (bias?[column + i] ?? 0) + (accumulate ? target[i] : 0)
                                }
                            }
                        }
                    }
                }
            }
            groupStart = group.upperBound
        }
    }

    /// How far ahead a streaming tile asks for its weights (measured for the float32 kernel, whose
    /// loop also takes 128 bytes of weights per step).
    static let streamDistance = 6 << 10

    /// The first `rows` rows of a tile times one panel; called with constant `rows` only.
    @inline(__always)
    static func tile(
        _ input: UnsafePointer<UInt32>, weights: UnsafeRawPointer, groups: Int, rows: Int, streaming: Bool,
        into sums: inout Accumulators
    ) {
        for g in 0..<groups {
            if streaming {
                prefetchToL2(weights + g * 128 + streamDistance)
                prefetchToL2(weights + g * 128 + streamDistance + 64)
            }
            let low = weights.loadUnaligned(fromByteOffset: g * 128, as: Bytes4.self)
            let high = weights.loadUnaligned(fromByteOffset: g * 128 + 64, as: Bytes4.self)
            let a = input + g * tileRows
            for r in 0..<rows {
                let broadcast = Bytes4(repeating: Int32(bitPattern: a[r]))
                sums[2 * r] = addDotProducts(sums[2 * r], unsigned: broadcast, signed: low)
                sums[2 * r + 1] = addDotProducts(sums[2 * r + 1], unsigned: broadcast, signed: high)
            }
        }
    }

    /// `prefetcht1` through the LLVM intrinsic (a prefetch never faults, so past the end is harmless).
    @inline(__always)
    static func prefetchToL2(_ address: UnsafeRawPointer) {
        Builtin.int_prefetch_RawPointer(address._rawValue, Int32(0)._value, Int32(2)._value, Int32(1)._value)
    }

    /// One row to bytes: `q = round(x / scale) + zero`, clamped to 0…255, with the row's range mapped
    /// onto 0…255 (zero kept exactly representable). Returns the scale and zero point.
    static func quantize(_ row: UnsafePointer<Float>, count: Int, into bytes: inout [UInt8]) -> (Float, Float) {
        let raw = UnsafeRawPointer(row)
        let whole = count / 16 * 16
        var lows = SIMD16<Float>(), highs = SIMD16<Float>()
        for k in stride(from: 0, to: whole, by: 16) {
            let x = raw.loadUnaligned(fromByteOffset: 4 * k, as: SIMD16<Float>.self)
            lows = lows.replacing(with: x, where: x .< lows)
            highs = highs.replacing(with: x, where: x .> highs)
        }
        var low = lows.min(), high = highs.max()
        for k in whole..<count {
            low = min(low, row[k])
            high = max(high, row[k])
        }
        let scale = high > low ? (high - low) / 255 : 1
        let zero = (-low / scale).rounded(.toNearestOrEven)
        let inverse = 1 / scale
        // Adding 1.5 · 2²³ rounds to the nearest integer (ties to even) in the low mantissa bits.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        bytes.withUnsafeMutableBytes { out in
            for k in stride(from: 0, to: whole, by: 16) {
                let x = raw.loadUnaligned(fromByteOffset: 4 * k, as: SIMD16<Float>.self)
                var q = (x * inverse + zero + magic) - magic
                // (`replacing` inlines to a compare and a blend; the generic `clamped` does not inline.)
                q = q.replacing(with: 0, where: q .< 0).replacing(with: 255, where: q .> 255)
                let integers = unsafeBitCast(Builtin.fptosi_Vec16xFPIEEE32_Vec16xInt32(q._storage._value), to: SIMD16<Int32>.self)
                out.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: integers), toByteOffset: k, as: SIMD16<UInt8>.self)
            }
        }
        for k in whole..<count {
            bytes[k] = UInt8(clampedToByte((row[k] * inverse + zero).rounded(.toNearestOrEven), 0, 255))
        }
        return (scale, zero)
    }

    /// `value` limited to `low…high`, with NaN (from a NaN or infinite weight or input) as `low`: a
    /// damaged checkpoint gives damaged vectors, as in float32, not a crash in the conversion.
    @inline(__always)
    static func clampedToByte(_ value: Float, _ low: Float, _ high: Float) -> Float {
        value >= low ? (value <= high ? value : high) : low
    }
}

#endif
