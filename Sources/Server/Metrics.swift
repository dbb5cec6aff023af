import CoreMetrics
import Foundation
import Prometheus

/// The server's counters and histograms, recorded through swift-metrics into a Prometheus registry of
/// this server's own (so servers in one process, as in the tests, never mix their figures) and
/// rendered by swift-prometheus in the text format at `GET /metrics`.
public final class ServerMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10].map { .milliseconds(Int($0 * 1000)) }
        factory.valueHistogramBuckets = ["loupe_batch_size": [1, 2, 4, 8, 16, 32, 64]]
        self.factory = factory
    }

    /// One answered request: `loupe_http_requests_total{route,status}` and its latency,
    /// `loupe_http_request_duration_seconds{route}`.
    func recordRequest(route: String, status: Int, seconds: Double) {
        Counter(label: "loupe_http_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory).increment()
        CoreMetrics.Timer(label: "loupe_http_request_duration_seconds", dimensions: [("route", route)], factory: factory).recordSeconds(seconds)
    }

    /// An error answer by its code: `loupe_http_errors_total{code}`.
    func recordError(code: String) {
        Counter(label: "loupe_http_errors_total", dimensions: [("code", code)], factory: factory).increment()
    }

    /// Inputs per engine batch: `loupe_batch_size`.
    public func recordBatch(size: Int) {
        Recorder(label: "loupe_batch_size", dimensions: [], aggregate: true, factory: factory).record(size)
    }

    func render() -> String {
        registry.emitToString()
    }
}
