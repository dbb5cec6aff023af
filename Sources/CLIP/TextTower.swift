import Tensor

/// `CLIPTextTransformer` plus `text_projection`.
struct TextTower {
    let tokenEmbedding: WeightView     // [vocab, width]
    let positionEmbedding: WeightView  // [positions, width]
    let encoder: TransformerEncoder
    let finalLayerNorm: LayerNorm
    let projection: Linear             // [projection, width], no bias
    let configuration: TextConfiguration

    init(_ load: WeightLoader, _ c: TextConfiguration, projectionDim: Int) throws {
        let width = c.encoder.hiddenSize
        tokenEmbedding = try load("text_model.embeddings.token_embedding.weight", c.vocabSize, width)
        positionEmbedding = try load("text_model.embeddings.position_embedding.weight", c.maxPositionEmbeddings, width)
        encoder = try TransformerEncoder(load, "text_model.encoder", c.encoder)
        finalLayerNorm = try LayerNorm(load, "text_model.final_layer_norm", width: width, epsilon: c.encoder.layerNormEps)
        projection = try Linear(load, "text_projection", in: width, out: projectionDim, bias: false)
        configuration = c
    }

    /// The bytes of weight matrices one text reads: every layer's and the projection (a short text's
    /// time is mostly the time memory takes to deliver them).
    var weightBytes: Int { encoder.layers.reduce(projection.weight.byteCount) { $0 + $1.weightBytes } }

    /// Embeds token sequences that each end with the end-of-text token. The tower is causal, so an end
    /// token's output depends only on the tokens before it: shorter sequences are padded to the longest
    /// (the padding comes after their end token and cannot reach it), and nothing is padded to 77.
    /// Running several texts together reads the weights once for all of them.
    func callAsFunction(_ batch: [[Int]]) -> [[Float]] {
        let width = configuration.encoder.hiddenSize
        let length = batch.map(\.count).max() ?? 0
        guard length > 0 else { return [] }
        // Shorter sequences repeat their last token up to the longest.
        let padded = batch.map { $0 + Array(repeating: $0[$0.count - 1], count: length - $0.count) }
        let x = embedTokens(padded, length: length, tokens: tokenEmbedding, positions: positionEmbedding, width: width)
        let ends = batch.map { $0.count - 1 }
        let encoded = encoder(x, batch: batch.count, length: length, causal: true, pooling: ends)  // [texts, width]
        let pooled = finalLayerNorm(encoded)                         // [texts, width]
        let projected = projection(pooled)                           // [texts, projection]
        return (0..<batch.count).map { Operations.l2Normalized(projected.row($0)) }
    }
}
