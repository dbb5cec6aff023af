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
        switch self {
        case .quickGELU:
            for i in values.indices {
                let x = values[i]
                values[i] = x / (1 + expf(-1.702 * x))
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
