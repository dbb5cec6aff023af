import Foundation

/// The hidden activations CLIP checkpoints name in `hidden_act`.
public enum Activation: String, Sendable, CaseIterable {
    /// `x · sigmoid(1.702 x)`, OpenAI CLIP's original.
    case quickGELU = "quick_gelu"
    /// The exact GELU, `x · Φ(x)` with the error function.
    case gelu = "gelu"
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    case geluTanh = "gelu_new"
    case relu = "relu"

    /// Parses a Hugging Face `hidden_act` name, including the aliases that mean the same function.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        default: self.init(rawValue: name)
        }
    }

    func apply(to values: UnsafeMutableBufferPointer<Float>) {
        // Large activations are split across cores; each chunk is independent.
        let chunk = 1 << 16
        if values.count >= 2 * chunk {
            let address = Int(bitPattern: values.baseAddress!)  // a pointer is not Sendable; its address is
            let count = values.count
            DispatchQueue.concurrentPerform(iterations: (count + chunk - 1) / chunk) { index in
                let start = index * chunk
                let base = UnsafeMutablePointer<Float>(bitPattern: address)!
                applySerially(to: UnsafeMutableBufferPointer(start: base + start, count: min(chunk, count - start)))
            }
        } else {
            applySerially(to: values)
        }
    }

    private func applySerially(to values: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .quickGELU:
            // x · sigmoid(1.702 x), eight lanes at a time with a vector exp.
            let base = values.baseAddress!
            var i = 0
            while i + 8 <= values.count {
                let x = UnsafeRawPointer(base + i).loadUnaligned(as: SIMD8<Float>.self)
                let y = x / (1 + VectorMath.exp(-1.702 * x))
                UnsafeMutableRawPointer(base + i).storeBytes(of: y, as: SIMD8<Float>.self)
                i += 8
            }
            while i < values.count {
                let x = values[i]
                values[i] = x / (1 + expf(-1.702 * x))
                i += 1
            }
        case .gelu:
            for i in values.indices {
                let x = values[i]
                values[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
            }
        case .geluTanh:
            for i in values.indices {
                let x = values[i]
                values[i] = 0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
            }
        case .relu:
            for i in values.indices { values[i] = max(values[i], 0) }
        }
    }
}

/// Vector versions of libm functions the activations need.
enum VectorMath {
    /// e^x for eight lanes: range reduction by ln 2 and Cephes' degree-6 polynomial (about 1 ulp of expf).
    @inline(__always)
    static func exp(_ input: SIMD8<Float>) -> SIMD8<Float> {
        // `replacing` inlines to a compare and a blend; the generic `pointwiseMin`/`Max` are calls.
        let x = input.replacing(with: 88.3, where: input .> 88.3).replacing(with: -87.3, where: input .< -87.3)
        // Adding 1.5 · 2²³ rounds to the nearest integer and leaves it in the low mantissa bits:
        // plain vector arithmetic, where Swift's generic rounding and conversions are slow.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = x * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: SIMD8<Float>.self)
        return y * scale
    }
}
