import Tensor

/// `nn.Linear`: weight [out, in] and an optional bias [out].
struct Linear {
    let weight: LinearWeight
    let bias: WeightView?

    init(weight: LinearWeight, bias: WeightView?) {
        self.weight = weight
        self.bias = bias
    }

    init(_ load: WeightLoader, _ prefix: String, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true) throws {
        weight = try load.linear(["\(prefix).weight"], outFeatures: [outFeatures], inFeatures: inFeatures)
        bias = hasBias ? try load("\(prefix).bias", outFeatures) : nil
    }

    /// `x · weightᵀ + bias`, plus `residual` when given (added in the same pass).
    func callAsFunction(_ x: Matrix, residual: Matrix? = nil) -> Matrix {
        Operations.linear(x, weight: weight, bias: bias, residual: residual)
    }
}

struct LayerNorm {
    let gamma: WeightView
    let beta: WeightView
    let epsilon: Float

    init(_ load: WeightLoader, _ prefix: String, width: Int, epsilon: Float) throws {
        gamma = try load("\(prefix).weight", width)
        beta = try load("\(prefix).bias", width)
        self.epsilon = epsilon
    }

    func callAsFunction(_ x: Matrix) -> Matrix {
        Operations.layerNorm(x, gamma: gamma, beta: beta, epsilon: epsilon)
    }
}

/// The MLP half of a pre-norm block: layer norm, fc1, activation, fc2, plus the input (the residual).
/// Every encoder layer has one, and so has SigLIP's attention-pooling head.
struct FeedForward {
    let layerNorm: LayerNorm
    let fc1: Linear
    let fc2: Linear
    let activation: Activation

    init(_ load: WeightLoader, norm: String, mlp: String, _ c: EncoderConfiguration) throws {
        layerNorm = try LayerNorm(load, norm, width: c.hiddenSize, epsilon: c.layerNormEps)
        fc1 = try Linear(load, "\(mlp).fc1", in: c.hiddenSize, out: c.intermediateSize)
        fc2 = try Linear(load, "\(mlp).fc2", in: c.intermediateSize, out: c.hiddenSize)
        guard let activation = c.activation else { throw CLIPError.invalidConfiguration("unknown hidden_act \(c.hiddenAct)") }
        self.activation = activation
    }

    /// h: [rows, width] → same shape.
    func callAsFunction(_ h: Matrix) -> Matrix {
        let hidden = Operations.apply(activation, to: fc1(layerNorm(h)))  // [rows, intermediate]
        return fc2(hidden, residual: h)                                    // [rows, width]
    }
}

/// One pre-norm transformer block, the same type in both towers (`CLIPEncoderLayer`).
struct EncoderLayer {
    let layerNorm1: LayerNorm
    /// q, k and v projections fused into one [3 · width, width] product (built once at load).
    let queryKeyValue: Linear
    let output: Linear
    let feedForward: FeedForward
    let heads: Int

    init(_ load: WeightLoader, _ prefix: String, _ c: EncoderConfiguration) throws {
        let width = c.hiddenSize
        layerNorm1 = try LayerNorm(load, "\(prefix).layer_norm1", width: width, epsilon: c.layerNormEps)
        let projections = ["q_proj", "k_proj", "v_proj"].map { "\(prefix).self_attn.\($0)" }
        queryKeyValue = Linear(
            weight: try load.linear(projections.map { "\($0).weight" }, outFeatures: [width, width, width], inFeatures: width),
            bias: try load.concatenated(projections.map { "\($0).bias" }, count: width))
        output = try Linear(load, "\(prefix).self_attn.out_proj", in: width, out: width)
        feedForward = try FeedForward(load, norm: "\(prefix).layer_norm2", mlp: "\(prefix).mlp", c)
        heads = c.numAttentionHeads
    }

    /// x: [batch · length, width] → same shape.
    func callAsFunction(_ x: Matrix, batch: Int, length: Int, causal: Bool) -> Matrix {
        let normed = layerNorm1(x)                                   // [batch·length, width]
        let attended = Operations.attention(
            qkv: queryKeyValue(normed),                              // [batch·length, 3·width]
            batch: batch, length: length, heads: heads, causal: causal)  // [batch·length, width]
        return feedForward(output(attended, residual: x))            // [batch·length, width]
    }

    /// The outputs of one token per sequence only, at `positions`: x: [batch · length, width] →
    /// [batch, width]. Every token is still a key and a value; only the chosen ones are queries.
    func outputs(_ x: Matrix, batch: Int, length: Int, causal: Bool, at positions: [Int]) -> Matrix {
        let attended = Operations.attention(
            qkv: queryKeyValue(layerNorm1(x)),                       // [batch·length, 3·width]
            batch: batch, length: length, heads: heads, causal: causal, queries: positions)  // [batch, width]
        let chosen = x.gatherRows(rows(at: positions, length: length))
        return feedForward(output(attended, residual: chosen))       // [batch, width]
    }

    /// The bytes of weight matrices one pass through the layer reads.
    var weightBytes: Int { [queryKeyValue, output, feedForward.fc1, feedForward.fc2].reduce(0) { $0 + $1.weight.byteCount } }
}

struct TransformerEncoder {
    let layers: [EncoderLayer]

    init(_ load: WeightLoader, _ prefix: String, _ c: EncoderConfiguration) throws {
        layers = try (0..<c.numHiddenLayers).map { try EncoderLayer(load, "\(prefix).layers.\($0)", c) }
    }

    /// The last layer's output for one token per sequence, at `positions`: [batch, width]. The towers
    /// pool a single token, so the last layer computes its projections and MLP for that token only
    /// (in ViT-B/32 about 6 % of an image's arithmetic).
    func callAsFunction(_ x: Matrix, batch: Int, length: Int, causal: Bool, pooling positions: [Int]) -> Matrix {
        guard let last = layers.last else {
            return x.gatherRows(rows(at: positions, length: length))
        }
        let hidden = layers.dropLast().reduce(x) { $1($0, batch: batch, length: length, causal: causal) }
        return last.outputs(hidden, batch: batch, length: length, causal: causal, at: positions)
    }

    /// The last layer's output for every token: [batch · length, width].
    func hiddenStates(_ x: Matrix, batch: Int, length: Int, causal: Bool) -> Matrix {
        layers.reduce(x) { $1($0, batch: batch, length: length, causal: causal) }
    }
}

/// Token plus position embeddings of sequences all `length` long: [sequences · length, width].
func embedTokens(_ sequences: [[Int]], length: Int, tokens: WeightView, positions: WeightView, width: Int) -> Matrix {
    var x = Matrix(zeros: sequences.count * length, width)
    x.values.withUnsafeMutableBufferPointer { target in
        for (item, ids) in sequences.enumerated() {
            for (position, token) in ids.enumerated() {
                let row = (item * length + position) * width
                for i in 0..<width { target[row + i] = tokens.base[token * width + i] + positions.base[position * width + i] }
            }
        }
    }
    return x
}

/// The row of each sequence's token at `positions[sequence]`, sequences of `length` rows one after another.
private func rows(at positions: [Int], length: Int) -> [Int] {
    positions.enumerated().map { $0.offset * length + $0.element }
}
