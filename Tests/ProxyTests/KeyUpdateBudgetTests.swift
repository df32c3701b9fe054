import XCTest
@testable import Proxy

/// The KeyUpdate bound is a token bucket: a burst, then one per MiB received and one per minute
/// open, never more than the burst at once.
final class KeyUpdateBudgetTests: XCTestCase {
    func testABurstIsAllowedAtOnceAndNoMore() {
        var budget = KeyUpdateBudget()
        XCTAssertTrue(budget.allows(256, bytesReceived: 0, age: .zero))
        XCTAssertFalse(budget.allows(257, bytesReceived: 0, age: .zero))
        var flood = KeyUpdateBudget()
        // A flood's records carry no application data; seconds do not buy a burst.
        XCTAssertFalse(flood.allows(300, bytesReceived: 1000, age: .seconds(59)))
    }

    func testDataAndTimeEarnMoreOneByOne() {
        var budget = KeyUpdateBudget()
        XCTAssertTrue(budget.allows(256, bytesReceived: 0, age: .zero))
        XCTAssertTrue(budget.allows(257, bytesReceived: 1 << 20, age: .zero))
        XCTAssertFalse(budget.allows(258, bytesReceived: 1 << 20, age: .zero))
        var timed = KeyUpdateBudget()
        XCTAssertTrue(timed.allows(256, bytesReceived: 0, age: .zero))
        XCTAssertTrue(timed.allows(257, bytesReceived: 0, age: .seconds(60)))
        XCTAssertFalse(timed.allows(258, bytesReceived: 0, age: .seconds(100)))
    }

    /// Found in review: idle for a week, a connection had ten thousand updates to spend at once.
    func testCreditNeverExceedsTheBurst() {
        var idle = KeyUpdateBudget()
        XCTAssertTrue(idle.allows(1, bytesReceived: 0, age: .zero))
        let week = Duration.seconds(7 * 24 * 3600)
        XCTAssertTrue(idle.allows(257, bytesReceived: 1 << 40, age: week))
        XCTAssertFalse(idle.allows(258, bytesReceived: 1 << 40, age: week))
    }

    /// Every five minutes for a month reading little, or at AES-GCM's record limit for 1 TB.
    func testAConnectionThatRotatesAsItShouldIsNeverCut() {
        var timed = KeyUpdateBudget()
        var updates: UInt64 = 0
        for minute in stride(from: 5, through: 30 * 24 * 60, by: 5) {
            updates += 1
            XCTAssertTrue(timed.allows(updates, bytesReceived: UInt64(minute) << 10, age: .seconds(Int64(minute) * 60)))
        }
        var busy = KeyUpdateBudget()
        for gigabytes in stride(from: 380, through: 1000, by: 380) {
            XCTAssertTrue(busy.allows(UInt64(gigabytes / 380), bytesReceived: UInt64(gigabytes) << 30, age: .seconds(3600)))
        }
    }
}
