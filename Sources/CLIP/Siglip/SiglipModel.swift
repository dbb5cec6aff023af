import Foundation
import ImageIO
import Tensor

/// A SigLIP model loaded from a Hugging Face `SiglipModel` folder (SigLIP, multilingual SigLIP, SigLIP 2
/// at a fixed resolution): both towers, the tokenizer (`spiece.model` or `tokenizer.json`) and the image
/// preprocessing, giving L2-normalised float32 vectors in one space, scored with a sigmoid.
public final class SiglipModel: ImageTextModel, @unchecked Sendable {
    public let configuration: SiglipConfiguration
    public let tokenizer: any Tokenizer
    public let preprocessor: ImagePreprocessor
    private let weights: Checkpoint  // keeps the memory mapping alive for the towers' views
    private let derivedWeights: WeightStorage
    private let text: SiglipTextTower
    private let vision: SiglipVisionTower
    /// The ids of a text with nothing in it, to refuse texts that tokenize to nothing.
    private let emptyText: [Int]

    public let scoring: LabelScoring
    public var family: ModelFamily { .siglip }
    public var dimension: Int { configuration.vision.encoder.hiddenSize }
    public var imageSide: Int { preprocessor.configuration.resizedSide }
    public var textWeightBytes: Int { text.weightBytes }

    public init(folder: URL, kernel: ProductKernel = .best) throws {
        configuration = try SiglipConfiguration.load(from: folder.appendingPathComponent("config.json"))
        preprocessor = ImagePreprocessor(configuration: try PreprocessorConfiguration.load(folder: folder, defaults: .siglip))
        tokenizer = try Self.tokenizer(folder: folder, contextLength: configuration.text.maxPositionEmbeddings)
        weights = try Checkpoint(folder: folder)
        let load = WeightLoader(weights, kernel: kernel)
        text = try SiglipTextTower(load, configuration.text)
        vision = try SiglipVisionTower(load, configuration.vision)
        scoring = .sigmoid(logitScale: try load("logit_scale", 1).base[0], logitBias: try load("logit_bias", 1).base[0])
        derivedWeights = load.storage
        try load.verifyAllUsed()
        emptyText = try tokenizer.encode("")
        let side = configuration.vision.imageSize
        guard case .size(side, side) = preprocessor.configuration.resize, preprocessor.configuration.doResize,
            !preprocessor.configuration.doCenterCrop
        else {
            throw CLIPError.invalidConfiguration("the image processor does not resize to the model's \(side)×\(side) input")
        }
    }

    /// SigLIP's SentencePiece tokenizer where the folder names it (or has only `spiece.model`), otherwise
    /// `tokenizer.json` (SigLIP 2's Gemma tokenizer).
    public static func tokenizer(folder: URL, contextLength: Int) throws -> any Tokenizer {
        let files = FileManager.default
        let sentencePiece = files.fileExists(atPath: folder.appendingPathComponent("spiece.model").path)
        let json = files.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path)
        let named = TokenizerSettings(folder: folder).string("tokenizer_class")
        if sentencePiece && (named == "SiglipTokenizer" || !json) { return try SiglipTokenizer(folder: folder, contextLength: contextLength) }
        if json { return try HuggingFaceTokenizer(folder: folder, contextLength: contextLength) }
        throw CLIPError.missingFile(folder.appendingPathComponent("spiece.model").path + " (or tokenizer.json)")
    }

    /// The model's input ids: always `max_position_embeddings` long, padded as the reference pads.
    public func tokens(for text: String) throws -> [Int] {
        let ids = try tokenizer.encode(text)
        guard ids != emptyText else { throw CLIPError.emptyText }
        return ids
    }

    public func embed(tokenBatch: [[Int]]) throws -> [[Float]] {
        for ids in tokenBatch {
            guard ids.count == configuration.text.maxPositionEmbeddings,
                ids.allSatisfy({ $0 >= 0 && $0 < configuration.text.vocabSize })
            else {
                throw CLIPError.invalidTokenizer("token ids do not fit the model's vocabulary or its \(configuration.text.maxPositionEmbeddings) positions")
            }
        }
        return text(tokenBatch)
    }

    public func pixelValues(for image: RGBImage) -> [Float] { preprocessor.pixelValues(image) }

    /// JPEGs reduced by DCT scaling while their short side stays at least twice the model's input, or
    /// every pixel when `exact`.
    public func imageDecoder(exact: Bool) -> ImageDecoder {
        ImageDecoder(minimumDecodedSide: exact ? nil : 2 * preprocessor.configuration.resizedSide)
    }

    public func embed(pixelValues: [[Float]]) -> [[Float]] { vision(pixelValues) }
}

/// `SiglipVisionTransformer`: patches (no class token) plus positions, the encoder, the post-layernorm and
/// the attention-pooling head, whose output is the image vector.
struct SiglipVisionTower {
    let patchEmbedding: Linear
    let positionEmbedding: WeightView  // [patches, width]
    let encoder: TransformerEncoder
    let postLayerNorm: LayerNorm
    let head: AttentionPoolingHead
    let configuration: SiglipConfiguration.Vision

    var patches: Int { (configuration.imageSize / configuration.patchSize) * (configuration.imageSize / configuration.patchSize) }

    init(_ load: WeightLoader, _ c: SiglipConfiguration.Vision) throws {
        let width = c.encoder.hiddenSize
        let side = c.imageSize / c.patchSize
        patchEmbedding = Linear(
            weight: try load.convolutionAsLinear(
                "vision_model.embeddings.patch_embedding.weight", [width, c.numChannels, c.patchSize, c.patchSize]),
            bias: try load("vision_model.embeddings.patch_embedding.bias", width))
        positionEmbedding = try load("vision_model.embeddings.position_embedding.weight", side * side, width)
        encoder = try TransformerEncoder(load, "vision_model.encoder", c.encoder)
        postLayerNorm = try LayerNorm(load, "vision_model.post_layernorm", width: width, epsilon: c.encoder.layerNormEps)
        head = try AttentionPoolingHead(load, "vision_model.head", c.encoder)
        configuration = c
    }

