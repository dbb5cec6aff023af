import CLIP
import Foundation
import HTTPTypes
import Hummingbird
import ImageIO

/// Reading what a request carries, the same way for every route: the media type, a size-capped body,
/// a JSON object, an image (from bytes or a URL). Failures are Azure-shaped 400s.
struct RequestInputs: Sendable {
    let configuration: ServerConfiguration
    let decoder = ImageDecoder()
    /// Shared by every route, so the bound on decodes holds for the whole server.
    let decodes: DecodeGate

    init(configuration: ServerConfiguration) {
        self.configuration = configuration
        decodes = DecodeGate(slots: configuration.decodeSlots, budgetBytes: configuration.decodeBudgetBytes)
    }

    /// Bytes a decode may hold at its peak per pixel of the header's size: the decoded samples (up to
    /// four a pixel), their RGB copy, and slack for the codec's own buffers.
    static let decodeBytesPerPixel = 10

    static let jsonLimit = 256 * 1024

    func mediaType(_ request: Request) -> String {
        (request.headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    func isImageBody(_ request: Request) -> Bool {
        let type = mediaType(request)
        return type == "application/octet-stream" || type.hasPrefix("image/")
    }

    /// The body, up to `limit` bytes; a larger one is refused with `tooLarge` as the error code (an image's
    /// size error for images, a body error for JSON).
    func body(_ request: Request, limit: Int, tooLarge: String = "InvalidImageSize") async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw AzureError.invalidRequest(tooLarge, "The request body is \(length) bytes; the limit is \(limit).")
        }
        do {
            return Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AzureError.invalidRequest(tooLarge, "The request body is larger than \(limit) bytes.")
        }
    }

    func imageBody(_ request: Request) async throws -> [UInt8] { try await body(request, limit: configuration.maximumBodyBytes) }

    func jsonObject(_ request: Request) async throws -> [String: Any] {
        let bytes = try await body(request, limit: Self.jsonLimit, tooLarge: "InvalidRequestBody")
        guard !bytes.isEmpty else { throw AzureError.invalidRequest("InvalidRequestBody", "The request body is empty.") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            // Malformed syntax, text that is not UTF-8, or an escape for a lone surrogate (\ud800).
            throw AzureError.invalidRequest("InvalidRequestBody", "The request body is not valid JSON in UTF-8.")
        }
        guard let object = parsed as? [String: Any] else {
            throw AzureError.invalidRequest("InvalidRequestBody", "The request body is JSON but not an object.")
        }
        return object
    }

    /// An optional integer field that must be a JSON integer in `range` when present: not a boolean, a
    /// string, a fraction, null or anything else JSON would let through.
    func integer(_ name: String, in object: [String: Any], range: ClosedRange<Int>) throws -> Int? {
        guard let value = object[name] else { return nil }
        // JSON integers arrive as NSNumbers of an integer type; true and false as "c", fractions as "d".
        guard let number = value as? NSNumber, ["i", "l", "q", "s", "I", "L", "Q", "S"].contains(String(cString: number.objCType)),
            (Double(range.lowerBound)...Double(range.upperBound)).contains(number.doubleValue)
        else { throw AzureError.invalidRequest("InvalidRequestBody", "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound).") }
        return number.intValue
    }

    func string(_ name: String, in object: [String: Any]) throws -> String {
        guard let value = object[name] as? String else {
            throw AzureError.invalidRequest("InvalidRequestBody", "The JSON body needs a string field \"\(name)\".")
        }
        return value
    }

    func fetch(_ url: String) async throws -> [UInt8] {
        do {
            return try await URLFetcher(allowPrivateAddresses: configuration.allowPrivateURLs, timeout: configuration.urlTimeout).fetch(url)
        } catch let failure as URLFetcher.Failure {
            if case .tooLarge = failure { throw AzureError.invalidRequest("InvalidImageSize", failure.description) }
            throw AzureError.invalidRequest("InvalidImageUrl", failure.description)
        }
    }

    /// An image decoded and preprocessed for `model` (and its thumbnail when asked for) through the
    /// decode gate; decoding failures are Azure's 400s.
    func prepared(_ bytes: [UInt8], for model: CLIPModel, thumbnail: Bool = false) async throws -> PreparedImage {
        let decoder = self.decoder
        do {
            let size = try decoder.dimensions(of: bytes)
            return try await decodes.run(reserving: size.width * size.height * Self.decodeBytesPerPixel) {
                let image = try decoder.decode(bytes).rgb()
                return PreparedImage(pixels: model.pixelValues(for: image), thumbnail: thumbnail ? try? Thumbnail.jpeg(from: image) : nil)
            }
        } catch let error as ImageError {
            throw AzureError.invalidRequest(Self.azureCode(error), Self.azureMessage(error))
        }
    }

    static func azureCode(_ error: ImageError) -> String {
        switch error {
        case .empty, .tooLarge: "InvalidImageSize"
        case .dimensionsOutOfRange: "InvalidImageDimension"
        default: "InvalidImageFormat"
        }
    }

    static func azureMessage(_ error: ImageError) -> String {
        switch error {
        case .unknownFormat, .corrupt, .unsupported: "Input data is not a valid image: \(error.description)."
        default: error.description.prefix(1).uppercased() + error.description.dropFirst() + "."
        }
    }
}

/// An image as the model takes it, and its preview.
struct PreparedImage: Sendable {
    let pixels: [Float]
    let thumbnail: Data?
}

/// JSON text for vectors: Swift's shortest float spellings, in a fixed key order.
public enum JSONText {
    /// A JSON string literal, escaped.
    public static func string(_ value: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    public static func vector(_ values: [Float]) -> String { "[" + values.map { "\($0)" }.joined(separator: ",") + "]" }
}
