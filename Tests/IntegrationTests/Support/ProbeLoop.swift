import Foundation
import XCTest

extension IntegrationTestCase {
    /// `SELECT 1` round trips on `probe`, 10 ms apart, for as long as `command` runs (at most
    /// `timeout` seconds): how many there were and the slowest. Tests that a slow connect waits
    /// off the loop compare the worst with the figure their docs give.
    func roundTrips(on probe: LibPQSession, while command: BackgroundCommand, timeout: TimeInterval,
                    file: StaticString = #filePath, line: UInt = #line) throws -> (worst: TimeInterval, count: Int) {
        let started = Date()
        var worst: TimeInterval = 0
        var count = 0
        while command.isRunning && Date().timeIntervalSince(started) < timeout {
            let before = Date()
            XCTAssertEqual(try probe.rows("SELECT 1"), [["1"]], file: file, line: line)
            worst = max(worst, Date().timeIntervalSince(before))
            count += 1
            usleep(10_000)
        }
        return (worst, count)
    }
}
