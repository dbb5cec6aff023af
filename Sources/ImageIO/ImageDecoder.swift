import CImageCodecs
import Foundation

/// Decodes JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, HEIC/HEIF and AVIF (primary image) and ICO
/// (largest icon) into 8-bit pixels, upright (EXIF orientation applied; HEIF's own rotation and mirror).
/// Sizes are checked from the header before any pixel is decoded.
public struct ImageDecoder: Sendable {
    public let limits: ImageLimits
    /// With a value, a JPEG is decoded reduced by libjpeg-turbo's DCT scaling and a WebP by libwebp's
    /// scaled decoding (1/2, 1/4 or 1/8: the smallest that keeps the short side at least this long),
    /// several times faster on photos and in a fraction of the memory. nil decodes every pixel: the
    /// reference's pixels, bit for bit.
    public let minimumDecodedSide: Int?
    /// Set by `dimensions(of:)`: every decoder checks the size it read from the header before it
    /// allocates a pixel, and this makes that check end the decode with the size.
    private var stopAfterHeader = false

    public init(limits: ImageLimits = .azure, minimumDecodedSide: Int? = nil) {
        self.limits = limits
        self.minimumDecodedSide = minimumDecodedSide
    }

    /// The reduction (1, 2, 4 or 8) for a JPEG or WebP of this size.
    func reduction(width: Int, height: Int) -> Int {
        guard let minimum = minimumDecodedSide else { return 1 }
        let short = min(width, height)
        return [8, 4, 2].first { (short + $0 - 1) / $0 >= minimum } ?? 1
    }

    private struct HeaderRead: Error {
        let width: Int
        let height: Int
    }

    /// The width and height the header announces, checked against the limits, without decoding a pixel:
    /// what a caller needs to budget the memory a decode will take.
    public func dimensions(of bytes: [UInt8]) throws -> (width: Int, height: Int) {
        var probe = self
        probe.stopAfterHeader = true
        do {
            _ = try probe.decode(bytes)
        } catch let header as HeaderRead {
            return (header.width, header.height)
        }
        // Every format's decoder checks its size first; a file that decodes without one is empty.
        throw ImageError.corrupt(format: ImageFormat(signature: bytes) ?? .png, reason: "no image size in the header")
    }

    /// The size a decode will produce (the header's, reduced as this decoder reduces JPEG and WebP):
    /// what the decoded pixels will take is budgeted from it.
    public func decodedDimensions(of bytes: [UInt8]) throws -> (width: Int, height: Int) {
        let size = try dimensions(of: bytes)
        guard [.jpeg, .webp].contains(ImageFormat(signature: bytes)) else { return size }
        let scale = reduction(width: size.width, height: size.height)
        return ((size.width + scale - 1) / scale, (size.height + scale - 1) / scale)
    }

    /// Reads and decodes a file; its byte size is checked before it is read.
    public func decode(fileAt path: String) throws -> RasterImage { try decode(readFile(at: path)) }

