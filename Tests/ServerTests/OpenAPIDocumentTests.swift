import Embedding
import Foundation
import Hummingbird
import ImageCollections
import LoupeTestSupport
import StoreEmbedded
import Testing

@testable import Server

/// The OpenAPI document at /openapi.json describes exactly the routes the server has: every documented
/// operation is routed, and every route but the search page's static files is documented.
@Suite struct OpenAPIDocumentTests {
    @Test func theDocumentListsEveryRouteAndOnlyThose() throws {
        let model = ServerHarness.models["tiny-gelu"]!
        let versions = [ModelVersion(name: "tiny-gelu", source: "tiny-gelu",
                                     embedder: LocalEmbedder(model: model, identity: ServerHarness.identity("tiny-gelu")))]
        defer { (versions[0].embedder as? LocalEmbedder)?.stop() }
        var configuration = ServerConfiguration()
        configuration.defaultModelVersion = "tiny-gelu"
        let store = try CollectionStore.embedded(folder: FileManager.default.temporaryDirectory.appendingPathComponent("loupe-openapi-\(UUID())"))
        let router = try makeRouter(configuration: configuration, versions: versions, byName: ["tiny-gelu": versions[0]], store: store,
                                    metrics: ServerMetrics())
        // HEAD is generated for every GET; the page's files are not API.
        let routed = Set(router.routes.filter { $0.method != .head }.map { "\($0.method.rawValue) \($0.path)" })
            .subtracting(WebPage<ServerRequestContext>.files.keys.map { "GET \($0)" })
        let document = OpenAPIDocument.make(versions: ["tiny-gelu"])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, operations in
            operations.keys.map { "\($0.uppercased()) \(path)" }
        })
        #expect(routed == documented, "routed only: \(routed.subtracting(documented).sorted()); documented only: \(documented.subtracting(routed).sorted())")
        #expect(routed.count >= 15)
    }
}
