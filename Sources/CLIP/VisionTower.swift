import Tensor

/// `CLIPVisionTransformer` plus `visual_projection`.
struct VisionTower {
    let classEmbedding: WeightView     // [width]
    let patchEmbedding: Linear         // [width, channels · patch · patch], a stride-`patch` convolution
    let positionEmbedding: WeightView  // [patches + 1, width]
    let preLayerNorm: LayerNorm
    let encoder: TransformerEncoder
    let postLayerNorm: LayerNorm
    let projection: Linear             // [projection, width], no bias
    let configuration: VisionConfiguration

    var patchesPerSide: Int { configuration.imageSize / configuration.patchSize }
    var tokens: Int { patchesPerSide * patchesPerSide + 1 }

    init(_ load: WeightLoader, _ c: VisionConfiguration, projectionDim: Int) throws {
        let width = c.encoder.hiddenSize
        let side = c.imageSize / c.patchSize
        classEmbedding = try load("vision_model.embeddings.class_embedding", width)
        patchEmbedding = Linear(
            weight: try load.convolutionAsLinear(
                "vision_model.embeddings.patch_embedding.weight", [width, c.numChannels, c.patchSize, c.patchSize]),
            bias: nil)
        positionEmbedding = try load("vision_model.embeddings.position_embedding.weight", side * side + 1, width)
        preLayerNorm = try LayerNorm(load, "vision_model.pre_layrnorm", width: width, epsilon: c.encoder.layerNormEps)
        encoder = try TransformerEncoder(load, "vision_model.encoder", c.encoder)
        postLayerNorm = try LayerNorm(load, "vision_model.post_layernorm", width: width, epsilon: c.encoder.layerNormEps)
        projection = try Linear(load, "visual_projection", in: width, out: projectionDim, bias: false)
        configuration = c
    }

    /// Embeds a batch of preprocessed images, each [channels, size, size] planes.
    func callAsFunction(_ images: [[Float]]) -> [[Float]] {
        let width = configuration.encoder.hiddenSize
        let batch = images.count
        let columns = patchColumns(images, size: configuration.imageSize, patch: configuration.patchSize,
                                   channels: configuration.numChannels)  // [batch·patches, channels·patch²]
        let patches = patchEmbedding(columns)                      // [batch·patches, width]

        // Tokens: the class embedding, then the patches, each plus its position embedding.
        var x = Matrix(zeros: batch * tokens, width)              // [batch·tokens, width]
        x.values.withUnsafeMutableBufferPointer { target in
            for item in 0..<batch {
                for token in 0..<tokens {
                    let row = (item * tokens + token) * width
                    let position = positionEmbedding.base + token * width
                    if token == 0 {
                        for i in 0..<width { target[row + i] = classEmbedding.base[i] + position[i] }
                    } else {
                        let patchRow = (item * (tokens - 1) + token - 1) * width
                        for i in 0..<width { target[row + i] = patches.values[patchRow + i] + position[i] }
                    }
                }
            }
        }
        let classTokens = encoder(preLayerNorm(x), batch: batch, length: tokens, causal: false,
                                  pooling: Array(repeating: 0, count: batch))  // [batch, width]
        let pooled = postLayerNorm(classTokens)                    // [batch, width]
        let projected = projection(pooled)                         // [batch, projection]
        return (0..<batch).map { Operations.l2Normalized(projected.row($0)) }
    }
}

/// im2col for a convolution whose stride is its size: one row per patch of each image ([channels, size,
/// size] planes), the row ordered (channel, row, column) like the convolution kernel.
func patchColumns(_ images: [[Float]], size: Int, patch: Int, channels: Int) -> Matrix {
    let side = size / patch
    let patchLength = channels * patch * patch
    var columns = Matrix(zeros: images.count * side * side, patchLength)
    columns.values.withUnsafeMutableBufferPointer { target in
        for (item, pixels) in images.enumerated() {
            for py in 0..<side {
                for px in 0..<side {
                    var column = ((item * side + py) * side + px) * patchLength
                    for channel in 0..<channels {
                        for y in 0..<patch {
                            let source = (channel * size + py * patch + y) * size + px * patch
                            for x in 0..<patch {
                                target[column] = pixels[source + x]
                                column += 1
                            }
                        }
                    }
                }
            }
        }
    }
    return columns
}
