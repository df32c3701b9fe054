import EventLoop
import XCTest
@testable import Proxy

/// A session's share of the everyday classifier threads: costly misses move its next ones
/// aside for ten times their thread time, drained in real time.
final class ClassifierShareTests: XCTestCase {
    private func at(_ milliseconds: UInt64) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: 1_000_000_000 + milliseconds * 1_000_000)
    }

    func testAFreshSessionIsNotMovedAside() {
        XCTAssertFalse(ClassifierShare().isExhausted(at: at(0)))
    }

    func testACostlyMissMovesTheSessionAsideForTenTimesItsCost() {
        var share = ClassifierShare()
        share.used(.milliseconds(60), at: at(0))
        XCTAssertTrue(share.isExhausted(at: at(0)))
        XCTAssertTrue(share.isExhausted(at: at(599)))
        XCTAssertFalse(share.isExhausted(at: at(600)))
    }

    func testDebtAddsUpAndDrainsBetweenMisses() {
        var share = ClassifierShare()
        share.used(.milliseconds(10), at: at(0))    // owes 100 ms
        share.used(.milliseconds(10), at: at(50))   // 50 left + 100
        XCTAssertTrue(share.isExhausted(at: at(199)))
        XCTAssertFalse(share.isExhausted(at: at(200)))
        share.used(.milliseconds(1), at: at(1_000)) // fully drained before: owes 10 ms only
        XCTAssertTrue(share.isExhausted(at: at(1_009)))
        XCTAssertFalse(share.isExhausted(at: at(1_010)))
    }

    func testEverydayMissesPassAtOnce() {
        // A 200 µs miss is owed for 2 ms: the next statement a client sends after reading the
        // answer (a network round trip later, at least) finds the everyday threads again.
        var share = ClassifierShare()
        share.used(.microseconds(200), at: at(0))
        XCTAssertFalse(share.isExhausted(at: at(2)))
    }

    func testHugeOrBackwardTimesDoNotTrap() {
        var share = ClassifierShare()
        share.used(.seconds(Int64.max / 2), at: at(10))
        share.used(.seconds(Int64.max / 2), at: at(5))
        XCTAssertTrue(share.isExhausted(at: at(0)))
        XCTAssertFalse(share.isExhausted(at: MonotonicInstant(nanoseconds: .max)))
    }
}
