import CLIP
import Foundation
import ImageIO
import Testing

/// What the HEIC, AVIF and ICO decoders' differences from Pillow come to in the model's vectors: each
/// fixture embedded from our pixels and from Pillow's (`generate_formats.py`). ICO is exact, HEIC within a
/// level, so their vectors meet the model's own parity bar (0.99999); AVIF's colour planes are filled in
/// another way (see PhoneAndIconFormatTests) and its vectors keep the reduced decode's bar, 0.999.
@Suite struct PhoneFormatVectorTests {
    static let folder = Fixtures.root.appendingPathComponent("formats")
    static let files = ["photo.heic", "rotated.heic", "transposed.heic", "alpha.heic", "photo.avif", "rotated.avif", "transposed.avif",
                        "alpha.avif", "png-entries.ico", "bitmap-32.ico", "bitmap-8.ico"]

    @Test(arguments: files)
    func vectorsMatchPillowsPixels(_ file: String) throws {
        for name in ["tiny-quickgelu", "tiny-siglip"] {
            let model = try ModelFamily.load(folder: Fixtures.model(name))
            let ours = try ImageDecoder().decode(fileAt: Self.folder.appendingPathComponent(file).path)
            let pillow = try ImageDecoder().decode(fileAt: Self.folder.appendingPathComponent("reference/" + file.replacingOccurrences(of: ".", with: "-") + ".png").path)
            let c = cosine(model.embed(image: ours.rgb()), model.embed(image: pillow.rgb()))
            #expect(c >= (file.hasSuffix(".avif") ? 0.999 : 0.99999), "\(file) with \(name): cosine \(c)")
        }
    }
}
