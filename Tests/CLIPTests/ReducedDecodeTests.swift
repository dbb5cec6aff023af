import CImageCodecs
import CLIP
import Foundation
import ImageIO
import LoupeTestSupport
import Testing

/// Large JPEGs and WebPs decoded reduced (DCT scaling, libwebp's scaler; the default) against every pixel
/// decoded (the reference's path): the sizes the libraries give, and vectors that stay within cosine 0.999.
@Suite struct ReducedDecodeTests {
    /// A photo-like picture: smooth light, a few edges, fine texture and noise, so that reducing it loses
    /// real detail, as it would on a camera's picture.
    static func photo(width: Int, height: Int, seed: UInt64) -> RGBImage {
        var generator = SeededGenerator(seed: seed)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let phase = Double.random(in: 0..<6.28, using: &generator)
        for y in 0..<height {
            for x in 0..<width {
                let u = Double(x) / Double(width), v = Double(y) / Double(height)
                let light = 0.5 + 0.35 * sin(3 * u + phase) * cos(2 * v)
                let edge = (u - 0.4) * (u - 0.4) + (v - 0.55) * (v - 0.55) < 0.04 ? 0.3 : 0.0
                let texture = 0.08 * sin(Double(x) * 0.9) * sin(Double(y) * 1.1)
                for channel in 0..<3 {
                    let noise = Double(Int(generator.next() % 21) - 10) / 255
                    let value = light + edge * Double(channel) / 2 + texture + noise
                    pixels[(y * width + x) * 3 + channel] = UInt8(max(0, min(255, (value * 255).rounded())))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static func jpeg(width: Int, height: Int, seed: UInt64) throws -> [UInt8] {
        Array(try Thumbnail.jpeg(from: photo(width: width, height: height, seed: seed), maximumSide: max(width, height), quality: 92))
    }

    /// A lossy WebP (quality 90) through libwebp's encoder.
    static func webp(width: Int, height: Int, seed: UInt64) throws -> [UInt8] {
        let image = photo(width: width, height: height, seed: seed)
        var output: UnsafeMutablePointer<UInt8>?
        let size = image.pixels.withUnsafeBufferPointer { WebPEncodeRGB($0.baseAddress, Int32(width), Int32(height), Int32(width * 3), 90, &output) }
        defer { WebPFree(output) }
        guard size > 0, let output else { throw ImageError.unsupported(format: .webp, reason: "the encoder failed") }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }

    /// JPEG (DCT scaling) and WebP (libwebp's scaler) are reduced by the same rule.
    @Test(arguments: ["jpeg", "webp"])
    func theScaleKeepsTheShortSideAtLeastTheMinimum(_ format: String) throws {
        let bytes = try format == "webp" ? Self.webp(width: 2000, height: 1500, seed: 2) : Self.jpeg(width: 2000, height: 1500, seed: 1)
        func size(_ minimum: Int?) throws -> [Int] {
            let image = try ImageDecoder(minimumDecodedSide: minimum).decode(bytes)
            return [image.width, image.height]
        }
        #expect(try ImageDecoder(minimumDecodedSide: 300).decodedDimensions(of: bytes) == (500, 375))
        #expect(try size(nil) == [2000, 1500])
        #expect(try size(448) == [1000, 750])  // 1/4 would give 375
        #expect(try size(300) == [500, 375])
        #expect(try size(100) == [250, 188])  // 1/8, rounded up as libjpeg-turbo rounds
        #expect(try size(1500) == [2000, 1500])
        #expect(try size(2000) == [2000, 1500])  // never enlarged, never below the minimum by choice
    }

    /// Images whose short side is under twice the model's input are decoded in full either way: every
    /// fixture gives the same pixels.
    @Test func smallImagesAreDecodedExactly() throws {
        let model = try CLIPModel(folder: Fixtures.model("tiny-quickgelu"))
        for file in Fixtures.imageFiles {
            let exact = try model.imageDecoder(exact: true).decode(fileAt: Fixtures.image(file))
            #expect(try model.imageDecoder().decode(fileAt: Fixtures.image(file)) == exact, "\(file)")
        }
    }

    @Test(arguments: [(4032, 3024, "jpeg"), (3000, 4000, "jpeg"), (1920, 1080, "jpeg"), (4032, 3024, "webp"), (1920, 1080, "webp")])
    func reducedDecodingKeepsTheVector(_ size: (Int, Int, String)) throws {
        let model = try CLIPModel(folder: Fixtures.model("tiny-quickgelu"))
        let bytes = try size.2 == "webp" ? Self.webp(width: size.0, height: size.1, seed: UInt64(size.0))
            : Self.jpeg(width: size.0, height: size.1, seed: UInt64(size.0))
        let reduced = try model.imageDecoder().decode(bytes)
        #expect(min(reduced.width, reduced.height) < min(size.0, size.1))
        let fast = model.embed(image: reduced.rgb())
        let exact = model.embed(image: try model.imageDecoder(exact: true).decode(bytes).rgb())
        func norm(_ v: [Float]) -> Float { v.map { $0 * $0 }.reduce(0, +).squareRoot() }
        let cosine = zip(fast, exact).map { $0 * $1 }.reduce(0, +) / (norm(fast) * norm(exact))
        #expect(cosine >= 0.999, "\(size.2) cosine \(cosine) at \(size.0)×\(size.1), decoded at \(reduced.width)×\(reduced.height)")
    }
}
