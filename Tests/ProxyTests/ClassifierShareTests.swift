import EventLoop
import XCTest
@testable import Proxy

/// A session's share of the everyday classifier threads: each miss owes four times its thread
/// time, drained in real time; past 200 ms of debt its misses are moved aside.
final class ClassifierShareTests: XCTestCase {
    private func at(_ milliseconds: UInt64) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: 1_000_000_000 + milliseconds * 1_000_000)
    }

    func testAFreshSessionIsNotMovedAside() {
        XCTAssertFalse(ClassifierShare().isExhausted(at: at(0)))
    }

    func testACostlyMissMovesTheSessionAsideUntilItsDebtIsWithinTheAllowance() {
        var share = ClassifierShare()
        share.used(.milliseconds(60), at: at(0))     // owes 240 ms
        XCTAssertTrue(share.isExhausted(at: at(0)))
        XCTAssertTrue(share.isExhausted(at: at(39)))
        XCTAssertFalse(share.isExhausted(at: at(40)))
    }

    func testDebtAddsUpAndDrainsBetweenMisses() {
        var share = ClassifierShare()
        share.used(.milliseconds(40), at: at(0))     // owes 160 ms: within the allowance
        XCTAssertFalse(share.isExhausted(at: at(0)))
        share.used(.milliseconds(40), at: at(50))    // 110 left + 160 = 270
        XCTAssertTrue(share.isExhausted(at: at(119)))
        XCTAssertFalse(share.isExhausted(at: at(120)))
        share.used(.milliseconds(60), at: at(1_000)) // fully drained before: owes 240 only
        XCTAssertTrue(share.isExhausted(at: at(1_039)))
        XCTAssertFalse(share.isExhausted(at: at(1_040)))
    }

    func testABurstOfEverydayMissesStaysOnTheEverydayThreads() {
        // A hundred 500 µs misses back to back, 200 µs of round trip between them.
        var share = ClassifierShare()
        var now: UInt64 = 0
        for _ in 0..<100 {
            share.used(.microseconds(500), at: MonotonicInstant(nanoseconds: 1_000_000_000 + now))
            now += 700_000
            XCTAssertFalse(share.isExhausted(at: MonotonicInstant(nanoseconds: 1_000_000_000 + now)))
        }
    }

    func testHugeOrBackwardTimesDoNotTrap() {
        var share = ClassifierShare()
        share.used(.seconds(Int64.max / 2), at: at(10))
        share.used(.seconds(Int64.max / 2), at: at(5))
        XCTAssertTrue(share.isExhausted(at: at(0)))
        XCTAssertFalse(share.isExhausted(at: MonotonicInstant(nanoseconds: .max)))
    }
}
