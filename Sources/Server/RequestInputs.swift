import Foundation
import HTTPTypes
import Hummingbird
import ImageIO

/// Reading what a request carries, the same way for every route: the media type, a size-capped body,
/// a JSON object, an image (from bytes or a URL). Failures are Azure-shaped 400s.
struct RequestInputs: Sendable {
    let configuration: ServerConfiguration
    let decoder = ImageDecoder()

    static let jsonLimit = 256 * 1024

    func mediaType(_ request: Request) -> String {
        (request.headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    func isImageBody(_ request: Request) -> Bool {
        let type = mediaType(request)
        return type == "application/octet-stream" || type.hasPrefix("image/")
    }

    func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw AzureError.invalidRequest("InvalidImageSize", "The request body is \(length) bytes; the limit is \(limit).")
        }
        do {
            return Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AzureError.invalidRequest("InvalidImageSize", "The request body is larger than \(limit) bytes.")
        }
    }

    func imageBody(_ request: Request) async throws -> [UInt8] { try await body(request, limit: configuration.maximumBodyBytes) }

    func jsonObject(_ request: Request) async throws -> [String: Any] {
        let bytes = try await body(request, limit: Self.jsonLimit)
        guard !bytes.isEmpty else { throw AzureError.invalidRequest("InvalidRequestBody", "The request body is empty.") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw AzureError.invalidRequest("InvalidRequestBody", "The request body is not a JSON object.")
        }
        return object
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

    func image(_ bytes: [UInt8]) throws -> RGBImage {
        do {
            return try decoder.decode(bytes).rgb()
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

/// JSON text for vectors: Swift's shortest float spellings, in a fixed key order.
public enum JSONText {
    /// A JSON string literal, escaped.
    public static func string(_ value: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    public static func vector(_ values: [Float]) -> String { "[" + values.map { "\($0)" }.joined(separator: ",") + "]" }
}
