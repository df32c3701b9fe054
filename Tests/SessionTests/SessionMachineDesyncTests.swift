import XCTest
import Wire
@testable import Session

/// Found in review: a Query whose body the proxy cannot decode (no NUL) is forwarded but not followed;
/// PostgreSQL answers it with ERROR + ReadyForQuery, which then ends the *next* Query.
final class SessionMachineMalformedFollowTests: XCTestCase {
    func testMalformedQueryDesynchronisesLifecycle() {
        let h = SessionHarness()
        // 'Q', length 4: empty body (no terminating NUL). PostgreSQL: ERROR 08P01 "invalid string in message", then Z.
        h.clientBytes([UInt8(ascii: "Q"), 0, 0, 0, 4])
        h.client(.query("SELECT pg_sleep(30)"))
        XCTAssertFalse(h.machine.isAtRest)
        // The server's answer to the malformed Query only.
        h.server(.errorResponse(.error(sqlState: "08P01", message: "invalid string in message")), .readyForQuery(.idle))
        // pg_sleep is still running on the server, yet:
        XCTAssertFalse(h.machine.isAtRest, "lifecycle thinks the server owes nothing while pg_sleep runs")
    }
}

final class SessionMachineCopyEndTests: XCTestCase {
    typealias H = SessionHarness
    /// A copy-in ended by the server's error (bad data row) leaves inCopyIn set: every later
    /// Sync is ignored by the lifecycle, but PostgreSQL answers it with ReadyForQuery.
    func run(follows: Bool) {
        let h = SessionHarness(followsStatements: follows)
        h.client(.query("COPY t FROM STDIN"))
        h.server(H.copyResponse("G"))
        h.client(.copyData(Array("not-an-int\n".utf8)))          // no CopyDone/CopyFail ever
        h.server(.errorResponse(.error(sqlState: "22P02", message: "invalid input syntax for type integer")), ready)
        XCTAssertTrue(h.machine.isAtRest)
        h.client(.sync, .query("SELECT pg_sleep(60)"))
        h.server(ready)                                           // the Sync's ReadyForQuery
        // pg_sleep runs on the server now:
        XCTAssertFalse(h.machine.isAtRest, "follows=\(follows): at rest while a query runs -> connection reused while busy")
    }
    func testCopyDesyncWithAudit() { run(follows: true) }
    func testCopyDesyncWithoutAudit() { run(follows: false) }

    /// libpq's extended COPY FROM STDIN sends a Sync right after the Execute, inside the copy
    /// window. If the server then ends the copy with an error, whether that Sync (and any other
    /// sent before the client's CopyDone) was ignored or answered depends on where the error
    /// happened: the machine stops claiming to know, so the session is never at rest again and
    /// its query is cancelled at the end.
    func testErrorAfterSyncsInTheCopyWindowLosesTrackForGood() {
        let h = SessionHarness()
        h.client(.parse(name: "", query: "COPY t FROM STDIN", parameterTypes: []),
                 .bind(.init(portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [])),
                 .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, H.copyResponse("G"))
        h.client(.copyData(Array("x\n".utf8)), .copyDone, .sync)
        h.server(.errorResponse(.error(sqlState: "22P02", message: "invalid input syntax for type integer")), ready)
        XCTAssertFalse(h.machine.isAtRest)
        XCTAssertTrue(h.machine.needsCancelOnEnd)
        h.server(ready)
        h.client(.query("SELECT 1"))
        h.server(.commandComplete(tag: "SELECT 1"), ready)
        XCTAssertFalse(h.machine.isAtRest, "never at rest once the replies cannot be matched")
    }

    /// A copy that ends normally keeps exact track: the window's Syncs were ignored.
    func testCopyEndedByCommandCompleteKeepsTrack() {
        let h = SessionHarness()
        h.client(.parse(name: "", query: "COPY t FROM STDIN", parameterTypes: []),
                 .bind(.init(portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [])),
                 .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, H.copyResponse("G"))
        h.client(.copyData(Array("1\n".utf8)), .copyDone, .sync)
        h.server(.commandComplete(tag: "COPY 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }
}
