import Embedding
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error in Azure AI Vision's shape: `{"error": {"code", "message", "innererror": {"code", "message"}}}`
/// with the code repeated in the `x-ms-error-code` header.
public struct AzureError: HTTPResponseError, Equatable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public let innerCode: String?
    public let innerMessage: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, message: String, innerCode: String? = nil, innerMessage: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.innerCode = innerCode
        self.innerMessage = innerMessage
    }

    /// 400 InvalidRequest with a specific inner code: how Azure reports bad input.
    public static func invalidRequest(_ innerCode: String, _ message: String) -> AzureError {
        AzureError(.badRequest, code: "InvalidRequest", message: message, innerCode: innerCode, innerMessage: message)
    }

    public static let unauthorized = AzureError(
        .unauthorized, code: "401",
        message: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")

    public static let notFound = AzureError(.notFound, code: "404", message: "Resource not found")

    /// A known path asked with a method it does not answer; `allow` lists the ones it does.
    public static func methodNotAllowed(_ method: HTTPRequest.Method, allow: String) -> AzureError {
        var error = AzureError(.methodNotAllowed, code: "405", message: "The method \(method.rawValue) is not allowed here; allowed: \(allow).")
        error.headers[.allow] = allow
        return error
    }

    public static func rateLimited(retryAfter seconds: Int) -> AzureError {
        var error = AzureError(.tooManyRequests, code: "429",
                               message: "Rate limit is exceeded. Try again in \(seconds) seconds.")
        error.headers[.retryAfter] = String(seconds)
        return error
    }

    /// An embedder's refusal or failure as the server answers it: bad input is the client's 400 (image
    /// errors with Azure's codes); a provider that refuses, fails or answers nonsense is a 502 or 503.
    public static func embedding(_ error: EmbeddingError) -> AzureError {
        switch error.kind {
        case .invalidInput:
            if let image = error.imageError { return .invalidRequest(RequestInputs.azureCode(image), RequestInputs.azureMessage(image)) }
            if error.code == "EmptyText" { return .invalidRequest("InvalidTextLength", "The text has nothing to embed.") }
            return .invalidRequest(error.code, error.message)
        case .rejected, .badResponse: return AzureError(.badGateway, code: "UpstreamFailed", message: error.description)
        case .unavailable: return AzureError(.serviceUnavailable, code: "UpstreamUnavailable", message: error.description)
        }
    }

    var body: [String: Any] {
        var error: [String: Any] = ["code": code, "message": message]
        if let innerCode { error["innererror"] = ["code": innerCode, "message": innerMessage ?? message] }
        return ["error": error]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[HTTPField.Name("x-ms-error-code")!] = innerCode ?? code
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    public static func == (a: AzureError, b: AzureError) -> Bool {
        a.status == b.status && a.code == b.code && a.innerCode == b.innerCode && a.message == b.message
    }
}

extension HTTPField.Name {
    static let retryAfter = HTTPField.Name("Retry-After")!
    static let subscriptionKey = HTTPField.Name("Ocp-Apim-Subscription-Key")!
}
