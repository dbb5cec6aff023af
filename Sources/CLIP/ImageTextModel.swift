import Foundation
import ImageIO
import Tensor

/// What every caller needs from an image–text model, whatever its family: texts and images prepared,
/// batches embedded into one space of L2-normalised vectors, and the family's own way of turning
/// similarities into label probabilities. A family is one type behind this protocol, registered in
/// `ModelFamily`; the engine's pieces (products, norms, attention, activations, int8) are shared.
public protocol ImageTextModel: AnyObject, Sendable {
    var family: ModelFamily { get }
    /// The length of every vector this model returns.
    var dimension: Int { get }
    /// The bytes of weight matrices embedding one text reads, in the precision the model was loaded in.
    var textWeightBytes: Int { get }
    /// How this model's similarities become label probabilities.
    var scoring: LabelScoring { get }

    /// Token ids as the model takes them.
    func tokens(for text: String) throws -> [Int]
    /// Embeds token sequences from `tokens(for:)` in one pass.
    func embed(tokenBatch: [[Int]]) throws -> [[Float]]
    /// The model input for one image.
    func pixelValues(for image: RGBImage) -> [Float]
    /// Embeds inputs from `pixelValues(for:)` in one pass.
    func embed(pixelValues: [[Float]]) -> [[Float]]
    /// The decoder for this model's images (reduced decoding where it keeps the vectors; every pixel when `exact`).
    func imageDecoder(exact: Bool) -> ImageDecoder
    /// The shorter side images are resized to before the model's crop (video frames are decoded at it).
    var imageSide: Int { get }
}

extension ImageTextModel {
    public func embed(text: String) throws -> [Float] { try embed(tokens: tokens(for: text)) }
    public func embed(tokens: [Int]) throws -> [Float] { try embed(tokenBatch: [tokens])[0] }
    public func embed(texts: [String]) throws -> [[Float]] { try embed(tokenBatch: texts.map { try tokens(for: $0) }) }
    public func embed(images: [RGBImage]) -> [[Float]] { images.isEmpty ? [] : embed(pixelValues: images.map(pixelValues)) }
    public func embed(image: RGBImage) -> [Float] { embed(images: [image])[0] }
    public func imageDecoder() -> ImageDecoder { imageDecoder(exact: false) }

    /// The probability of each label for an image, from this model's vectors of both: what transformers'
    /// `logits_per_image` gives once the family's scoring is applied.
    public func labelProbabilities(image: [Float], labels: [[Float]]) -> [Float] {
        scoring.probabilities(image: image, labels: labels)
    }
}

/// How a family turns an image's cosine similarity to each label into probabilities.
public enum LabelScoring: Sendable, Equatable {
    /// CLIP: a softmax across the labels of exp(logitScale) · cos; the probabilities sum to 1.
    case softmax(logitScale: Float)
    /// SigLIP: an independent sigmoid per label of exp(logitScale) · cos + logitBias.
    case sigmoid(logitScale: Float, logitBias: Float)

    /// Each label's probability for an image, from the two L2-normalised vectors.
    public func probabilities(image: [Float], labels: [[Float]]) -> [Float] {
        probabilities(cosines: labels.map { label in zip(image, label).reduce(0) { $0 + $1.0 * $1.1 } })
    }

    public func probabilities(cosines: [Float]) -> [Float] {
        switch self {
        case .softmax(let logitScale):
            let logits = cosines.map { exp(logitScale) * $0 }
            let largest = logits.max() ?? 0
            let exponentials = logits.map { exp($0 - largest) }
            let total = exponentials.reduce(0, +)
            return exponentials.map { $0 / total }
        case .sigmoid(let logitScale, let logitBias):
            return cosines.map { 1 / (1 + exp(-(exp(logitScale) * $0 + logitBias))) }
        }
    }
}

/// The model families Loupe runs, picked by `config.json`'s `model_type`.
public enum ModelFamily: String, CaseIterable, Sendable {
    case clip
    case siglip

    /// Loads a model folder with the family its `config.json` names. A folder without `model_type` is
    /// read as CLIP (configurations older than transformers 4 did not write it).
    public static func load(folder: URL, kernel: ProductKernel = .best) throws -> any ImageTextModel {
        switch try family(of: folder) {
        case .clip: try CLIPModel(folder: folder, kernel: kernel)
        case .siglip: try SiglipModel(folder: folder, kernel: kernel)
        }
    }

    public static func family(of folder: URL) throws -> ModelFamily {
        let url = folder.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CLIPError.invalidConfiguration("config.json is not a JSON object")
        }
        guard let type = object["model_type"] else { return .clip }
        guard let name = type as? String, let family = ModelFamily(rawValue: name) else {
            throw CLIPError.unsupportedModelType("\(type)", supported: allCases.map(\.rawValue))
        }
        return family
    }
}
