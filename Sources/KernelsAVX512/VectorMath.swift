// One source, compiled into Tensor (for any processor) and, through symbolic links, into KernelsAVX2
// and KernelsAVX512, where the same code becomes AVX2 or AVX-512 instructions. Each module names its
// vector type `Lanes`. The code is written on that concrete type, not generically: in generic code
// Swift compares vectors lane by lane in a loop, 20× slower (measured).

/// Vector versions of the libm functions the activations and softmax need.
enum VectorMath {
    /// e^x in every lane: range reduction by ln 2 and Cephes' degree-6 polynomial (about 1 ulp of expf).
    @inline(__always)
    static func exp(_ input: Lanes) -> Lanes {
        // `replacing` inlines to a compare and a blend; the generic `pointwiseMin`/`Max` are calls.
        let x = input.replacing(with: 88.3, where: input .> 88.3).replacing(with: -87.3, where: input .< -87.3)
        // Adding 1.5 · 2²³ rounds to the nearest integer and leaves it in the low mantissa bits:
        // plain vector arithmetic, where Swift's generic rounding and conversions are slow.
        let magic = Lanes(repeating: 12_582_912)
        let shifted = x * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = Lanes(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let integer = unsafeBitCast(shifted, to: Lanes.MaskStorage.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: Lanes.self)
        return y * scale
    }

    /// `x · sigmoid(1.702 x)` (OpenAI CLIP's activation) in place, `Lanes.scalarCount` at a time.
    static func quickGELU(_ values: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + Lanes.scalarCount <= count {
            let x = UnsafeRawPointer(values + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(values + i).storeBytes(of: x / (1 + exp(-1.702 * x)), as: Lanes.self)
            i += Lanes.scalarCount
        }
        if i < count {  // the last few values, in one part-filled vector
            var x = Lanes()
            for j in 0..<(count - i) { x[j] = values[i + j] }
            let y = x / (1 + exp(-1.702 * x))
            for j in 0..<(count - i) { values[i + j] = y[j] }
        }
    }

    /// GELU's tanh approximation (SigLIP's `gelu_pytorch_tanh`) in place: 0.5 · x · (1 + tanh(u)) is
    /// x · sigmoid(2u), with u = √(2/π) · (x + 0.044715 x³).
    static func geluTanh(_ values: UnsafeMutablePointer<Float>, count: Int) {
        @inline(__always) func gelu(_ x: Lanes) -> Lanes { x / (1 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x))) }
        var i = 0
        while i + Lanes.scalarCount <= count {
            let x = UnsafeRawPointer(values + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(values + i).storeBytes(of: gelu(x), as: Lanes.self)
            i += Lanes.scalarCount
        }
        if i < count {
            var x = Lanes()
            for j in 0..<(count - i) { x[j] = values[i + j] }
            let y = gelu(x)
            for j in 0..<(count - i) { values[i + j] = y[j] }
        }
    }

    /// Numerically stable softmax of each row; with `causal`, entries right of the diagonal become 0.
    static func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, causal: Bool) {
        let width = Lanes.scalarCount
        for row in 0..<rows {
            let x = data + row * columns
            let visible = causal ? row + 1 : columns
            var maximum = -Float.infinity
            for i in 0..<visible { maximum = max(maximum, x[i]) }
            // e^(x − max) a vector at a time; the last part-filled vector is padded with −∞, whose e^x
            // (clamped) is below 1e-37 and vanishes next to the maximum's term, 1.
            var sums = Lanes()
            var i = 0
            while i + width <= visible {
                let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self) - maximum)
                UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: Lanes.self)
                sums += e
                i += width
            }
            if i < visible {
                var lanes = Lanes(repeating: -.infinity)
                for j in 0..<(visible - i) { lanes[j] = x[i + j] }
                let e = exp(lanes - maximum)
                for j in 0..<(visible - i) { x[i + j] = e[j] }
                sums += e
            }
            let inverse = 1 / sums.sum()
            for i in 0..<visible { x[i] *= inverse }
            for i in visible..<columns { x[i] = 0 }
        }
    }
}
