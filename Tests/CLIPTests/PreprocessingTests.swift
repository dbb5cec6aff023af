import Foundation
import ImageIO
import Testing

@testable import CLIP

/// Resized pixels against `CLIPImageProcessorPil` and `SiglipImageProcessorPil` (bicubic and bilinear).
/// Lossless inputs must match exactly. JPEG inputs
/// are decoded by two libjpeg-turbo builds (Debian's here, Pillow's bundled one in the reference);
/// both use the accurate integer IDCT, so they also match exactly (tolerance 0), measured.
@Suite struct PreprocessingTests {
    static let cases: [(model: String, file: String)] = (Fixtures.models + Fixtures.siglipModels).flatMap { model in
        Fixtures.imageFiles.map { (model, $0) }
    }

    static func preprocessor(_ model: String) throws -> ImagePreprocessor {
        let defaults = Fixtures.siglipModels.contains(model) ? PreprocessorConfiguration.siglip : PreprocessorConfiguration()
        return ImagePreprocessor(configuration: try PreprocessorConfiguration.load(folder: Fixtures.model(model), defaults: defaults))
    }

    @Test(arguments: cases)
    func resizedPixelsEqualTheReference(_ model: String, _ file: String) throws {
        let image = try ImageDecoder().decode(fileAt: Fixtures.image(file)).rgb()
        let ours = try Self.preprocessor(model).resizedAndCropped(image)
        let reference = try Fixtures.referenceCrop(model: model, file: file)
        #expect(ours.width == reference.width && ours.height == reference.height)
        let differing = zip(ours.pixels, reference.pixels).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(ours.pixels.count) samples differ")
    }

    @Test(arguments: Fixtures.imageFiles)
    func pixelValuesEqualTheReference(_ file: String) throws {
        let model = "tiny-gelu"
        let image = try ImageDecoder().decode(fileAt: Fixtures.image(file)).rgb()
        let ours = try Self.preprocessor(model).pixelValues(image)
        let reference = try #require(Fixtures.referencePixels(model: model, file: file))
        #expect(ours.count == reference.count)
        // Same float32 operations in the same order: bit-identical.
        #expect(maxAbsDifference(ours, reference) == 0)
    }

    @Test func resizeTruncatesTheLongEdgeLikeTheReference() throws {
        let preprocessor = try Self.preprocessor("tiny-quickgelu")
        #expect(preprocessor.resizedSize(width: 640, height: 480) == (298, 224))
        #expect(preprocessor.resizedSize(width: 480, height: 640) == (224, 298))
        #expect(preprocessor.resizedSize(width: 100, height: 100) == (224, 224))
    }

    @Test func malformedPreprocessorConfigurationsAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-pre-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("preprocessor_config.json")
        for body in [#"{"resample": 0}"#, #"{"resample": 1}"#, #"{"image_std": [0, 1, 1]}"#, #"{"size": {"height": 3}}"#, #"{"size": -4}"#, "[]"] {
            try Data(body.utf8).write(to: url)
            #expect(throws: CLIPError.self, "\(body)") { try PreprocessorConfiguration.load(from: url) }
        }
    }
}