    /// A file's bytes, when it is a regular file within the byte limit (checked before it is read).
    /// `chunk` sees each piece as it arrives, while it is still in the cache: a caller hashes the file
    /// in the same pass.
    public func readFile(at path: String, chunk: (UnsafeRawBufferPointer) -> Void = { _ in }) throws -> [UInt8] {
        // Non-blocking, so that opening a named pipe returns at once (and is then refused as not a
        // regular file); reads of a regular file are unaffected.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? ImageError.fileNotFound(path) : ImageError.unreadable("\(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw ImageError.unreadable("\(path) is not a regular file")
        }
        let size = Int(status.st_size)
        try checkByteCount(size)
        var bytes = [UInt8](repeating: 0, count: size)
        let count = try bytes.withUnsafeMutableBytes { buffer -> Int in
            var filled = 0
            while filled < size {
                let piece = read(descriptor, buffer.baseAddress! + filled, min(1 << 20, size - filled))
                if piece < 0 && errno == EINTR { continue }
                guard piece >= 0 else { throw ImageError.unreadable("\(path): \(String(cString: strerror(errno)))") }
                if piece == 0 { break }  // the file shrank while it was read
                chunk(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[filled..<(filled + piece)]))
                filled += piece
            }
            return filled
        }
        guard count == size else { throw ImageError.unreadable("\(path) changed while it was read") }
        return bytes
    }

    public func decode(_ data: Data) throws -> RasterImage { try decode(Array(data)) }

    public func decode(_ bytes: [UInt8]) throws -> RasterImage {
        try checkByteCount(bytes.count)
        guard let format = ImageFormat(signature: bytes) else { throw ImageError.unknownFormat }
        switch format {
        case .jpeg: return Orientation.apply(Orientation.fromJPEG(bytes), to: try decodeJPEG(bytes))
        case .png: return Orientation.apply(Orientation.fromPNG(bytes), to: try decodePNG(bytes))
        case .webp: return Orientation.apply(Orientation.fromWebP(bytes), to: try decodeWebP(bytes))
        case .gif: return try decodeGIF(bytes)
        case .bmp: return try BMPDecoder(bytes: bytes, check: checkDimensions).decode()
        case .tiff: return try decodeTIFF(bytes)
        case .heif, .avif: return try decodeHEIF(bytes, format: format)
        case .ico: return try ICODecoder(bytes: bytes, decoder: self).decode()
        }
    }

    public func checkByteCount(_ count: Int) throws {
        if count == 0 { throw ImageError.empty }
        if count > limits.maximumBytes { throw ImageError.tooLarge(bytes: count, limit: limits.maximumBytes) }
    }

    func checkDimensions(width: Int, height: Int) throws {
        let range = limits.minimumSide...limits.maximumSide
        guard range.contains(width), range.contains(height) else {
            throw ImageError.dimensionsOutOfRange(width: width, height: height, limits: limits)
        }
        if stopAfterHeader { throw HeaderRead(width: width, height: height) }
    }

    // MARK: - JPEG (libjpeg-turbo)

    private func decodeJPEG(_ bytes: [UInt8]) throws -> RasterImage {
        guard let handle = tjInitDecompress() else { throw ImageError.corrupt(format: .jpeg, reason: "decoder unavailable") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let headerStatus = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(bytes.count), &width, &height, &subsampling, &colorspace)
        }
        guard headerStatus == 0 else { throw ImageError.corrupt(format: .jpeg, reason: jpegMessage(handle)) }
        // A file cut before its frame header reads as 0×0: damaged, not a tiny image.
        guard width > 0, height > 0 else { throw ImageError.corrupt(format: .jpeg, reason: "no frame header") }
        try checkDimensions(width: Int(width), height: Int(height))

        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let gray = colorspace == Int32(TJCS_GRAY.rawValue)
        let (pixelFormat, channels) = cmyk ? (TJPF_CMYK, 4) : gray ? (TJPF_GRAY, 1) : (TJPF_RGB, 3)
        // libjpeg-turbo picks the scale whose output fits the size asked for (its TJSCALED rounding).
        let scale = reduction(width: Int(width), height: Int(height))
        width = (width + Int32(scale) - 1) / Int32(scale)
        height = (height + Int32(scale) - 1) / Int32(scale)
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        // Flags 0: accurate integer IDCT and smooth upsampling, Pillow's defaults. A warning
        // (such as a truncated file) fails the decode, as Pillow refuses truncated images.
        let status = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                tjDecompress2(handle, source.baseAddress, UInt(bytes.count), target.baseAddress, width, 0, height,
                              pixelFormat.rawValue, TJFLAG_STOPONWARNING)
            }
        }
        guard status == 0 else { throw ImageError.corrupt(format: .jpeg, reason: jpegMessage(handle)) }
        guard cmyk else { return RasterImage(width: Int(width), height: Int(height), channels: channels, pixels: pixels) }
        return cmykToRGB(pixels, width: Int(width), height: Int(height), inverted: Self.hasAdobeMarker(bytes))
    }

    private func jpegMessage(_ handle: tjhandle) -> String { String(cString: tjGetErrorStr2(handle)) }

    /// Photoshop writes CMYK JPEGs inverted and marks them with an APP14 "Adobe" segment.
    static func hasAdobeMarker(_ data: [UInt8]) -> Bool {
        var i = 2
        while i + 4 <= data.count, data[i] == 0xFF {
            let marker = data[i + 1]
            if marker == 0xDA { break }
            let length = Int(data[i + 2]) << 8 | Int(data[i + 3])
            guard length >= 2 else { break }
            if marker == 0xEE, i + 9 <= data.count, Array(data[(i + 4)..<(i + 9)]) == Array("Adobe".utf8) { return true }
            i += 2 + length
        }
        return false
    }

    /// Pillow's `cmyk2rgb`: each channel is (255 − K) scaled by (255 − C) / 255, rounded its way.
    private func cmykToRGB(_ cmyk: [UInt8], width: Int, height: Int, inverted: Bool) -> RasterImage {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            let sample = { (k: Int) -> Int in inverted ? 255 - Int(cmyk[4 * i + k]) : Int(cmyk[4 * i + k]) }
            let notBlack = 255 - sample(3)
            for channel in 0..<3 {
                let product = sample(channel) * notBlack + 128
                let scaled = ((product >> 8) + product) >> 8
                rgb[3 * i + channel] = UInt8(clamping: notBlack - scaled)
            }
        }
        return RasterImage(width: width, height: height, channels: 3, pixels: rgb)
    }

    // MARK: - PNG (libpng, through the C decoder)

    func decodePNG(_ bytes: [UInt8]) throws -> RasterImage {
        // IHDR is always first: width and height are bytes 16..<24.
        guard bytes.count >= 24 else { throw ImageError.corrupt(format: .png, reason: "file ends inside the header") }
        let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
        try checkDimensions(width: width, height: height)
        var result = loupe_png_result()
        let status = bytes.withUnsafeBufferPointer { loupe_png_decode($0.baseAddress, bytes.count, UInt32(limits.maximumSide), &result) }
        guard status == 0, let pixels = result.pixels else {
            let message = withUnsafeBytes(of: result.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            throw ImageError.corrupt(format: .png, reason: message)
        }
        defer { loupe_free(pixels) }
        let count = Int(result.width) * Int(result.height) * Int(result.channels)
        return RasterImage(width: Int(result.width), height: Int(result.height), channels: Int(result.channels),
                           pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    // MARK: - WebP (libwebp)

    private func decodeWebP(_ bytes: [UInt8]) throws -> RasterImage {
        var config = WebPDecoderConfig()
        guard WebPInitDecoderConfigInternal(&config, WEBP_DECODER_ABI_VERSION) != 0 else {
            throw ImageError.unsupported(format: .webp, reason: "libwebp's decoder does not match its header")
        }
        let status = bytes.withUnsafeBufferPointer {
            WebPGetFeaturesInternal($0.baseAddress, bytes.count, &config.input, WEBP_DECODER_ABI_VERSION)
        }
        guard status == VP8_STATUS_OK else { throw ImageError.corrupt(format: .webp, reason: "unreadable header (status \(status.rawValue))") }
        guard config.input.has_animation == 0 else { throw ImageError.unsupported(format: .webp, reason: "animated WebP") }
        try checkDimensions(width: Int(config.input.width), height: Int(config.input.height))
        // The same reduction as a JPEG's, by libwebp's own scaler while it decodes.
        let scale = reduction(width: Int(config.input.width), height: Int(config.input.height))
        let width = (Int(config.input.width) + scale - 1) / scale, height = (Int(config.input.height) + scale - 1) / scale
        if scale > 1 {
            config.options.use_scaling = 1
            config.options.scaled_width = Int32(width)
            config.options.scaled_height = Int32(height)
        }
        let channels = config.input.has_alpha != 0 ? 4 : 3
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let decoded = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                config.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB
                config.output.is_external_memory = 1
                config.output.u.RGBA = WebPRGBABuffer(rgba: target.baseAddress, stride: Int32(width * channels), size: target.count)
                return WebPDecode(source.baseAddress, bytes.count, &config)
            }
        }
        WebPFreeDecBuffer(&config.output)
        guard decoded == VP8_STATUS_OK else { throw ImageError.corrupt(format: .webp, reason: "the image data does not decode (status \(decoded.rawValue))") }
        return RasterImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    // MARK: - GIF (giflib), first frame only

    private func decodeGIF(_ bytes: [UInt8]) throws -> RasterImage {
        guard bytes.count >= 13 else { throw ImageError.corrupt(format: .gif, reason: "file ends inside the header") }
        return try bytes.withUnsafeBufferPointer { buffer in
            var cursor = loupe_memory_cursor(data: buffer.baseAddress, size: buffer.count, offset: 0)
            var error: Int32 = 0
            guard let gif = loupe_gif_open(&cursor, &error) else {
                throw ImageError.corrupt(format: .gif, reason: GIFFirstFrame.message(error))
            }
            defer { DGifCloseFile(gif, &error) }
            return try GIFFirstFrame(gif: gif).read(check: checkDimensions)
        }
    }

    // MARK: - TIFF (libtiff)

    private func decodeTIFF(_ bytes: [UInt8]) throws -> RasterImage {
        loupe_tiff_silence()
        return try bytes.withUnsafeBufferPointer { buffer in
            var cursor = loupe_memory_cursor(data: buffer.baseAddress, size: buffer.count, offset: 0)
            guard let tiff = loupe_tiff_open(&cursor) else { throw ImageError.corrupt(format: .tiff, reason: "unreadable header") }
            defer { TIFFClose(tiff) }
            var width: UInt32 = 0, height: UInt32 = 0
            guard loupe_tiff_dimensions(tiff, &width, &height) != 0 else {
                throw ImageError.corrupt(format: .tiff, reason: "no image size in the header")
            }
            try checkDimensions(width: Int(width), height: Int(height))
            var raster = [UInt32](repeating: 0, count: Int(width) * Int(height))
            // libtiff converts any photometric to RGBA and applies the TIFF orientation tag.
            let ok = raster.withUnsafeMutableBufferPointer {
                TIFFReadRGBAImageOriented(tiff, width, height, $0.baseAddress, Int32(ORIENTATION_TOPLEFT), 1)
            }
            guard ok != 0 else { throw ImageError.corrupt(format: .tiff, reason: "the image data does not decode") }
            var pixels = [UInt8](repeating: 0, count: raster.count * 4)
            for (i, packed) in raster.enumerated() {
                pixels[4 * i] = UInt8(packed & 0xFF)
                pixels[4 * i + 1] = UInt8((packed >> 8) & 0xFF)
                pixels[4 * i + 2] = UInt8((packed >> 16) & 0xFF)
                pixels[4 * i + 3] = UInt8(packed >> 24)
            }
            return RasterImage(width: Int(width), height: Int(height), channels: 4, pixels: pixels)
        }
    }
}
