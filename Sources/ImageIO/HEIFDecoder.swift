import CImageCodecs

/// HEIC/HEIF and AVIF through libheif (Debian's build decodes HEVC with libde265 and AV1 with dav1d):
/// the primary image, with the file's own rotation, mirror and crop applied as the format prescribes
/// (HEIF ignores an EXIF orientation, and so do Pillow's readers), converted to 8-bit RGB or RGBA.
extension ImageDecoder {
    /// libheif counts its initialisations; the process keeps one for its lifetime.
    private static let libheifReady: Bool = heif_init(nil).code == heif_error_Ok

    func decodeHEIF(_ bytes: [UInt8], format: ImageFormat) throws -> RasterImage {
        func failure(_ error: heif_error, _ what: String) -> ImageError {
            let message = error.message.map { String(cString: $0) } ?? "error \(error.code.rawValue)"
            // A file that names a codec this build lacks is unsupported rather than damaged.
            if error.code == heif_error_Unsupported_feature || error.code == heif_error_Unsupported_filetype {
                return .unsupported(format: format, reason: "\(what): \(message)")
            }
            return .corrupt(format: format, reason: "\(what): \(message)")
        }
        guard Self.libheifReady, let context = heif_context_alloc() else {
            throw ImageError.unsupported(format: format, reason: "the HEIF library did not start")
        }
        defer { heif_context_free(context) }
        return try bytes.withUnsafeBufferPointer { buffer in
            let read = heif_context_read_from_memory_without_copy(context, buffer.baseAddress, buffer.count, nil)
            guard read.code == heif_error_Ok else { throw failure(read, "unreadable container") }
            var handle: OpaquePointer?
            let primary = heif_context_get_primary_image_handle(context, &handle)
            guard primary.code == heif_error_Ok, let handle else { throw failure(primary, "no primary image") }
            defer { heif_image_handle_release(handle) }
            // The size after the file's rotation and crop: what the decode returns.
            try checkDimensions(width: Int(heif_image_handle_get_width(handle)), height: Int(heif_image_handle_get_height(handle)))
            let alpha = heif_image_handle_has_alpha_channel(handle) != 0
            guard let options = heif_decoding_options_alloc() else { throw ImageError.unsupported(format: format, reason: "out of memory") }
            defer { heif_decoding_options_free(options) }
            options.pointee.convert_hdr_to_8bit = 1
            var image: OpaquePointer?
            let decoded = heif_decode_image(handle, &image, heif_colorspace_RGB, alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB,
                                            options)
            guard decoded.code == heif_error_Ok, let image else { throw failure(decoded, "the image data does not decode") }
            defer { heif_image_release(image) }
            let width = Int(heif_image_get_width(image, heif_channel_interleaved))
            let height = Int(heif_image_get_height(image, heif_channel_interleaved))
            try checkDimensions(width: width, height: height)
            var stride: Int32 = 0
            guard let plane = heif_image_get_plane_readonly(image, heif_channel_interleaved, &stride) else {
                throw ImageError.corrupt(format: format, reason: "no pixels after decoding")
            }
            let channels = alpha ? 4 : 3
            let rowBytes = width * channels
            var pixels = [UInt8](repeating: 0, count: rowBytes * height)
            pixels.withUnsafeMutableBufferPointer { target in
                for y in 0..<height {
                    (target.baseAddress! + y * rowBytes).update(from: plane + y * Int(stride), count: rowBytes)
                }
            }
            return RasterImage(width: width, height: height, channels: channels, pixels: pixels)
        }
    }
}
