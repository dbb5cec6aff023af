import CImageCodecs

/// Reads the first frame of a GIF onto its logical screen, as RGBA: pixels outside the frame and
/// the transparent colour get alpha 0. A frame that reaches past the screen enlarges it, as Pillow
/// does, so the size checked against the limits is the one whose pixels are allocated.
struct GIFFirstFrame {
    let gif: UnsafeMutablePointer<GifFileType>

    /// giflib's message for an error code. Some of its failures (a file cut right after an image
    /// descriptor) leave the code unset, and it has no message for that: never nil here.
    static func message(_ code: Int32) -> String {
        GifErrorString(code).map { String(cString: $0) } ?? "the file ends before the image data"
    }

    /// `check` sees the canvas size before a pixel is allocated, and may stop the decode there.
    func read(check: (_ width: Int, _ height: Int) throws -> Void) throws -> RasterImage {
        var transparentIndex = -1
        var record = UNDEFINED_RECORD_TYPE
        while DGifGetRecordType(gif, &record) == GIF_OK {
            switch record {
            case EXTENSION_RECORD_TYPE:
                var code: Int32 = 0
                var extensionData: UnsafeMutablePointer<GifByteType>?
                guard DGifGetExtension(gif, &code, &extensionData) == GIF_OK else { throw failure() }
                while let block = extensionData {
                    // Graphic control block: [size=4, flags, delay lo, delay hi, transparent index].
                    if code == GRAPHICS_EXT_FUNC_CODE, block[0] >= 4, block[1] & 1 == 1 { transparentIndex = Int(block[4]) }
                    guard DGifGetExtensionNext(gif, &extensionData) == GIF_OK else { throw failure() }
                }
            case IMAGE_DESC_RECORD_TYPE:
                guard DGifGetImageDesc(gif) == GIF_OK else { throw failure() }
                let descriptor = gif.pointee.Image
                let width = max(Int(gif.pointee.SWidth), Int(descriptor.Left) + Int(descriptor.Width))
                let height = max(Int(gif.pointee.SHeight), Int(descriptor.Top) + Int(descriptor.Height))
                try check(width, height)
                return try frame(width: width, height: height, transparentIndex: transparentIndex)
            case TERMINATE_RECORD_TYPE:
                throw ImageError.corrupt(format: .gif, reason: "the file has no image")
            default:
                break
            }
        }
        throw failure()
    }

    private func failure() -> ImageError {
        .corrupt(format: .gif, reason: Self.message(gif.pointee.Error))
    }

    private func frame(width: Int, height: Int, transparentIndex: Int) throws -> RasterImage {
        let descriptor = gif.pointee.Image
        guard let colorMap = descriptor.ColorMap ?? gif.pointee.SColorMap else {
            throw ImageError.corrupt(format: .gif, reason: "no colour table")
        }
        let left = Int(descriptor.Left), top = Int(descriptor.Top)
        let frameWidth = Int(descriptor.Width), frameHeight = Int(descriptor.Height)
        guard frameWidth > 0, frameHeight > 0 else { throw ImageError.corrupt(format: .gif, reason: "empty frame") }
        var indices = [GifPixelType](repeating: 0, count: frameWidth * frameHeight)
        // Interlaced frames arrive in four passes over the rows.
        let passes: [(start: Int, step: Int)] = descriptor.Interlace ? [(0, 8), (4, 8), (2, 4), (1, 2)] : [(0, 1)]
        for pass in passes {
            for row in stride(from: pass.start, to: frameHeight, by: pass.step) {
                let status = indices.withUnsafeMutableBufferPointer {
                    DGifGetLine(gif, $0.baseAddress! + row * frameWidth, Int32(frameWidth))
                }
                guard status == GIF_OK else { throw failure() }
            }
        }
        let colors = colorMap.pointee
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for y in 0..<frameHeight where top + y < height {
            for x in 0..<frameWidth where left + x < width {
                let index = Int(indices[y * frameWidth + x])
                guard index != transparentIndex, index < Int(colors.ColorCount) else { continue }
                let color = colors.Colors[index]
                let target = ((top + y) * width + left + x) * 4
                pixels[target] = color.Red
                pixels[target + 1] = color.Green
                pixels[target + 2] = color.Blue
                pixels[target + 3] = 255
            }
        }
        return RasterImage(width: width, height: height, channels: 4, pixels: pixels)
    }
}
