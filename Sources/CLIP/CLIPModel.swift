import Foundation
import ImageIO
import Tensor

/// A CLIP model loaded from a Hugging Face `CLIPModel` folder: both towers, the tokenizer and the
/// image preprocessing, giving L2-normalised float32 vectors in one space.
public final class CLIPModel: ImageTextModel, @unchecked Sendable {
    public let configuration: CLIPConfiguration
    public let tokenizer: CLIPTokenizer
    public let preprocessor: ImagePreprocessor
    private let weights: Checkpoint  // keeps the memory mapping alive for the towers' views
    private let derivedWeights: WeightStorage  // and the fused biases built at load
    private let text: TextTower
    private let vision: VisionTower

    public let scoring: LabelScoring
    public var family: ModelFamily { .clip }
    public var dimension: Int { configuration.projectionDim }
    public var imageSide: Int { preprocessor.configuration.resizedSide }
    public var textWeightBytes: Int { text.weightBytes }

    /// Loads every file from `folder`, verifying each weight: unknown keys, missing keys and shape
    /// mismatches are errors that name the key.
    /// `kernel` is the matrix-product code the weights are prepared for (the fastest this processor
    /// runs unless a test or benchmark asks for another).
    public init(folder: URL, kernel: ProductKernel = .best) throws {
        configuration = try CLIPConfiguration.load(from: folder.appendingPathComponent("config.json"))
        preprocessor = ImagePreprocessor(configuration: try PreprocessorConfiguration.load(folder: folder))
        tokenizer = try CLIPTokenizer(folder: folder, contextLength: configuration.textConfig.maxPositionEmbeddings)
        weights = try Checkpoint(folder: folder)
        let load = WeightLoader(weights, kernel: kernel)
        text = try TextTower(load, configuration.textConfig, projectionDim: configuration.projectionDim)
        vision = try VisionTower(load, configuration.visionConfig, projectionDim: configuration.projectionDim)
        scoring = .softmax(logitScale: try load("logit_scale").base[0])
        derivedWeights = load.storage
        try load.verifyAllUsed()
        let crop = (preprocessor.configuration.cropWidth, preprocessor.configuration.cropHeight)
        let side = configuration.visionConfig.imageSize
        guard case .shortestEdge = preprocessor.configuration.resize, preprocessor.configuration.doCenterCrop, crop == (side, side) else {
            throw CLIPError.invalidConfiguration(
                "preprocessor crop \(crop.0)×\(crop.1) does not give the model's \(side)×\(side) input")
        }
    }

    /// Token ids as the model sees them: up to and including the first end-of-text token. A text with
    /// nothing between the start and end tokens (empty, or only white space) is refused.
    public func tokens(for text: String) throws -> [Int] {
        var ids = try tokenizer.encode(text)
        if let end = ids.firstIndex(of: tokenizer.endToken) { ids = Array(ids[...end]) }
        guard ids.count > 2 else { throw CLIPError.emptyText }
        return ids
    }

    /// Embeds several token sequences in one pass (see `TextTower`: no padding reaches a result).
    public func embed(tokenBatch: [[Int]]) throws -> [[Float]] {
        for ids in tokenBatch {
            // Only the start and end tokens: nothing to embed (the text was empty or only white space).
            guard ids.count > 2 else { throw CLIPError.emptyText }
            guard ids.count <= configuration.textConfig.maxPositionEmbeddings,
                ids.allSatisfy({ $0 >= 0 && $0 < configuration.textConfig.vocabSize })
            else {
                throw CLIPError.invalidTokenizer("token ids do not fit the model's vocabulary or context length")
            }
        }
        return self.text(tokenBatch)
    }

    /// The model input for one image: [3, size, size] planes.
    public func pixelValues(for image: RGBImage) -> [Float] { preprocessor.pixelValues(image) }

    /// The decoder for this model's images: JPEGs reduced by DCT scaling while their short side stays at
    /// least twice the preprocessor's (the resampling from there changes vectors by a cosine under 0.001,
    /// see ReducedDecodeTests), or every pixel when `exact`, as the reference decodes.
    public func imageDecoder(exact: Bool) -> ImageDecoder {
        ImageDecoder(minimumDecodedSide: exact ? nil : 2 * preprocessor.configuration.resizedSide)
    }

    /// Embeds already preprocessed inputs ([3, size, size] each).
    public func embed(pixelValues: [[Float]]) -> [[Float]] { vision(pixelValues) }
}
