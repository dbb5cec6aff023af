import Foundation

/// Everything `loupe serve` can be told.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 5000
    /// Subscription keys; empty means no authentication (allowed on loopback only, unless forced).
    public var keys: [String] = []
    /// Requests per second allowed per key (or per client address without keys); nil for no limit.
    public var rateLimit: Double?
    /// Burst size for the rate limit: how many requests may arrive at once.
    public var rateBurst: Int?
    /// The largest request body read, in bytes (images are capped at 20 MB separately).
    public var maximumBodyBytes = 21 * 1024 * 1024
    /// URL inputs: timeout, size cap and whether private / loopback / link-local targets are allowed.
    public var urlTimeout: Duration = .seconds(10)
    public var allowPrivateURLs = false
    /// Batching in front of the engine.
    public var maxBatch = 32
    public var batchWindow: Duration = .milliseconds(4)
    /// The model-version answered when a request names none (or `latest`).
    public var defaultModelVersion = "2023-04-15"
    /// A connection that sends nothing for this long while idle, or while its request's headers or body
    /// are still arriving, is closed (slow or silent clients cannot hold a connection open).
    public var idleTimeout: Duration = .seconds(30)
    /// A request must arrive, headers and body, within this time plus one second per `minimumRequestRate`
    /// bytes received: a client that trickles a byte just inside each idle period is closed, while a
    /// large upload on a slow link goes through.
    public var requestTimeout: Duration = .seconds(30)
    public var minimumRequestRate = 500
    /// Connections beyond this many wait to be accepted, so clients cannot exhaust file descriptors.
    public var maximumConnections = 1024
    /// Images decoded at once, and the decoded bytes they may hold together (a header's width × height
    /// sets each image's share), so a few decompression bombs cannot take the machine's memory.
    public var decodeSlots = max(1, ProcessInfo.processInfo.activeProcessorCount)
    public var decodeBudgetBytes = 1 << 30
    /// Where images uploaded to collections are kept.
    public var uploadsFolder = URL(fileURLWithPath: "./loupe-data/uploads")

    public init() {}

    public static let apiVersions: Set<String> = ["2023-02-01-preview", "2023-04-01-preview", "2024-02-01"]

    public var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) || host.hasPrefix("127.") }
}
