import Foundation
import Synchronization

/// Runs the parts of one parallel section on the calling thread and on workers that stay awake for a
/// moment after each section. A forward pass runs ~60–80 short sections (one per product, attention,
/// layer norm): `DispatchQueue.concurrentPerform` took ~50 µs per section to wake its second thread
/// here (measured), 3 ms of a 7 ms short text. Workers spinning between sections answer at once.
@available(macOS 15.0, *)
final class WorkerPool: @unchecked Sendable {
    /// How long an idle worker keeps looking for the next section before it sleeps.
    private static let spinNanoseconds: UInt64 = 200_000

    /// The section being run: its generation in the high 32 bits, the next part to take in the low 32.
    /// Workers take parts by compare-and-exchange, so a worker late for one section can never take a
    /// part of the next.
    private let ticket = Atomic<Int>(0)
    /// Parts of the current section not finished yet.
    private let remaining = Atomic<Int>(0)
    /// Held by the one thread running a section; another caller (or a section inside a section) runs
    /// its parts with Dispatch instead.
    private let busy = Atomic<Bool>(false)
    private let sleeping = NSCondition()
    /// Parts in the current section.
    private let partCount = Atomic<Int>(0)
    /// Written by the caller before the generation is published; read by a worker only after it has
    /// taken a part, when the section cannot have ended.
    nonisolated(unsafe) private var job: (@Sendable (Int) -> Void)?

    /// The workers hold the pool: it lives as long as the process (the engine keeps one).
    init(workers: Int) {
        for _ in 0..<workers {
            let thread = Thread { self.work() }
            thread.name = "loupe-compute"
            thread.start()
        }
    }

    /// Calls `body(part)` for every part in `0..<parts`, on this thread and the workers; returns when all
    /// have finished.
    func run(parts: Int, _ body: @Sendable (Int) -> Void) {
        guard parts > 1 else {
            if parts == 1 { body(0) }
            return
        }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            DispatchQueue.concurrentPerform(iterations: parts, execute: body)
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            job = body
            partCount.store(parts, ordering: .relaxed)
            remaining.store(parts, ordering: .relaxed)
            let generation = ((ticket.load(ordering: .relaxed) >> 32) + 1) & 0x7FFF_FFFF
            ticket.store(generation << 32, ordering: .releasing)
            sleeping.lock()
            sleeping.broadcast()
            sleeping.unlock()
            takeParts(of: generation)
            while remaining.load(ordering: .acquiring) > 0 {}
            job = nil
        }
    }

    /// Runs parts of section `generation` until none is left to take.
    private func takeParts(of generation: Int) {
        var current = ticket.load(ordering: .acquiring)
        while current >> 32 == generation, current & 0xFFFF_FFFF < partCount.load(ordering: .relaxed) {
            let (exchanged, original) = ticket.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged {
                job?(original & 0xFFFF_FFFF)
                remaining.subtract(1, ordering: .releasing)
                current = original + 1
            } else {
                current = original
            }
        }
    }

    private func work() {
        var seen = 0
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            var generation = ticket.load(ordering: .acquiring) >> 32
            while generation == seen, DispatchTime.now().uptimeNanoseconds - start < Self.spinNanoseconds {
                generation = ticket.load(ordering: .acquiring) >> 32
            }
            if generation == seen {
                sleeping.lock()
                while ticket.load(ordering: .acquiring) >> 32 == seen { sleeping.wait() }
                sleeping.unlock()
                generation = ticket.load(ordering: .acquiring) >> 32
            }
            seen = generation
            takeParts(of: generation)
        }
    }
}
