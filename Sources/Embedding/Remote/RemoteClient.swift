import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// When and how often a remote embedder tries again.
public struct RetryPolicy: Sendable {
    /// Tries per request for failures that may pass (5xx, 408, resets, timeouts), the first included.
    public var attempts = 6
    /// Backoff: a random wait up to base · 2^(try − 1), capped at `maximumDelay` ("full jitter").
    public var baseDelay: Duration = .milliseconds(500)
    public var maximumDelay: Duration = .seconds(30)
    /// 429s are waited out as the provider asks (Retry-After), up to this many times per request.
    public var rateLimitWaits = 50
    /// The wait after a 429 without Retry-After, and the longest Retry-After believed.
    public var defaultRateLimitWait: Duration = .seconds(1)
    public var maximumRateLimitWait: Duration = .seconds(120)
    /// One request, connect to last byte.
    public var timeout: Duration = .seconds(60)

    public init() {}
}

/// What a remote embedder has done so far (for progress lines and tests).
public struct RemoteCounters: Sendable, Equatable {
    public var requests = 0
    public var retries = 0
    /// 429 answers, each waited out.
    public var rateLimited = 0
    /// Seconds spent waiting before retries.
    public var waitedSeconds = 0.0
    /// Inputs answered from the cache.
    public var cached = 0
}

/// Sends a provider's requests with bounded concurrency, honouring 429s across every request in flight
/// (one Retry-After pauses them all) and backing off with jitter on failures that may pass. A 4xx other
/// than 408/429 is the input's answer and is not retried.
final class RemoteClient: @unchecked Sendable {
    struct Reply: Sendable {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
    }

    let policy: RetryPolicy
    private let http: HTTPClient
    private let slots: AsyncSlots
    private let lock = NSLock()
    private var counters = RemoteCounters()
    private var pausedUntil = ContinuousClock.now

    init(concurrency: Int, policy: RetryPolicy) {
        self.policy = policy
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        // A refused or unreachable address is one failed try, which `send` backs off from and retries.
        // AsyncHTTPClient's own retry would keep reconnecting until the request's deadline (a minute),
        // so one try against a provider that is down took the whole timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        slots = AsyncSlots(max(1, concurrency))
    }

    // syncShutdown would trap if the last reference went away on one of the client's event loops.
    deinit {
        let http = self.http
        Task { try? await http.shutdown() }
    }

    var snapshot: RemoteCounters { lock.withLock { counters } }
    func countCached(_ count: Int) { lock.withLock { counters.cached += count } }

    /// The provider's final answer (2xx or a 4xx for this input), or why there is none.
    func send(url: String, headers: [(String, String)], body: [UInt8]) async -> Result<Reply, EmbeddingError> {
        var failures = 0, rateLimits = 0
        while true {
            if Task.isCancelled { return .failure(EmbeddingError(.unavailable, code: "Cancelled", message: "the request was cancelled")) }
            await waitForPause()
            let outcome = await slots.run { await self.once(url: url, headers: headers, body: body) }
            lock.withLock { counters.requests += 1 }
            let wait: Duration
            switch outcome {
            case .success(let reply) where reply.status == 429:
                rateLimits += 1
                guard rateLimits <= policy.rateLimitWaits else {
                    return .failure(EmbeddingError(.unavailable, code: "RateLimited", message: "still rate-limited after \(rateLimits - 1) waits"))
                }
                wait = retryAfter(reply.headers)
                pause(for: wait)
                lock.withLock { counters.rateLimited += 1 }
            case .success(let reply) where reply.status == 408 || reply.status >= 500:
                failures += 1
                guard failures < policy.attempts else {
                    return .failure(EmbeddingError(.unavailable, code: "ProviderFailed", message: "HTTP \(reply.status) on each of \(failures) tries"))
                }
                wait = backoff(failures)
            case .success(let reply):
                return .success(reply)
            case .failure(let error):
                failures += 1
                guard failures < policy.attempts else {
                    return .failure(EmbeddingError(.unavailable, code: "ProviderUnreachable", message: "\(error) on each of \(failures) tries"))
                }
                wait = backoff(failures)
            }
            lock.withLock {
                counters.retries += 1
                counters.waitedSeconds += wait / .seconds(1)
            }
            try? await Task.sleep(for: wait)
        }
    }

    private func once(url: String, headers: [(String, String)], body: [UInt8]) async -> Result<Reply, Error> {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let timeout = TimeAmount.nanoseconds(Int64(policy.timeout / .nanoseconds(1)))
            let response = try await http.execute(request, timeout: timeout)
            // A vector of 1408 floats is about 30 kB of JSON; anything past 8 MB is not an answer.
            let bytes = try await response.body.collect(upTo: 8 << 20)
            return .success(Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView)))
        } catch {
            return .failure(error)
        }
    }

    /// Retry-After in seconds or as an HTTP date; the policy's default when absent or unreadable.
    private func retryAfter(_ headers: HTTPHeaders) -> Duration {
        let value = headers.first(name: "Retry-After")?.trimmingCharacters(in: .whitespaces) ?? ""
        var seconds: Double?
        if let number = Double(value), number.isFinite, number >= 0 {
            seconds = number
        } else {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            seconds = formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
        }
        guard let seconds else { return policy.defaultRateLimitWait }
        return min(.milliseconds(Int64(seconds * 1000)), policy.maximumRateLimitWait)
    }

    private func backoff(_ failures: Int) -> Duration {
        let ceiling = min(policy.baseDelay * (1 << min(failures - 1, 20)), policy.maximumDelay)
        return .nanoseconds(Int64.random(in: 0...max(0, Int64(ceiling / .nanoseconds(1)))))
    }

    private func pause(for wait: Duration) {
        lock.withLock { pausedUntil = max(pausedUntil, ContinuousClock.now + wait) }
    }

    private func waitForPause() async {
        let until = lock.withLock { pausedUntil }
        if until > ContinuousClock.now { try? await Task.sleep(until: until, clock: .continuous) }
    }
}

/// At most `count` bodies run at once; the others wait in arrival order.
final class AsyncSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { free = count }

    func run<T>(_ body: () async -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if free > 0 {
                free -= 1
                lock.unlock()
                continuation.resume()
            } else {
                waiting.append(continuation)
                lock.unlock()
            }
        }
        defer {
            let next: CheckedContinuation<Void, Never>? = lock.withLock {
                if waiting.isEmpty {
                    free += 1
                    return nil
                }
                return waiting.removeFirst()
            }
            next?.resume()
        }
        return await body()
    }
}
