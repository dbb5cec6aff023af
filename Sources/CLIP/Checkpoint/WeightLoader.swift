import Foundation
import Tensor

/// Hands out weights by key and remembers which were taken, so that loading can refuse a checkpoint
/// with keys the model does not use.
final class WeightLoader {
    private let tensors: Checkpoint
    /// Weights derived at load time; the model keeps this alive.
    let storage = WeightStorage()
    private var used = Set<String>()
    /// Buffers some checkpoints carry that are not weights (HF stores `position_ids` in older files).
    private static let ignorable: Set<String> = [
        "text_model.embeddings.position_ids", "vision_model.embeddings.position_ids",
    ]

    /// The product kernel linear weights are prepared for.
    let kernel: ProductKernel

    init(_ tensors: Checkpoint, kernel: ProductKernel) {
        self.tensors = tensors
        self.kernel = kernel
    }

    func callAsFunction(_ key: String, _ shape: Int...) throws -> WeightView {
        used.insert(key)
        return try tensors.weight(key, shape: shape)
    }

    func shape(of key: String) -> [Int]? { tensors.entries[key]?.shape }

    /// A linear layer's weight made of `keys` stacked along the output dimension (q, k and v as one
    /// product), each [out, inFeatures]. When the weight is packed into its own buffer, the sources are
    /// released, so each weight is held in memory once.
    func linear(_ keys: [String], outFeatures: [Int], inFeatures: Int) throws -> LinearWeight {
        let parts = try zip(keys, outFeatures).map { key, out -> WeightView in
            used.insert(key)
            return try tensors.weight(key, shape: [out, inFeatures])
        }
        return prepared(parts, from: keys)
    }

    /// Row blocks of one stored matrix [sum of `rows`, inFeatures] as separate linear weights (PyTorch's
    /// MultiheadAttention packs q, k and v into one `in_proj_weight`).
    func linearBlocks(_ key: String, rows: [Int], inFeatures: Int) throws -> [LinearWeight] {
        used.insert(key)
        let whole = try tensors.weight(key, shape: [rows.reduce(0, +), inFeatures])
        let starts = rows.reduce(into: [0]) { $0.append($0.last! + $1) }
        let weights = zip(starts, rows).map { start, count in
            LinearWeight(parts: [WeightView(base: whole.base + start * inFeatures, shape: [count, inFeatures])], kernel: kernel)
        }
        if weights.allSatisfy(\.ownsValues) { tensors.release(key) }
        return weights
    }

    /// A convolution kernel [out, channels, height, width] whose stride equals its size, as the linear
    /// weight [out, channels · height · width] it is on image patches.
    func convolutionAsLinear(_ key: String, _ shape: [Int]) throws -> LinearWeight {
        used.insert(key)
        let kernel = try tensors.weight(key, shape: shape)
        return prepared([WeightView(base: kernel.base, shape: [shape[0], shape.dropFirst().reduce(1, *)])], from: [key])
    }

    private func prepared(_ parts: [WeightView], from keys: [String]) -> LinearWeight {
        let weight = LinearWeight(parts: parts, kernel: kernel)
        if weight.ownsValues { keys.forEach(tensors.release) }
        return weight
    }

    /// Biases (or other vectors) concatenated into one new buffer, owned by `storage`.
    func concatenated(_ keys: [String], count: Int) throws -> WeightView {
        let parts = try keys.map { key -> WeightView in
            used.insert(key)
            return try tensors.weight(key, shape: [count])
        }
        let fused = storage.concatenate(parts)
        keys.forEach(tensors.release)
        return fused
    }

    /// Throws when the checkpoint holds a tensor nobody asked for.
    func verifyAllUsed() throws {
        let unused = Set(tensors.entries.keys).subtracting(used).subtracting(Self.ignorable)
        if !unused.isEmpty { throw CLIPError.unexpectedWeights(unused.sorted()) }
    }
}
