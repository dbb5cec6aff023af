import Foundation
import ImageIO

/// Paths and reference data made by Tests/Fixtures/generate.py.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let models = ["tiny-quickgelu", "tiny-gelu"]
    /// Made by generate_siglip.py.
    static let siglipModels = ["tiny-siglip", "tiny-siglip2"]
    static func model(_ name: String) -> URL { root.appendingPathComponent("models/\(name)") }
    static func image(_ file: String) -> String { root.appendingPathComponent("images/\(file)").path }
    static var imageFiles: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("images").path))?.sorted() ?? []
    }

    struct TokenCase: Decodable, Sendable, CustomTestStringConvertible {
        let text: String
        let ids: [Int]
        var testDescription: String { text.count > 40 ? String(text.prefix(40)) + "…" : text }
    }

    static let tokenCases: [TokenCase] = decode("reference/tokens.json") ?? []

    struct Reference: Decodable {
        struct Text: Decodable { let text: String; let vector: [Float] }
        struct Image: Decodable { let file: String; let vector: [Float] }
        let model: String
        let texts: [Text]
        let images: [Image]
    }

    static func reference(_ model: String) -> Reference? { decode("reference/\(model).json") }

    static func decode<T: Decodable>(_ path: String) -> T? {
        guard let data = try? Data(contentsOf: root.appendingPathComponent(path)) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }

    /// The reference's resized and cropped 8-bit pixels for one image.
    static func referenceCrop(model: String, file: String) throws -> RGBImage {
        try ImageDecoder().decode(fileAt: root.appendingPathComponent("reference/crops/\(model)/\(file).png").path).rgb()
    }

    /// The reference's pixel values ([3, size, size] float32), saved for tiny-gelu only.
    static func referencePixels(model: String, file: String) -> [Float]? {
        guard let data = try? Data(contentsOf: root.appendingPathComponent("reference/pixels/\(model)/\(file).f32")) else { return nil }
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

import Testing

func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) {
        dot += Double(x) * Double(y)
        na += Double(x) * Double(x)
        nb += Double(y) * Double(y)
    }
    return dot / (na.squareRoot() * nb.squareRoot())
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
}