    func callAsFunction(_ images: [[Float]]) -> [[Float]] {
        let width = configuration.encoder.hiddenSize
        let batch = images.count
        let columns = patchColumns(images, size: configuration.imageSize, patch: configuration.patchSize,
                                   channels: configuration.numChannels)  // [batch·patches, channels·patch²]
        var x = patchEmbedding(columns)                             // [batch·patches, width]
        x.values.withUnsafeMutableBufferPointer { target in
            for row in 0..<(batch * patches) {
                let position = positionEmbedding.base + (row % patches) * width
                for i in 0..<width { target[row * width + i] += position[i] }
            }
        }
        let hidden = postLayerNorm(encoder.hiddenStates(x, batch: batch, length: patches, causal: false))
        let pooled = head(hidden, batch: batch, length: patches)   // [batch, width]
        return (0..<batch).map { Operations.l2Normalized(pooled.row($0)) }
    }
}

/// `SiglipMultiheadAttentionPoolingHead`: a learned probe attends over every token (PyTorch's
/// MultiheadAttention, its q, k and v packed in `in_proj`), then layer norm and MLP with a residual.
struct AttentionPoolingHead {
    let probe: WeightView        // [width]
    let query: Linear            // in_proj rows [0, width)
    let keyValue: Linear         // in_proj rows [width, 3·width)
    let output: Linear
    let feedForward: FeedForward
    let heads: Int

    init(_ load: WeightLoader, _ prefix: String, _ c: EncoderConfiguration) throws {
        let width = c.hiddenSize
        probe = try load("\(prefix).probe", 1, 1, width)
        let blocks = try load.linearBlocks("\(prefix).attention.in_proj_weight", rows: [width, 2 * width], inFeatures: width)
        let bias = try load("\(prefix).attention.in_proj_bias", 3 * width)
        query = Linear(weight: blocks[0], bias: WeightView(base: bias.base, shape: [width]))
        keyValue = Linear(weight: blocks[1], bias: WeightView(base: bias.base + width, shape: [2 * width]))
        output = try Linear(load, "\(prefix).attention.out_proj", in: width, out: width)
        feedForward = try FeedForward(load, norm: "\(prefix).layernorm", mlp: "\(prefix).mlp", c)
        heads = c.numAttentionHeads
    }

    /// x: [batch · length, width] → [batch, width].
    func callAsFunction(_ x: Matrix, batch: Int, length: Int) -> Matrix {
        let width = x.columns
        let q = query(Matrix(rows: 1, columns: width, values: Array(probe.buffer)))  // [1, width]
        let kv = keyValue(x)                                                         // [batch·length, 2·width]
        // The shared attention takes q, k and v side by side; the probe's query sits in each sequence's
        // first row, the only one asked for.
        var qkv = Matrix(zeros: batch * length, 3 * width)
        qkv.values.withUnsafeMutableBufferPointer { target in
            for row in 0..<(batch * length) {
                for i in 0..<(2 * width) { target[row * 3 * width + width + i] = kv.values[row * 2 * width + i] }
                if row % length == 0 { for i in 0..<width { target[row * 3 * width + i] = q.values[i] } }
            }
        }
        let attended = Operations.attention(qkv: qkv, batch: batch, length: length, heads: heads, causal: false,
                                            queries: Array(repeating: 0, count: batch))  // [batch, width]
        return feedForward(output(attended))
    }
}

/// `SiglipTextTransformer`: token plus position embeddings over the whole padded context, the encoder
/// without a causal mask, the final layer norm of the last position, and the `head` linear.
struct SiglipTextTower {
    let tokenEmbedding: WeightView     // [vocab, width]
    let positionEmbedding: WeightView  // [positions, width]
    let encoder: TransformerEncoder
    let finalLayerNorm: LayerNorm
    let head: Linear
    let configuration: SiglipConfiguration.Text

    init(_ load: WeightLoader, _ c: SiglipConfiguration.Text) throws {
        let width = c.encoder.hiddenSize
        tokenEmbedding = try load("text_model.embeddings.token_embedding.weight", c.vocabSize, width)
        positionEmbedding = try load("text_model.embeddings.position_embedding.weight", c.maxPositionEmbeddings, width)
        encoder = try TransformerEncoder(load, "text_model.encoder", c.encoder)
        finalLayerNorm = try LayerNorm(load, "text_model.final_layer_norm", width: width, epsilon: c.encoder.layerNormEps)
        head = try Linear(load, "text_model.head", in: width, out: c.projectionSize)
        configuration = c
    }

    var weightBytes: Int { encoder.layers.reduce(head.weight.byteCount) { $0 + $1.weightBytes } }

    /// Embeds id sequences each `max_position_embeddings` long. Every position attends to every other,
    /// so the padding is part of the input, as in training.
    func callAsFunction(_ batch: [[Int]]) -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        let width = configuration.encoder.hiddenSize
        let length = configuration.maxPositionEmbeddings
        let x = embedTokens(batch, length: length, tokens: tokenEmbedding, positions: positionEmbedding, width: width)
        let last = encoder(x, batch: batch.count, length: length, causal: false,
                           pooling: Array(repeating: length - 1, count: batch.count))  // [texts, width]
        let projected = head(finalLayerNorm(last))                   // [texts, projection]
        return (0..<batch.count).map { Operations.l2Normalized(projected.row($0)) }
    }
}
