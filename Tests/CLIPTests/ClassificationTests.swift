import CLIP
import Foundation
import ImageIO
import Testing

/// Zero-shot classification against transformers' `logits_per_image` turned into probabilities
/// (reference/classification.json, from generate_classification.py), and the family registry.
@Suite struct ClassificationTests {
    struct Reference: Decodable {
        struct Image: Decodable {
            let file: String
            let probabilities: [Float]
        }
        struct Model: Decodable {
            let images: [Image]
        }
        let labels: [String]
        let models: [String: Model]
    }

    static let reference = Result {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("reference/classification.json")))
    }

    @Test(arguments: Fixtures.models)
    func probabilitiesEqualTheReference(_ name: String) throws {
        let reference = try Self.reference.get()
        let expected = try #require(reference.models[name])
        let model = try ModelFamily.load(folder: Fixtures.model(name))
        #expect(model.family == .clip)
        let labels = try model.embed(texts: reference.labels)
        #expect(expected.images.count == Fixtures.imageFiles.count)
        for image in expected.images {
            // The reference's pixels: every pixel decoded.
            let vector = model.embed(image: try model.imageDecoder(exact: true).decode(fileAt: Fixtures.image(image.file)).rgb())
            let probabilities = model.labelProbabilities(image: vector, labels: labels)
            let worst = zip(probabilities, image.probabilities).map { abs($0 - $1) }.max() ?? 1
            #expect(worst <= 1e-5, "\(name) \(image.file): \(probabilities) against \(image.probabilities)")
            #expect(abs(probabilities.reduce(0, +) - 1) <= 1e-5)
        }
    }

    @Test func scoringRules() {
        // Softmax: exp(logit scale) multiplies the cosines; the largest cosine wins, the sum is 1.
        let softmax = LabelScoring.softmax(logitScale: log(100)).probabilities(cosines: [0.30, 0.25, 0.20])
        #expect(abs(softmax[0] - 1 / (1 + exp(-5) + exp(-10))) <= 1e-6)
        #expect(abs(softmax.reduce(0, +) - 1) <= 1e-6)
        // Sigmoid: each label on its own.
        let sigmoid = LabelScoring.sigmoid(logitScale: log(10), logitBias: -2).probabilities(cosines: [0.2, 0.5])
        #expect(abs(sigmoid[0] - 0.5) <= 1e-6 && abs(sigmoid[1] - 1 / (1 + exp(-3))) <= 1e-6)
    }

    /// `config.json`'s model_type picks the family; an unknown one is refused by name with the list of those
    /// Loupe runs, and a configuration without one is read as CLIP.
    @Test func theModelTypeChoosesTheFamily() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-family-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("config.json")
        try Data(#"{"model_type": "siglip2_naflex"}"#.utf8).write(to: config)
        #expect(throws: CLIPError.unsupportedModelType("siglip2_naflex", supported: ["clip", "siglip"])) { try ModelFamily.load(folder: folder) }
        #expect(CLIPError.unsupportedModelType("siglip2_naflex", supported: ["clip", "siglip"]).description.contains("siglip2_naflex"))
        try Data(#"{"projection_dim": 16}"#.utf8).write(to: config)
        #expect(try ModelFamily.family(of: folder) == .clip)
        try Data("[]".utf8).write(to: config)
        #expect(throws: CLIPError.self) { try ModelFamily.family(of: folder) }
    }
}
