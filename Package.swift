// swift-tools-version: 6.0
import Foundation
import PackageDescription

let package = Package(
    name: "Loupe",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loupe", targets: ["loupe"]),
        .library(name: "CLIP", targets: ["CLIP"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "ModelHub", targets: ["ModelHub"]),
        .library(name: "Server", targets: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System-library shims: a modulemap and one header each.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Image codecs. libpng reports errors with longjmp, which Swift cannot catch, so its decoder
        // lives in a small C file; the other libraries return error codes and are called from Swift.
        .target(
            name: "CImageCodecs",
            linkerSettings: [
                .linkedLibrary("turbojpeg"), .linkedLibrary("png16"), .linkedLibrary("webp"),
                .linkedLibrary("gif"), .linkedLibrary("tiff"), .linkedLibrary("heif"),
            ]
        ),
        // The matrix-product kernels: one source compiled for AVX-512 and, through a symbolic link, for
        // AVX2 + FMA; Tensor uses the one the processor runs and OpenBLAS elsewhere. The Builtin module
        // gives them the prefetch and VNNI instructions Swift has no names for.
        .target(name: "KernelsAVX512", swiftSettings: kernelSettings(cpu: "skylake-avx512", defines: ["LOUPE_AVX512"], builtins: true)),
        .target(name: "KernelsAVX2", swiftSettings: kernelSettings(cpu: "haswell", defines: [], builtins: true)),
        // 8-bit products with AVX-512 VNNI.
        .target(name: "KernelsVNNI", swiftSettings: kernelSettings(cpu: "cascadelake", defines: [], builtins: true)),
        .target(name: "CAllocator"),
        .target(name: "Tensor", dependencies: ["CAllocator", "CBLAS", "KernelsAVX512", "KernelsAVX2", "KernelsVNNI"], swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(
            name: "CLIP",
            dependencies: ["Tensor", "ImageIO"],
            resources: [.copy("Resources/text_tables.json")]
        ),
        .target(name: "ImageIO", dependencies: ["CImageCodecs"]),
        // Video frames through FFmpeg's libraries (Debian's libav*-dev). The decode loop is C: FFmpeg's
        // API is macros and error codes.
        .target(
            name: "CVideo",
            linkerSettings: [.linkedLibrary("avformat"), .linkedLibrary("avcodec"), .linkedLibrary("swscale"), .linkedLibrary("avutil")]
        ),
        .target(name: "VideoIO", dependencies: ["CVideo", "ImageIO"]),
        .target(
            name: "Embedding",
            dependencies: [
                "CLIP", "ImageIO", "ImageCollections", "StoreEmbedded",
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // Exact search runs over every vector: optimised even in debug builds, like Tensor.
        .target(name: "VectorIndex", dependencies: ["Tensor"], swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        // The store seam: the policy every store shares and the protocol a backend implements, with no
        // backend's dependencies ("Collections" is taken by swift-collections, which the server uses).
        .target(name: "ImageCollections"),
        // One target per store backend.
        .target(name: "StoreEmbedded", dependencies: ["ImageCollections", "CSQLite", "VectorIndex"]),
        .target(
            name: "StorePostgres",
            dependencies: ["ImageCollections", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log")]
        ),
        // Milvus's protocol, generated by scripts/generate-milvus-grpc.sh (no protoc at build time).
        .target(
            name: "MilvusGRPC",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "StoreMilvus",
            dependencies: [
                "ImageCollections", "MilvusGRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        // Where items come from (folders, manifests): plain Foundation, so the fuzz harness can take it alone.
        .target(name: "ItemSources"),
        .target(
            name: "Ingest",
            dependencies: ["Embedding", "ImageIO", "VideoIO", "ImageCollections", "ItemSources", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // What request bodies mean (multipart, JSON fields), apart from the HTTP plumbing: the fuzz harness takes it alone.
        .target(name: "HTTPBodies"),
        .target(
            name: "Server",
            dependencies: [
                "Embedding", "CLIP", "ImageIO", "ImageCollections", "HTTPBodies", "Ingest",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Web")]
        ),
        .target(
            name: "ModelHub",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "loupe",
            dependencies: [
                "CLIP", "ImageIO", "ModelHub", "Embedding", "Server", "Tensor", "ImageCollections", "StoreEmbedded", "StorePostgres", "StoreMilvus",
                "Ingest", "VectorIndex",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The index benchmark's Swift side (benchmarks/index_bench.sh).
        .executableTarget(name: "product-bench", dependencies: ["Tensor", "CBLAS"], path: "benchmarks/ProductBench"),
        .executableTarget(name: "index-bench", dependencies: ["VectorIndex", "Tensor", "LoupeTestSupport"], path: "benchmarks/IndexBench"),
        // Hands out a schema per test on the PostgreSQL scripts/test.sh starts; the shared test vectors.
        .target(name: "LoupeTestSupport", path: "Tests/Support"),
        // A Hugging Face Hub on loopback, shaped like the real one (ModelHubTests, LoupeCLITests).
        .target(
            name: "HubFixture",
            dependencies: [
                "LoupeTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/HubFixture"
        ),
        .executableTarget(name: "fixture-hub", dependencies: ["HubFixture"], path: "Tests/FixtureHubServer"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "ImageCollectionsTests", dependencies: ["ImageCollections", "StoreEmbedded", "StorePostgres", "StoreMilvus", "VectorIndex", "Ingest", "Embedding", "CLIP", "ImageIO", "LoupeTestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "ImageIO", "CImageCodecs", "Tensor", "LoupeTestSupport"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"]),
        .testTarget(name: "VideoIOTests", dependencies: ["VideoIO", "ImageIO", "LoupeTestSupport"]),
        .testTarget(
            name: "ModelHubTests",
            dependencies: [
                "ModelHub", "CLIP", "HubFixture",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "LoupeCLITests", dependencies: ["loupe", "ImageCollections", "StoreEmbedded", "StorePostgres", "StoreMilvus", "CLIP", "ImageIO", "VideoIO", "LoupeTestSupport", "HubFixture"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Embedding", "CLIP", "ImageIO", "ImageCollections", "StoreEmbedded", "StorePostgres", "StoreMilvus", "Ingest", "HTTPBodies",
                "LoupeTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)

/// Optimised even in debug builds, and for the instruction set the kernel is written for. Swift emits
/// vector instructions beyond SSE only for a module built for a CPU that has them.
func kernelSettings(cpu: String, defines: [String], builtins: Bool = false) -> [SwiftSetting] {
    #if arch(x86_64)
    let flags = ["-Ounchecked", "-target-cpu", cpu] + (builtins ? ["-enable-builtin-module"] : [])
    return [.unsafeFlags(flags)] + (defines + (builtins ? ["LOUPE_BUILTINS"] : [])).map { .define($0) }
    #else
    return []
    #endif
}

// The fuzz harness (scripts/fuzz.sh): declared only for its own instrumented build, since it links
// libFuzzer's driver, which an ordinary build does not have.
if ProcessInfo.processInfo.environment["LOUPE_FUZZ"] != nil {
    package.targets.append(.executableTarget(name: "loupe-fuzz", dependencies: ["ImageIO", "CLIP", "ItemSources", "HTTPBodies"], path: "Tests/Fuzz", exclude: ["seeds"]))
}
