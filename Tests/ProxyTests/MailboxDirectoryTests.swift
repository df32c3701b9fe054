import XCTest
@testable import EventLoop
@testable import Proxy

/// Found in review (2026-12-07): every broadcast was kept for loops that might start later, so
/// each SIGHUP's runtime (its TLS contexts and all) stayed alive: RSS grew about 70 kB per reload.
final class MailboxDirectoryTests: XCTestCase {
    final class Message: Sendable {}

    func testBroadcastsAreKeptOnlyForLoopsNotStartedYet() throws {
        let directory = MailboxDirectory(count: 2)
        let first = try LoopMailbox(), second = try LoopMailbox()
        directory.set(0, first)
        directory.broadcast("before the second loop")
        directory.set(1, second)
        XCTAssertEqual(second.drain().compactMap { $0 as? String }, ["before the second loop"],
                       "a loop that starts later gets what was broadcast before")
        XCTAssertEqual(first.drain().compactMap { $0 as? String }, ["before the second loop"])
        weak var released: Message?
        do {
            let message = Message()
            released = message
            directory.broadcast(message)
            XCTAssertEqual(first.drain().count, 1)
            XCTAssertEqual(second.drain().count, 1)
        }
        XCTAssertNil(released, "a broadcast made after every loop started is kept")
    }
}
