import Foundation
import Testing

@testable import ImageIO

/// The bound on image decodes (server and ingestion): how many at once, and how many decoded bytes together.
@Suite struct DecodeGateTests {
    /// Counts the decodes running at once and the most there ever were.
    final class Peak: @unchecked Sendable {
        private let lock = NSLock()
        private var now = 0
        private(set) var most = 0
        func enter() { lock.withLock { now += 1; most = max(most, now) } }
        func leave() { lock.withLock { now -= 1 } }
    }

    static func run(_ gate: DecodeGate, shares: [Int]) async throws -> Int {
        let peak = Peak()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for share in shares {
                group.addTask {
                    _ = try await gate.run(reserving: share) {
                        peak.enter()
                        usleep(20_000)
                        peak.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(gate.load == (0, 0), "everything reserved is given back")
        return peak.most
    }

    @Test func atMostSlotsRunAtOnceWithinTheByteBudget() async throws {
        #expect(try await Self.run(DecodeGate(slots: 2, budgetBytes: 100), shares: Array(repeating: 10, count: 12)) == 2)
        // Two shares of 60 do not fit 100 together: one at a time.
        #expect(try await Self.run(DecodeGate(slots: 2, budgetBytes: 100), shares: Array(repeating: 60, count: 6)) == 1)
        // Larger than the whole budget: runs, alone.
        #expect(try await Self.run(DecodeGate(slots: 4, budgetBytes: 100), shares: [500, 500, 500]) == 1)
    }

    @Test func aFailedDecodeGivesItsShareBack() async throws {
        let gate = DecodeGate(slots: 1, budgetBytes: 100)
        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await gate.run(reserving: 100) { throw Failure() } }
        #expect(gate.load == (0, 0))
        #expect(try await gate.run(reserving: 100) { 7 } == 7)
    }
}
