import Foundation
import Synchronization
import Testing

@testable import Tensor

/// Counts how often each part ran.
private final class PartCounts: Sendable {
    private let counts: Mutex<[Int]>
    init(_ parts: Int) { counts = Mutex(Array(repeating: 0, count: parts)) }
    func ran(_ part: Int) { counts.withLock { $0[part] += 1 } }
    var all: [Int] { counts.withLock { $0 } }
}

/// Two parts' meeting point: whichever part starts first waits for the other.
private final class Rendezvous: Sendable {
    let started = Atomic<Int>(0)
    let secondStarted = Atomic<Bool>(false)
    /// Set by the first part if the second started while it waited.
    let met = Atomic<Bool>(false)
}

@Suite struct WorkerPoolTests {
    @Test(arguments: [0, 1, 2, 3, 17, 200])
    func everyPartRunsOnce(parts: Int) {
        let pool = WorkerPool(workers: 2)
        // Many sections back to back: workers late for one section must not take a part of the next.
        for _ in 0..<500 {
            let counts = PartCounts(parts)
            pool.run(parts: parts) { counts.ran($0) }
            #expect(counts.all == Array(repeating: 1, count: parts))
        }
    }

    @Test func sectionsFromSeveralThreadsAndNestedSections() async {
        let pool = WorkerPool(workers: 1)
        // Four callers at once, each section starting another inside each part: the pool takes one
        // section at a time and the others run on Dispatch, all to completion.
        await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var totals = [Int]()
                    for _ in 0..<50 {
                        let counts = PartCounts(6)
                        pool.run(parts: 3) { outer in
                            pool.run(parts: 2) { inner in counts.ran(outer * 2 + inner) }
                        }
                        totals.append(contentsOf: counts.all)
                    }
                    return totals
                }
            }
            for await totals in group {
                #expect(totals == Array(repeating: 1, count: 300))
            }
        }
    }

    @Test func workersWakeAfterSleeping() async throws {
        let pool = WorkerPool(workers: 1)
        for pause in [0, 50] {
            // Longer than the workers spin the second time, so the section must wake a sleeping worker.
            try await Task.sleep(for: .milliseconds(pause))
            #expect(Self.partsRanTogether(pool), "pause \(pause) ms")
        }
    }

    /// Whether the two parts of a section ran at the same time: whichever part starts first waits (up to
    /// five seconds) for the other to start, which only another thread can do.
    static func partsRanTogether(_ pool: WorkerPool) -> Bool {
        let rendezvous = Rendezvous()
        pool.run(parts: 2) { _ in
            if rendezvous.started.add(1, ordering: .acquiringAndReleasing).newValue == 2 {
                rendezvous.secondStarted.store(true, ordering: .releasing)
                return
            }
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if rendezvous.secondStarted.load(ordering: .acquiring) {
                    rendezvous.met.store(true, ordering: .releasing)
                    return
                }
            }
        }
        return rendezvous.met.load(ordering: .acquiring)
    }
}
