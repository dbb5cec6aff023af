import Foundation
import Tensor

/// `config.json` of a Hugging Face `CLIPModel`. Fields a checkpoint leaves out take the defaults of
/// `transformers`' `CLIPConfig`, which are ViT-B/32's.
public struct CLIPConfiguration: Codable, Sendable, Equatable {
    public var textConfig: TextConfiguration
    public var visionConfig: VisionConfiguration
    public var projectionDim: Int

    enum CodingKeys: String, CodingKey {
        case textConfig = "text_config"
        case visionConfig = "vision_config"
        case projectionDim = "projection_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        textConfig = try c.decodeIfPresent(TextConfiguration.self, forKey: .textConfig) ?? TextConfiguration()
        visionConfig = try c.decodeIfPresent(VisionConfiguration.self, forKey: .visionConfig) ?? VisionConfiguration()
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
    }

    public static func load(from url: URL) throws -> CLIPConfiguration {
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        let configuration: CLIPConfiguration
        do {
            configuration = try JSONDecoder().decode(CLIPConfiguration.self, from: data)
        } catch {
            throw CLIPError.invalidConfiguration("\(url.lastPathComponent): \(error)")
        }
        try configuration.validate()
        return configuration
    }

    func validate() throws {
        try textConfig.encoder.validate(tower: "text_config")
        try visionConfig.encoder.validate(tower: "vision_config")
        guard projectionDim > 0 else { throw CLIPError.invalidConfiguration("projection_dim must be positive") }
        guard textConfig.vocabSize > 2, textConfig.maxPositionEmbeddings > 2 else {
            throw CLIPError.invalidConfiguration("text_config needs vocab_size and max_position_embeddings above 2")
        }
        let v = visionConfig
        guard v.patchSize > 0, v.imageSize >= v.patchSize, v.imageSize % v.patchSize == 0, v.numChannels == 3 else {
            throw CLIPError.invalidConfiguration(
                "vision_config: image_size \(v.imageSize) must be a multiple of patch_size \(v.patchSize), with 3 channels")
        }
    }
}

/// The sizes shared by both towers' transformer encoders.
public struct EncoderConfiguration: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var hiddenAct: String
    public var layerNormEps: Float

    public var activation: Activation? { Activation(huggingFaceName: hiddenAct) }

    func validate(tower: String) throws {
        guard hiddenSize > 0, intermediateSize > 0, numHiddenLayers > 0, numAttentionHeads > 0 else {
            throw CLIPError.invalidConfiguration("\(tower): sizes must be positive")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw CLIPError.invalidConfiguration(
                "\(tower): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard activation != nil else {
            throw CLIPError.invalidConfiguration(
                "\(tower): hidden_act \"\(hiddenAct)\" is not one of quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu")
        }
        guard layerNormEps > 0 else { throw CLIPError.invalidConfiguration("\(tower): layer_norm_eps must be positive") }
    }
}

enum EncoderCodingKeys: String, CodingKey {
    case hiddenSize = "hidden_size"
    case intermediateSize = "intermediate_size"
    case numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads"
    case hiddenAct = "hidden_act"
    case layerNormEps = "layer_norm_eps"
}

extension EncoderConfiguration {
    init(from decoder: Decoder, defaults: EncoderConfiguration) throws {
        let c = try decoder.container(keyedBy: EncoderCodingKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? defaults.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? defaults.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? defaults.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? defaults.numAttentionHeads
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? defaults.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? defaults.layerNormEps
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: EncoderCodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encode(layerNormEps, forKey: .layerNormEps)
    }
}

public struct TextConfiguration: Codable, Sendable, Equatable {
    public var encoder = EncoderConfiguration(
        hiddenSize: 512, intermediateSize: 2048, numHiddenLayers: 12, numAttentionHeads: 8,
        hiddenAct: "quick_gelu", layerNormEps: 1e-5)
    public var vocabSize = 49408
    public var maxPositionEmbeddings = 77

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
    }

    init() {}

    public init(from decoder: Decoder) throws {
        encoder = try EncoderConfiguration(from: decoder, defaults: encoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? vocabSize
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
    }

    public func encode(to encoder: Encoder) throws {
        try self.encoder.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
    }
}

public struct VisionConfiguration: Codable, Sendable, Equatable {
    public var encoder = EncoderConfiguration(
        hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
        hiddenAct: "quick_gelu", layerNormEps: 1e-5)
    public var imageSize = 224
    public var patchSize = 32
    public var numChannels = 3

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size"
        case patchSize = "patch_size"
        case numChannels = "num_channels"
    }

    init() {}

    public init(from decoder: Decoder) throws {
        encoder = try EncoderConfiguration(from: decoder, defaults: encoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? patchSize
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? numChannels
    }

    public func encode(to encoder: Encoder) throws {
        try self.encoder.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(imageSize, forKey: .imageSize)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(numChannels, forKey: .numChannels)
    }
}
