import Foundation

/// Counters and histograms, rendered in the Prometheus text format at `GET /metrics`.
public final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [[String]: Int] = [:]          // [route, status]
    private var errors: [String: Int] = [:]              // by error code
    private var latency: [String: Histogram] = [:]       // by route, seconds
    private var batchSizes = Histogram(bounds: [1, 2, 4, 8, 16, 32, 64])

    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            for (index, bound) in bounds.enumerated() where value <= bound { counts[index] += 1 }
            sum += value
            count += 1
        }
    }

    static let latencyBounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init() {}

    func recordRequest(route: String, status: Int, seconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        requests[[route, String(status)], default: 0] += 1
        latency[route, default: Histogram(bounds: Self.latencyBounds)].observe(seconds)
    }

    func recordError(code: String) {
        lock.lock()
        errors[code, default: 0] += 1
        lock.unlock()
    }

    public func recordBatch(size: Int) {
        lock.lock()
        batchSizes.observe(Double(size))
        lock.unlock()
    }

    func render() -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = "# HELP loupe_http_requests_total HTTP requests by route and status.\n# TYPE loupe_http_requests_total counter\n"
        for (key, count) in requests.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            out += "loupe_http_requests_total{route=\"\(escape(key[0]))\",status=\"\(key[1])\"} \(count)\n"
        }
        out += "# HELP loupe_http_errors_total Error responses by error code.\n# TYPE loupe_http_errors_total counter\n"
        for (code, count) in errors.sorted(by: { $0.key < $1.key }) {
            out += "loupe_http_errors_total{code=\"\(escape(code))\"} \(count)\n"
        }
        out += "# HELP loupe_http_request_duration_seconds Request latency.\n# TYPE loupe_http_request_duration_seconds histogram\n"
        for (route, histogram) in latency.sorted(by: { $0.key < $1.key }) {
            out += render(histogram, name: "loupe_http_request_duration_seconds", labels: "route=\"\(escape(route))\",")
        }
        out += "# HELP loupe_batch_size Inputs per engine batch.\n# TYPE loupe_batch_size histogram\n"
        out += render(batchSizes, name: "loupe_batch_size", labels: "")
        return out
    }

    private func render(_ histogram: Histogram, name: String, labels: String) -> String {
        var out = ""
        for (bound, count) in zip(histogram.bounds, histogram.counts) {
            out += "\(name)_bucket{\(labels)le=\"\(bound)\"} \(count)\n"
        }
        out += "\(name)_bucket{\(labels)le=\"+Inf\"} \(histogram.count)\n"
        let plain = labels.isEmpty ? "" : "{\(labels.dropLast())}"
        out += "\(name)_sum\(plain) \(histogram.sum)\n\(name)_count\(plain) \(histogram.count)\n"
        return out
    }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
