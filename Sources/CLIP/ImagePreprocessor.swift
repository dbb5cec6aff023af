import Foundation
import ImageIO

/// `preprocessor_config.json`: every number preprocessing uses comes from here. Keys a file leaves out
/// take the defaults of the family's image processor (`CLIPImageProcessor` or `SiglipImageProcessor`).
public struct PreprocessorConfiguration: Codable, Sendable, Equatable {
    /// What the resize makes of an image: its shortest edge this long (CLIP, then a centre crop), or
    /// exactly this size (SigLIP, no crop).
    public enum ResizeTarget: Sendable, Equatable {
        case shortestEdge(Int)
        case size(width: Int, height: Int)
    }

    public var doResize = true
    public var resize = ResizeTarget.shortestEdge(224)
    public var resample = 3
    public var doCenterCrop = true
    public var cropHeight = 224
    public var cropWidth = 224
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Double] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Double] = [0.26862954, 0.26130258, 0.27577711]

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", size, resample, doCenterCrop = "do_center_crop", cropSize = "crop_size"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std"
    }

    /// `size` and `crop_size` are a bare number in older files and an object in newer ones.
    private struct Size: Codable {
        var shortestEdge: Int?
        var height: Int?
        var width: Int?
        enum CodingKeys: String, CodingKey { case shortestEdge = "shortest_edge", height, width }
    }

    public init() {}

    /// `SiglipImageProcessor`'s defaults.
    public static let siglip: PreprocessorConfiguration = {
        var settings = PreprocessorConfiguration()
        settings.resize = .size(width: 224, height: 224)
        settings.doCenterCrop = false
        settings.imageMean = [0.5, 0.5, 0.5]
        settings.imageStd = [0.5, 0.5, 0.5]
        return settings
    }()

    /// The decoder's `userInfo` key for the defaults of keys a file leaves out.
    static let defaultsKey = CodingUserInfoKey(rawValue: "loupe.preprocessor.defaults")!

    public init(from decoder: Decoder) throws {
        self = decoder.userInfo[Self.defaultsKey] as? PreprocessorConfiguration ?? PreprocessorConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? doResize
        if let edge = try? c.decode(Int.self, forKey: .size) {
            resize = .shortestEdge(edge)
        } else if let size = try c.decodeIfPresent(Size.self, forKey: .size) {
            if let edge = size.shortestEdge {
                resize = .shortestEdge(edge)
            } else if let height = size.height, let width = size.width {
                resize = .size(width: width, height: height)
            } else {
                throw CLIPError.invalidConfiguration("preprocessor size must give shortest_edge, or height and width")
            }
        }
        resample = try c.decodeIfPresent(Int.self, forKey: .resample) ?? resample
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? doCenterCrop
        if let edge = try? c.decode(Int.self, forKey: .cropSize) {
            (cropHeight, cropWidth) = (edge, edge)
        } else if let crop = try c.decodeIfPresent(Size.self, forKey: .cropSize) {
            guard let height = crop.height, let width = crop.width else {
                throw CLIPError.invalidConfiguration("preprocessor crop_size must give height and width")
            }
            (cropHeight, cropWidth) = (height, width)
        }
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? doRescale
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? doNormalize
        imageMean = try c.decodeIfPresent([Double].self, forKey: .imageMean) ?? imageMean
        imageStd = try c.decodeIfPresent([Double].self, forKey: .imageStd) ?? imageStd
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(doResize, forKey: .doResize)
        switch resize {
        case .shortestEdge(let edge): try c.encode(Size(shortestEdge: edge), forKey: .size)
        case .size(let width, let height): try c.encode(Size(height: height, width: width), forKey: .size)
        }
        try c.encode(resample, forKey: .resample)
        try c.encode(doCenterCrop, forKey: .doCenterCrop)
        try c.encode(Size(height: cropHeight, width: cropWidth), forKey: .cropSize)
        try c.encode(doRescale, forKey: .doRescale)
        try c.encode(rescaleFactor, forKey: .rescaleFactor)
        try c.encode(doNormalize, forKey: .doNormalize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
    }

    public static func load(from url: URL, defaults: PreprocessorConfiguration = PreprocessorConfiguration()) throws -> PreprocessorConfiguration {
        guard let data = try? Data(contentsOf: url) else { throw CLIPError.missingFile(url.path) }
        return try decode(data, from: url.lastPathComponent, defaults: defaults)
    }

    /// A model folder's image-processor settings: `preprocessor_config.json`, or the `image_processor`
    /// object of `processor_config.json`, where transformers 5 saves a whole processor's settings.
    public static func load(folder: URL, defaults: PreprocessorConfiguration = PreprocessorConfiguration()) throws -> PreprocessorConfiguration {
        let plain = folder.appendingPathComponent("preprocessor_config.json")
        if FileManager.default.fileExists(atPath: plain.path) { return try load(from: plain, defaults: defaults) }
        let combined = folder.appendingPathComponent("processor_config.json")
        guard let data = try? Data(contentsOf: combined) else { throw CLIPError.missingFile(plain.path + " (or processor_config.json)") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let nested = object["image_processor"] as? [String: Any],
            let settings = try? JSONSerialization.data(withJSONObject: nested)
        else { throw CLIPError.invalidConfiguration("processor_config.json has no image_processor object") }
        return try decode(settings, from: "processor_config.json", defaults: defaults)
    }

    private static func decode(_ data: Data, from file: String, defaults: PreprocessorConfiguration) throws -> PreprocessorConfiguration {
        let configuration: PreprocessorConfiguration
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[defaultsKey] = defaults
            configuration = try decoder.decode(PreprocessorConfiguration.self, from: data)
        } catch let error as CLIPError {
            throw error
        } catch {
            throw CLIPError.invalidConfiguration("\(file): \(error)")
        }
        try configuration.validate()
        return configuration
    }

    /// The longest side the resize produces: a decoder that keeps twice this on the short side loses
    /// nothing the resampling would keep.
    public var resizedSide: Int {
        switch resize {
        case .shortestEdge(let edge): edge
        case .size(let width, let height): max(width, height)
        }
    }

    var filter: Resampler.Filter? { Resampler.Filter(rawValue: resample) }

    func validate() throws {
        let sides: [Int]
        switch resize {
        case .shortestEdge(let edge): sides = [edge]
        case .size(let width, let height): sides = [width, height]
        }
        guard sides.allSatisfy({ $0 > 0 }), cropWidth > 0, cropHeight > 0 else {
            throw CLIPError.invalidConfiguration("preprocessor sizes must be positive")
        }
        guard filter != nil else {
            throw CLIPError.invalidConfiguration("resample \(resample) is not supported; 2 (bilinear) and 3 (bicubic) are")
        }
        guard imageMean.count == 3, imageStd.count == 3, imageStd.allSatisfy({ $0 > 0 }) else {
            throw CLIPError.invalidConfiguration("image_mean and image_std need three values, std positive")
        }
    }
}

