import CAllocator

/// Measures how fast this machine delivers memory to the engine's threads: a buffer the size of some
/// weights, in the same kind of pages, read once by every thread a share each. A product over one or a
/// few rows (a short text) cannot finish sooner than that read, so `loupe bench` reports both. Reads
/// back to back may find part of the buffer still in the L3 cache, and then take less than memory alone.
public final class MemoryProbe: @unchecked Sendable {
    public let byteCount: Int
    private let values: UnsafeMutablePointer<Float>
    private let count: Int

    /// nil when the memory cannot be had.
    public init?(byteCount: Int) {
        count = max(1, byteCount / MemoryLayout<Float>.size)
        self.byteCount = count * MemoryLayout<Float>.size
        guard let start = loupe_allocate_weights(self.byteCount) else { return nil }
        values = start.bindMemory(to: Float.self, capacity: count)
        // Written once, so that every page exists before the first read is timed.
        for i in 0..<count { values[i] = Float(i % 7) }
    }

    deinit { loupe_free_weights(values, byteCount) }

    /// Reads every value once, on every compute thread, and returns their sum (so no read can be skipped).
    public func readAll() -> Float {
        let parts = ComputeThreads.count
        let sums = UnsafeMutableBufferPointer<Float>.allocate(capacity: parts)
        defer { sums.deallocate() }
        let addresses = (Int(bitPattern: values), Int(bitPattern: sums.baseAddress!))
        let count = count
        ComputeThreads.parallel(parts) { part in
            let values = UnsafePointer<Float>(bitPattern: addresses.0)!
            let share = ComputeThreads.share(part, of: parts, count: count)
            var lanes = (Lanes(), Lanes(), Lanes(), Lanes())
            var i = share.lowerBound
            while i + 32 <= share.upperBound {
                let raw = UnsafeRawPointer(values + i)
                lanes.0 += raw.loadUnaligned(as: Lanes.self)
                lanes.1 += raw.loadUnaligned(fromByteOffset: 32, as: Lanes.self)
                lanes.2 += raw.loadUnaligned(fromByteOffset: 64, as: Lanes.self)
                lanes.3 += raw.loadUnaligned(fromByteOffset: 96, as: Lanes.self)
                i += 32
            }
            var sum = ((lanes.0 + lanes.1) + (lanes.2 + lanes.3)).sum()
            while i < share.upperBound {
                sum += values[i]
                i += 1
            }
            UnsafeMutablePointer<Float>(bitPattern: addresses.1)![part] = sum
        }
        return sums.reduce(0, +)
    }
}
