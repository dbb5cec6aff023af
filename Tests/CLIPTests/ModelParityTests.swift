import Foundation
import ImageIO
import Tensor
import Testing

@testable import CLIP

/// Embeddings against transformers' `CLIPModel` in float32 on the same (rounded) weights, with every
/// float32 matrix-product kernel this processor runs. Tolerance: cosine ≥ 0.99999 and max abs difference
/// ≤ 1e-4 for every vector.
@Suite struct ModelParityTests {
    static let kernels = ProductKernel.allCases.filter { $0.isSupported && $0.isFloat32 }

    static let models: [String: Result<CLIPModel, Error>] = Dictionary(uniqueKeysWithValues: Fixtures.models.flatMap { name in
        kernels.map { kernel in ("\(name)/\(kernel)", Result { try CLIPModel(folder: Fixtures.model(name), kernel: kernel) }) }
    })

    static func model(_ name: String, _ kernel: ProductKernel = .best) throws -> CLIPModel {
        try #require(models["\(name)/\(kernel)"]).get()
    }

    static func check(_ ours: [Float], _ reference: [Float], _ label: String) {
        #expect(ours.count == reference.count, "\(label): dimension")
        #expect(cosine(ours, reference) >= 0.99999, "\(label): cosine \(cosine(ours, reference))")
        #expect(maxAbsDifference(ours, reference) <= 1e-4, "\(label): max abs \(maxAbsDifference(ours, reference))")
    }

    @Test(arguments: Fixtures.models, kernels)
    func textEmbeddingsMatchTheReference(_ name: String, _ kernel: ProductKernel) throws {
        let model = try Self.model(name, kernel)
        let reference = try #require(Fixtures.reference(name))
        #expect(reference.texts.count >= 20)
        for text in reference.texts {
            Self.check(try model.embed(text: text.text), text.vector, "\(name) \(kernel) text \(text.text.prefix(30))")
        }
    }

    @Test(arguments: Fixtures.models, kernels)
    func imageEmbeddingsMatchTheReferenceOneByOneAndBatched(_ name: String, _ kernel: ProductKernel) throws {
        let model = try Self.model(name, kernel)
        let reference = try #require(Fixtures.reference(name))
        #expect(reference.images.count == Fixtures.imageFiles.count)
        let images = try reference.images.map { try ImageDecoder().decode(fileAt: Fixtures.image($0.file)).rgb() }
        let batched = model.embed(images: images)
        for (index, expected) in reference.images.enumerated() {
            Self.check(model.embed(image: images[index]), expected.vector, "\(name) \(kernel) image \(expected.file)")
            Self.check(batched[index], expected.vector, "\(name) \(kernel) batched image \(expected.file)")
        }
    }

    /// The 8-bit mode: every fixture vector within cosine 0.995 of the reference (the bar), one
    /// by one and batched. Runs where the processor has AVX-512 VNNI (the machines CI runs on do).
    @Test(.enabled(if: ProductKernel.int8.isSupported), arguments: Fixtures.models)
    func int8EmbeddingsStayCloseToTheReference(_ name: String) throws {
        let model = try CLIPModel(folder: Fixtures.model(name), kernel: .int8)
        let reference = try #require(Fixtures.reference(name))
        var worst = 1.0
        for text in reference.texts {
            worst = min(worst, cosine(try model.embed(text: text.text), text.vector))
        }
        let images = try reference.images.map { try ImageDecoder().decode(fileAt: Fixtures.image($0.file)).rgb() }
        let batched = model.embed(images: images)
        for (index, expected) in reference.images.enumerated() {
            worst = min(worst, cosine(model.embed(image: images[index]), expected.vector), cosine(batched[index], expected.vector))
        }
        #expect(worst >= 0.995, "\(name): lowest cosine \(worst)")
        // Not float32 in disguise: rounding to 8 bits must show.
        #expect(worst < 0.99999, "\(name): lowest cosine \(worst)")
    }

    @Test func vectorsAreUnitLength() throws {
        let model = try Self.model("tiny-gelu")
        let vector = try model.embed(text: "a blue house")
        #expect(vector.count == model.dimension)
        #expect(abs(vector.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
    }

    @Test func emptyTextIsAClearError() throws {
        let model = try Self.model("tiny-gelu")
        for text in ["", "   ", "\n\t"] {
            #expect(throws: CLIPError.emptyText) { try model.embed(text: text) }
        }
    }

    @Test func textEndingEarlyIsPooledAtTheFirstEndToken() throws {
        let model = try Self.model("tiny-gelu")
        // The reference pools at the first end token; what follows it cannot change the vector.
        #expect(try model.embed(text: "a house <end_of_text> and more") == model.embed(text: "a house <end_of_text>"))
    }
}

@Suite struct TextBatchTests {
    /// Texts of different lengths in one pass give what each gives alone (and so the reference).
    @Test func batchedTextsEqualSingleTexts() throws {
        let model = try CLIPModel(folder: Fixtures.model("tiny-quickgelu"))
        let reference = try #require(Fixtures.reference("tiny-quickgelu"))
        let texts = reference.texts.map(\.text)
        let batched = try model.embed(texts: texts)
        for (index, text) in reference.texts.enumerated() {
            ModelParityTests.check(batched[index], text.vector, "batched \(text.text.prefix(20))")
        }
    }
}