/// Image preprocessing as the reference's Pillow image processors do it: CLIP's resize of the shortest edge
/// and centre crop, or SigLIP's resize to a fixed size, with the configured filter; rescale, normalise,
/// channels first.
public struct ImagePreprocessor: Sendable {
    public let configuration: PreprocessorConfiguration

    public init(configuration: PreprocessorConfiguration) { self.configuration = configuration }

    /// The size the reference resizes to: the shortest edge becomes `shortestEdge`, the other edge
    /// is scaled and truncated (not rounded).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let edge: Int
        switch configuration.resize {
        case .size(let width, let height): return (width, height)
        case .shortestEdge(let shortest): edge = shortest
        }
        if width <= height {
            return (edge, Int(Double(edge) * Double(height) / Double(width)))
        }
        return (Int(Double(edge) * Double(width) / Double(height)), edge)
    }

    /// Resize and crop, still 8-bit: the part that must equal the reference exactly.
    public func resizedAndCropped(_ image: RGBImage) -> RGBImage {
        var image = image
        if configuration.doResize {
            let size = resizedSize(width: image.width, height: image.height)
            image = Resampler.resize(image, width: size.width, height: size.height, filter: configuration.filter ?? .bicubic)
        }
        if configuration.doCenterCrop {
            image = centerCrop(image, width: configuration.cropWidth, height: configuration.cropHeight)
        }
        return image
    }

    /// The model's input: [3, height, width] float planes.
    public func pixelValues(_ image: RGBImage) -> [Float] {
        let image = resizedAndCropped(image)
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        let mean = configuration.imageMean.map { Float($0) }
        let std = configuration.imageStd.map { Float($0) }
        for i in 0..<plane {
            for channel in 0..<3 {
                // Rescaled in double, stored as float32, then normalised in float32, as the reference.
                var value = Float(image.pixels[3 * i + channel])
                if configuration.doRescale { value = Float(Double(image.pixels[3 * i + channel]) * configuration.rescaleFactor) }
                if configuration.doNormalize { value = (value - mean[channel]) / std[channel] }
                out[channel * plane + i] = value
            }
        }
        return out
    }

    /// Crops the centre; a side smaller than the crop is padded with zeros around the image.
    func centerCrop(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        if image.width == width && image.height == height { return image }
        let top = (image.height - height) / 2
        let left = (image.width - width) / 2
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sourceY = y + top
            guard sourceY >= 0 && sourceY < image.height else { continue }
            for x in 0..<width {
                let sourceX = x + left
                guard sourceX >= 0 && sourceX < image.width else { continue }
                for channel in 0..<3 {
                    out[(y * width + x) * 3 + channel] = image.pixels[(sourceY * image.width + sourceX) * 3 + channel]
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
