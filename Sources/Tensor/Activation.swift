import Foundation

#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
#endif

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
            ComputeThreads.parallel((count + chunk - 1) / chunk) { index in
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
            // The same code built for the widest vectors this processor has (see VectorMath.swift).
            switch ProductKernel.best {
            #if arch(x86_64)
            case .avx512: KernelsAVX512.ElementWise.quickGELU(values.baseAddress!, count: values.count)
            case .avx2: KernelsAVX2.ElementWise.quickGELU(values.baseAddress!, count: values.count)
            #endif
            default: VectorMath.quickGELU(values.baseAddress!, count: values.count)
            }
        case .gelu:
            for i in values.indices {
                let x = values[i]
                values[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
            }
        case .geluTanh:
            switch ProductKernel.best {
            #if arch(x86_64)
            case .avx512: KernelsAVX512.ElementWise.geluTanh(values.baseAddress!, count: values.count)
            case .avx2: KernelsAVX2.ElementWise.geluTanh(values.baseAddress!, count: values.count)
            #endif
            default: VectorMath.geluTanh(values.baseAddress!, count: values.count)
            }
        case .relu:
            for i in values.indices { values[i] = max(values[i], 0) }
        }
    }
}
