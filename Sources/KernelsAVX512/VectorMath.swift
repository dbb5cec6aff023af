// One source, compiled into Tensor (for any processor) and, through symbolic links, into KernelsAVX2
// and KernelsAVX512, where the same generic code becomes AVX2 or AVX-512 instructions.

/// Vector versions of the libm functions the activations and softmax need.
enum VectorMath {
    /// e^x in every lane: range reduction by ln 2 and Cephes' degree-6 polynomial (about 1 ulp of expf).
    @inline(__always)
    static func exp<V: SIMD>(_ input: V) -> V where V.Scalar == Float {
        // `replacing` inlines to a compare and a blend; the generic `pointwiseMin`/`Max` are calls.
        let x = input.replacing(with: 88.3, where: input .> 88.3).replacing(with: -87.3, where: input .< -87.3)
        // Adding 1.5 · 2²³ rounds to the nearest integer and leaves it in the low mantissa bits:
        // plain vector arithmetic, where Swift's generic rounding and conversions are slow.
        let magic = V(repeating: 12_582_912)
        let shifted = x * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let integer = unsafeBitCast(shifted, to: V.MaskStorage.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: V.self)
        return y * scale
    }

    /// `x · sigmoid(1.702 x)` (OpenAI CLIP's activation) in place, `V.scalarCount` lanes at a time.
    @inline(__always)
    static func quickGELU<V: SIMD>(_ values: UnsafeMutablePointer<Float>, count: Int, lanes: V.Type) where V.Scalar == Float {
        var i = 0
        while i + V.scalarCount <= count {
            let x = UnsafeRawPointer(values + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(values + i).storeBytes(of: x / (1 + exp(-1.702 * x)), as: V.self)
            i += V.scalarCount
        }
        if i < count {  // the last few values, in one part-filled vector
            var x = V()
            for j in 0..<(count - i) { x[j] = values[i + j] }
            let y = x / (1 + exp(-1.702 * x))
            for j in 0..<(count - i) { values[i + j] = y[j] }
        }
    }
}
