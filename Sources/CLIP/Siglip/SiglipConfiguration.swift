import Foundation

/// `config.json` of a Hugging Face `SiglipModel` (SigLIP, and SigLIP 2 at a fixed resolution). Fields a
/// checkpoint leaves out take the defaults of `transformers`' `SiglipConfig`, which are SigLIP base's.
public struct SiglipConfiguration: Decodable, Sendable, Equatable {
    public struct Text: Decodable, Sendable, Equatable {
        public var encoder = EncoderConfiguration(
            hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
            hiddenAct: "gelu_pytorch_tanh", layerNormEps: 1e-6)
        public var vocabSize = 32000
        public var maxPositionEmbeddings = 64
        /// The width of the text head's output, which must be the vision tower's width.
        public var projectionSize: Int

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings", projectionSize = "projection_size"
        }

        init() { projectionSize = encoder.hiddenSize }

        public init(from decoder: Decoder) throws {
            self.init()
            encoder = try EncoderConfiguration(from: decoder, defaults: encoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? vocabSize
            maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
            projectionSize = try c.decodeIfPresent(Int.self, forKey: .projectionSize) ?? encoder.hiddenSize
        }
    }

    public struct Vision: Decodable, Sendable, Equatable {
        public var encoder = EncoderConfiguration(
            hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
            hiddenAct: "gelu_pytorch_tanh", layerNormEps: 1e-6)
        public var imageSize = 224
        public var patchSize = 16
        public var numChannels = 3
        public var useHead = true

        enum CodingKeys: String, CodingKey {
            case imageSize = "image_size", patchSize = "patch_size", numChannels = "num_channels", useHead = "vision_use_head"
        }

        init() {}

        public init(from decoder: Decoder) throws {
            encoder = try EncoderConfiguration(from: decoder, defaults: encoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? imageSize
            patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? patchSize
            numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? numChannels
            useHead = try c.decodeIfPresent(Bool.self, forKey: .useHead) ?? useHead
        }
    }

    public var text: Text
    public var vision: Vision

    enum CodingKeys: String, CodingKey {
        case text = "text_config", vision = "vision_config"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        text = try c.decodeIfPresent(Text.self, forKey: .text) ?? Text()
        vision = try c.decodeIfPresent(Vision.self, forKey: .vision) ?? Vision()
    }

    public static func load(from url: URL) throws -> SiglipConfiguration {
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        let configuration: SiglipConfiguration
        do {
            configuration = try JSONDecoder().decode(SiglipConfiguration.self, from: data)
        } catch {
            throw CLIPError.invalidConfiguration("\(url.lastPathComponent): \(error)")
        }
        try configuration.validate()
        return configuration
    }

    func validate() throws {
        try text.encoder.validate(tower: "text_config")
        try vision.encoder.validate(tower: "vision_config")
        guard text.vocabSize > 2, text.maxPositionEmbeddings > 1 else {
            throw CLIPError.invalidConfiguration("text_config needs vocab_size above 2 and max_position_embeddings above 1")
        }
        guard text.projectionSize == vision.encoder.hiddenSize else {
            throw CLIPError.invalidConfiguration(
                "text_config projection_size \(text.projectionSize) must equal vision_config hidden_size \(vision.encoder.hiddenSize)")
        }
        guard vision.useHead else {
            throw CLIPError.invalidConfiguration("vision_config has no pooling head (vision_use_head is false): it gives no image vector")
        }
        let v = vision
        guard v.patchSize > 0, v.imageSize >= v.patchSize, v.imageSize % v.patchSize == 0, v.numChannels == 3 else {
            throw CLIPError.invalidConfiguration(
                "vision_config: image_size \(v.imageSize) must be a multiple of patch_size \(v.patchSize), with 3 channels")
        }
    }
}
