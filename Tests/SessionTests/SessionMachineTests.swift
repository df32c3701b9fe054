import XCTest
import Wire
@testable import Session

/// The session machine on simple-protocol traffic (docs 55.2.2 Simple Query) as PostgreSQL 15
/// answers it: what is forwarded, the lifecycle events, transaction status, catalog changes,
/// cancel bookkeeping and the reuse predicate.
final class SessionMachineTests: XCTestCase {
    typealias H = SessionHarness

    func testSimpleQueryIsForwardedByteForByteAndEndsInOneRecord() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        XCTAssertEqual(h.sentToServer(), [.query("SELECT 1")])
        XCTAssertTrue(h.machine.statementInFlight)
        let replies: [BackendMessage] = [H.rowDescription("?column?"), H.dataRow("1"), complete("SELECT 1"), ready]
        h.serverBytes(H.encoded(replies))
        XCTAssertEqual(Array(h.toClient.readableBytesView), H.encoded(replies), "replies pass unchanged")
        XCTAssertEqual(h.records.count, 1)
        let record = h.records[0]
        XCTAssertEqual(record.text, "SELECT 1")
        XCTAssertEqual(record.source, .simpleQuery)
        XCTAssertEqual(record.tag, "SELECT 1")
        XCTAssertEqual(record.rows, 1)
        XCTAssertEqual(record.outcome, .ok)
        XCTAssertEqual(record.transactionStatus, UInt8(ascii: "I"))
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertEqual(h.machine.statementCount, 1)
    }

    func testMultiStatementStringGivesOneRecordPerStatement() {
        let h = SessionHarness()
        let text = "CREATE TEMP TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t"
        h.client(.query(text))
        h.server(complete("CREATE TABLE"), complete("INSERT 0 2"), H.rowDescription("a"), H.dataRow("1"), H.dataRow("2"),
                 complete("SELECT 2"), ready)
        XCTAssertEqual(h.records.map(\.substatementID), [1, 2, 3])
        XCTAssertEqual(Set(h.records.map(\.statementID)), [1])
        XCTAssertEqual(h.records.map(\.command), ["CREATE TABLE", "INSERT", "SELECT"])
        XCTAssertEqual(h.records.map(\.rows), [nil, 2, 2])
        XCTAssertTrue(h.records.allSatisfy { $0.text == text })
    }

    func testErrorInTheMiddleOfAStringEndsItAndLaterStatementsHaveNoRecord() {
        let h = SessionHarness()
        h.client(.query("SELECT 1; SELECT 1/0; SELECT 3"))
        h.server(H.rowDescription("?column?"), H.dataRow("1"), complete("SELECT 1"),
                 H.error("22012", "division by zero"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.ok, .failed(sqlState: "22012", message: "division by zero")])
        XCTAssertEqual(h.records.map(\.substatementID), [1, 2])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testEmptyQueryHasNoRecord() {
        let h = SessionHarness()
        h.client(.query(""))
        h.server(.emptyQueryResponse, ready)
        XCTAssertEqual(h.records, [])
        XCTAssertEqual(h.sentToClient(), [.emptyQueryResponse, ready])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testTransactionStatusFollowsReadyForQuery() {
        let h = SessionHarness()
        h.client(.query("BEGIN"))
        h.server(complete("BEGIN"), readyInTransaction)
        XCTAssertEqual(h.machine.transactionStatus, .inTransaction)
        XCTAssertFalse(h.machine.isAtRest, "inside a transaction block")
        h.client(.query("SELECT nope"))
        h.server(H.error("42703", "column \"nope\" does not exist"), readyFailed)
        XCTAssertEqual(h.machine.transactionStatus, .failed)
        XCTAssertFalse(h.machine.isAtRest)
        h.client(.query("ROLLBACK"))
        h.server(complete("ROLLBACK"), ready)
        XCTAssertEqual(h.machine.transactionStatus, .idle)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertEqual(h.records.map(\.transactionStatus), [UInt8(ascii: "T"), UInt8(ascii: "E"), UInt8(ascii: "I")])
    }

    func testNotAtRestWhileAStatementIsInFlight() {
        let h = SessionHarness()
        XCTAssertTrue(h.machine.isAtRest, "a fresh session")
        h.client(.query("SELECT pg_sleep(1)"))
        XCTAssertFalse(h.machine.isAtRest)
        h.server(H.rowDescription("pg_sleep"), H.dataRow(""))
        XCTAssertFalse(h.machine.isAtRest)
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testNotAtRestInsideAServerMessage() {
        let h = SessionHarness()
        h.client(.query("SELECT repeat('x', 100)"))
        let row = H.encoded([H.dataRow(String(repeating: "x", count: 100))])
        let rest = H.encoded([complete("SELECT 1"), ready])
        h.serverBytes(row.prefix(40))
        XCTAssertEqual(h.toClient.readableBytes, 40, "a row is forwarded as it arrives, not held")
        h.serverBytes(row.dropFirst(40) + rest.prefix(3))
        XCTAssertFalse(h.machine.isAtRest)
        h.serverBytes(rest.dropFirst(3))
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertEqual(Array(h.toClient.readableBytesView), row + rest)
    }

    func testNotAtRestInsideAClientMessage() {
        let h = SessionHarness(followsStatements: false)
        // Without the lifecycle a read-write session holds no Query back: it streams.
        let query = H.encoded([.query("SELECT '" + String(repeating: "y", count: 200) + "'")])
        h.clientBytes(query.prefix(50))
        XCTAssertEqual(h.toServer.readableBytes, 50)
        XCTAssertFalse(h.machine.isAtRest)
        h.clientBytes(query.dropFirst(50))
        XCTAssertEqual(h.toServer.readableBytes, query.count)
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testAClientMessageStillArrivingWholeDoesNotKeepTheServerBusy() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        // A Query still arriving is held whole (for the lifecycle): the server has not seen a
        // byte of it, so once it answered the first it is at rest (PostgreSQL's
        // idle_session_timeout also runs while a message is only partly read).
        let next = H.encoded([.query("SELECT 2")])
        h.clientBytes(next.prefix(4))
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
        h.clientBytes(next.dropFirst(4))
        XCTAssertFalse(h.machine.isAtRest)
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testCancelIsNeededOnlyWhileAStatementRuns() {
        let h = SessionHarness()
        XCTAssertFalse(h.machine.needsCancelOnEnd)
        h.client(.query("SELECT pg_sleep(10)"))
        XCTAssertTrue(h.machine.needsCancelOnEnd)
        XCTAssertEqual(h.machine.backend?.processID, 4242)
        h.machine.serverClosed()
        XCTAssertFalse(h.machine.needsCancelOnEnd, "no backend left to cancel")
        XCTAssertNil(h.machine.backend)
    }

    func testCancelNotNeededAtRest() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        XCTAssertFalse(h.machine.needsCancelOnEnd)
    }

    func testCatalogChangeIsReportedWhenItsTransactionIsOver() {
        let h = SessionHarness()
        h.client(.query("BEGIN"))
        h.server(complete("BEGIN"), readyInTransaction)
        h.client(.query("CREATE VIEW v AS SELECT 1"))
        h.server(complete("CREATE VIEW"), readyInTransaction)
        XCTAssertEqual(h.catalogChanges, 0, "not before the transaction ends")
        h.client(.query("COMMIT"))
        h.server(complete("COMMIT"), ready)
        XCTAssertEqual(h.catalogChanges, 1)
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        XCTAssertEqual(h.catalogChanges, 1, "reported once")
    }

    func testCatalogChangeInAutocommitAndNoneForOrdinaryStatements() {
        let h = SessionHarness(followsStatements: false)
        h.client(.query("INSERT INTO t VALUES (1); UPDATE t SET a = 2; SELECT 1"))
        h.server(complete("INSERT 0 1"), complete("UPDATE 1"), complete("SELECT 1"), ready)
        XCTAssertEqual(h.catalogChanges, 0)
        h.client(.query("GRANT SELECT ON t TO app_ro"))
        h.server(complete("GRANT"), ready)
        XCTAssertEqual(h.catalogChanges, 1)
        XCTAssertEqual(h.records, [], "no lifecycle without followsStatements")
    }

    func testTerminateReleasesTheServerAndIsNotForwarded() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        _ = h.sentToServer()
        h.client(.terminate)
        XCTAssertTrue(h.released)
        XCTAssertEqual(h.actions.last, .releaseServer(consume: 5))
        XCTAssertEqual(h.sentToServer(), [])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testUnknownClientMessageTypeIsFatalAtItsFirstByte() {
        let h = SessionHarness()
        h.clientBytes([UInt8(ascii: "y")])
        guard let closed = h.closed else { return XCTFail("not closed") }
        XCTAssertEqual(closed.error?.sqlState, "08P01")
        XCTAssertEqual(closed.error?["S"], "FATAL")
        XCTAssertEqual(h.toServer.readableBytes, 0)
    }

    func testOverlongClientMessageIsFatalFromItsHeader() {
        let h = SessionHarness(maxMessageSize: 1000)
        h.clientBytes(H.encoded([.query(String(repeating: "x", count: 2000))]).prefix(5))
        XCTAssertEqual(h.closed?.error?.sqlState, "54000", "max_message_size: program_limit_exceeded")
        XCTAssertEqual(h.closed?.error?["S"], "FATAL")
        XCTAssertEqual(h.toServer.readableBytes, 0)
    }

    func testInvalidServerMessageClosesWithoutAnErrorToTheClient() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        // A length below 4 cannot be (55.7).
        h.serverBytes([UInt8(ascii: "Z"), 0, 0, 0, 2])
        XCTAssertNotNil(h.closed)
        XCTAssertNil(h.closed?.error)
        XCTAssertTrue(h.closed?.reason.hasPrefix("invalid message from server") == true)
    }

    func testEventsAreTakenOnce() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.machine.takeEvents(), [])
    }

    func testNoticesAndNotificationsPassUnchanged() {
        let h = SessionHarness()
        h.client(.query("LISTEN c; NOTIFY c, 'x'"))
        let replies: [BackendMessage] = [
            complete("LISTEN"), .noticeResponse(.error(sqlState: "00000", message: "note", severity: "NOTICE")),
            complete("NOTIFY"), .notificationResponse(processID: 4242, channel: "c", payload: "x"), ready,
        ]
        h.serverBytes(H.encoded(replies))
        XCTAssertEqual(Array(h.toClient.readableBytesView), H.encoded(replies))
        XCTAssertEqual(h.records.map(\.command), ["LISTEN", "NOTIFY"])
    }

    func testPipelinedSimpleQueriesAreAnsweredInOrder() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"), .query("SELECT 2; SELECT 3"), .query("SELECT x"))
        XCTAssertEqual(h.sentToServer().count, 3)
        h.server(complete("SELECT 1"), ready, complete("SELECT 1"), complete("SELECT 1"), ready)
        XCTAssertFalse(h.machine.isAtRest, "the third query has not been answered")
        h.server(H.error("42703", "column \"x\" does not exist"), ready)
        XCTAssertEqual(h.records.map(\.statementID), [1, 2, 2, 3])
        XCTAssertEqual(h.records.map(\.substatementID), [1, 1, 2, 1])
        XCTAssertEqual(h.records.last?.outcome, .failed(sqlState: "42703", message: "column \"x\" does not exist"))
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testMessagesAwaitingRepliesAreBoundedByHoldingTheClient() {
        let h = SessionHarness(followsStatements: false)
        let bound = SessionMachine.maxPendingOperations
        h.clientBytes(Array(repeating: H.encoded([FrontendMessage.sync]), count: bound).joined())
        XCTAssertEqual(h.toServer.readableBytes, 5 * bound)
        XCTAssertTrue(h.machine.isHoldingClientMessages)
        h.client(.query("SELECT 1"))
        XCTAssertEqual(h.toServer.readableBytes, 5 * bound, "held, not dropped, while the server owes this many replies")
        h.server(ready)
        h.pumpClient()
        XCTAssertEqual(h.toServer.readableBytes, 5 * bound + H.encoded([FrontendMessage.query("SELECT 1")]).count,
                       "resumes as replies come")
        XCTAssertNil(h.closed)
    }
}
