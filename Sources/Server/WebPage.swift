import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The search page: three static files shipped inside the binary's resources, no build step, no CDN.
struct WebPage<Context: RequestContext> {
    static var files: [String: (resource: String, type: String)] {
        ["/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/app.css": ("app.css", "text/css; charset=utf-8")]
    }

    func add(to router: some RouterMethods<Context>) throws {
        for (path, file) in Self.files {
            guard let url = Bundle.module.url(forResource: file.resource, withExtension: nil, subdirectory: "Web"),
                let data = try? Data(contentsOf: url)
            else { throw ServerSetupError("the web page resource \(file.resource) is missing") }
            let buffer = ByteBuffer(bytes: data)
            router.get(RouterPath(path)) { _, _ in
                Response(status: .ok, headers: [
                    .contentType: file.type, .cacheControl: "no-cache",
                    // Only this server's own scripts, styles and images (blob: for images fetched with a key).
                    .contentSecurityPolicy: "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                ], body: .init(byteBuffer: buffer))
            }
        }
    }
}
