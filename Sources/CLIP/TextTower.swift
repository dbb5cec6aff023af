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

    /// Embeds one token sequence that ends with the end-of-text token. The tower is causal, so the
    /// end token's output depends only on the tokens before it: no padding is computed.
    func callAsFunction(_ tokens: [Int]) -> [Float] {
        let width = configuration.encoder.hiddenSize
        let length = tokens.count
        var x = Matrix(zeros: length, width)                      // [tokens, width]
        for (position, token) in tokens.enumerated() {
            for i in 0..<width {
                x[position, i] = tokenEmbedding.base[token * width + i] + positionEmbedding.base[position * width + i]
            }
        }
        let encoded = finalLayerNorm(encoder(x, batch: 1, length: length, causal: true))  // [tokens, width]
        let pooled = encoded.gatherRows([length - 1])             // [1, width]
        return Operations.l2Normalized(projection(pooled).values)  // [projection]
    }
}
