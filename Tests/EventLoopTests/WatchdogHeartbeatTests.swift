import XCTest
@testable import EventLoop

/// The watchdog decision: WATCHDOG=1 only when every loop acknowledged the current round.
final class WatchdogHeartbeatTests: XCTestCase {
    func testPingsOnlyWhenEveryLoopAcknowledged() {
        var heartbeat = WatchdogHeartbeat(loops: 3)
        XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [0, 1, 2]))
        heartbeat.acknowledged(loop: 0, round: 1)
        heartbeat.acknowledged(loop: 2, round: 1)
        XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [1]))
        heartbeat.acknowledged(loop: 1, round: 1)
        XCTAssertEqual(heartbeat.tick(), .ping(nextRound: 2))
        // A new round starts with nobody having answered it.
        XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [0, 1, 2]))
    }

    func testStaleAndUnknownAnswersDoNotCount() {
        var heartbeat = WatchdogHeartbeat(loops: 2)
        heartbeat.acknowledged(loop: 0, round: 1)
        heartbeat.acknowledged(loop: 1, round: 1)
        XCTAssertEqual(heartbeat.tick(), .ping(nextRound: 2))
        // A loop answering a probe of the previous round (still queued) says nothing about now.
        heartbeat.acknowledged(loop: 0, round: 1)
        heartbeat.acknowledged(loop: 1, round: 1)
        heartbeat.acknowledged(loop: 5, round: 2)
        heartbeat.acknowledged(loop: -1, round: 2)
        XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [0, 1]))
        heartbeat.acknowledged(loop: 0, round: 2)
        heartbeat.acknowledged(loop: 1, round: 3)
        XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [1]))
    }

    func testStalledLoopWithholdsUntilItAnswers() {
        var heartbeat = WatchdogHeartbeat(loops: 2)
        heartbeat.acknowledged(loop: 0, round: 1)
        for _ in 0..<5 { XCTAssertEqual(heartbeat.tick(), .withhold(silentLoops: [1])) }
        XCTAssertEqual(heartbeat.round, 1)
        heartbeat.acknowledged(loop: 1, round: 1)
        XCTAssertEqual(heartbeat.tick(), .ping(nextRound: 2))
    }
}
