import XCTest
import Wire
@testable import Session

/// Transaction pooling with pipelined messages of different kinds (simple Query between
/// extended-protocol messages, COPY in the extended protocol): cases a differential fuzzer
/// found against PostgreSQL 15 (pool_mode = transaction, pool_max_size = 1), each reproduced
/// here with the exact message sequence and failing on the code before its fix.
final class SessionMachinePipelineTests: XCTestCase {
    typealias H = SessionHarness

    private func pooled() -> SessionHarness {
        var count = 0
        return SessionHarness(readOnly: false, followsStatements: false,
                              pooling: .init(refusesPinning: false, tokens: { count += 1; return "pin\(count)z" }))
    }

    private func types(_ messages: [FrontendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    private func types(_ messages: [BackendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    /// A client that prepared `s1` (an INSERT) and then moved to a server that lacks it.
    private func clientWithS1OnAnotherServer() -> SessionHarness {
        let h = pooled()
        h.client(.parse(name: "s1", query: "INSERT INTO t VALUES (1)", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        _ = h.sentToServer()
        _ = h.sentToClient()
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 10, secretKey: [1, 1, 1, 1])
        return h
    }

    // MARK: DEALLOCATE ALL / DISCARD ALL pipelined before a Bind

    /// `Query("DEALLOCATE ALL")`, Bind s1, Execute, Sync in one write: PostgreSQL drops s1 and
    /// the Bind fails with 26000. The Bind must not be planned from the view before the
    /// DEALLOCATE ALL (the proxy slipped `Parse s1` in before it and the INSERT ran).
    func testDeallocateAllPipelinedBeforeABindDropsTheStatement() {
        for text in ["DEALLOCATE ALL", "DISCARD ALL"] {
            let h = clientWithS1OnAnotherServer()
            h.client(.query(text), H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(types(h.sentToServer()), "QBES", "\(text): nothing slipped in before the Bind")
            XCTAssertTrue(h.machine.clientStatements.isEmpty, "\(text): the client's view changed when it was sent")
            h.server(complete(text), ready, H.error("26000", "prepared statement \"s1\" does not exist"), ready)
            XCTAssertEqual(types(h.sentToClient()), "CZEZ")
            XCTAssertTrue(h.machine.clientStatements.isEmpty, "\(text): confirmed by its CommandComplete")
            // Later Binds of s1 still find nothing to prepare again.
            h.client(H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(types(h.sentToServer()), "BES")
        }
    }

    /// A DEALLOCATE ALL that fails (in an aborted transaction: 25P02) drops nothing in
    /// PostgreSQL: the client's s1 comes back and is prepared again where it is needed.
    func testAFailedDeallocateAllLeavesTheStatements() {
        let h = clientWithS1OnAnotherServer()
        h.client(.query("BEGIN"))
        h.server(complete("BEGIN"), readyInTransaction)
        h.client(.query("SELECT 1/0"))
        h.server(H.error("22012", "division by zero"), readyFailed)
        h.client(.query("DEALLOCATE ALL"))
        XCTAssertTrue(h.machine.clientStatements.isEmpty, "projected when sent")
        h.server(H.error("25P02", "current transaction is aborted"), readyFailed)
        XCTAssertNotNil(h.machine.clientStatements["s1"], "PostgreSQL still has s1")
        h.client(.query("ROLLBACK"))
        h.server(complete("ROLLBACK"), ready)
        _ = h.sentToServer()
        h.client(H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CPBES", "s1 prepared again on the server that lacks it")
    }

    /// A DEALLOCATE ALL the server never reached (an earlier statement of the string failed)
    /// drops nothing either.
    func testADeallocateAllAfterAFailedStatementOfItsStringLeavesTheStatements() {
        let h = clientWithS1OnAnotherServer()
        h.client(.query("SELECT 1/0; DEALLOCATE ALL"))
        XCTAssertTrue(h.machine.clientStatements.isEmpty)
        h.server(H.error("22012", "division by zero"), ready)
        XCTAssertNotNil(h.machine.clientStatements["s1"])
        _ = h.sentToServer()
        h.client(H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CPBES")
    }

    // MARK: COPY FROM STDIN in the extended protocol, ended by an error

    /// An ErrorResponse as PostgreSQL 15 sends it, with its routine (`R`) and context (`W`).
    private static func error(_ sqlState: String, _ message: String, routine: String, context: String? = nil) -> BackendMessage {
        var fields = ErrorFields.error(sqlState: sqlState, message: message)
        if let context { fields.fields.append(.init(code: UInt8(ascii: "W"), value: context)) }
        fields.fields.append(.init(code: UInt8(ascii: "R"), value: routine))
        return .errorResponse(fields)
    }

    /// libpq's PQexecParams("COPY cp FROM STDIN"): Parse/Bind/Describe/Execute/Sync in one write,
    /// answered up to the CopyInResponse.
    private func startExtendedCopy() -> SessionHarness {
        let h = pooled()
        h.client(.parse(name: "", query: "COPY cp FROM STDIN", parameterTypes: []), H.bind(), .describe(.portal, name: ""),
                 .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, .noData, H.copyResponse("G"))
        XCTAssertFalse(h.machine.isAtRest)
        return h
    }

    /// The next statement is answered and the session comes back to rest.
    private func assertTracksTheNextQuery(_ h: SessionHarness, file: StaticString = #filePath, line: UInt = #line) {
        h.client(.query("SELECT 1"))
        XCTAssertFalse(h.machine.isAtRest, file: file, line: line)
        h.server(H.rowDescription("x"), H.dataRow("1"), complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest, "the replies still match the messages", file: file, line: line)
        XCTAssertFalse(h.machine.lifecycle.lostTrack, file: file, line: line)
    }

    /// PQputCopyEnd(conn, "errmsg"): CopyFail then Sync. CopyGetData read the Sync sent after the
    /// Execute in copy-in mode and ignored it ("Ignore Flush/Sync for the convenience of client
    /// libraries"), then raised 57014 at the CopyFail: only the second Sync is answered, and the
    /// server is free again (it was held for the whole session: lostTrack).
    func testCopyFailAfterLibpqsSyncComesBackToRest() {
        let h = startExtendedCopy()
        h.client(.copyFail("client abort"), .sync)
        h.server(Self.error("57014", "COPY from stdin failed: client abort", routine: "CopyGetData", context: "COPY cp, line 1"), ready)
        XCTAssertTrue(h.machine.isAtRest, "one ReadyForQuery owed, and it came")
        XCTAssertFalse(h.machine.lifecycle.lostTrack)
        assertTracksTheNextQuery(h)
    }

    /// A bad row: the server errors while reading the data (CONTEXT "COPY cp, line 1, …" from
    /// CopyFromErrorCallback, so it had read a CopyData, and the Sync before it, in copy-in
    /// mode). It then skips everything up to the client's next Sync (ignore_till_sync), the
    /// CopyDone too: not at rest until that Sync's ReadyForQuery.
    func testABadRowAfterLibpqsSyncComesBackToRest() {
        let h = startExtendedCopy()
        h.client(.copyData(Array("x\n".utf8)))
        h.server(Self.error("22P02", "invalid input syntax for type integer: \"x\"", routine: "pg_strtoint32",
                            context: "COPY cp, line 1, column a: \"x\""))
        XCTAssertFalse(h.machine.isAtRest, "the server waits for the client's Sync")
        h.client(.copyDone, .sync)
        XCTAssertFalse(h.machine.isAtRest)
        h.server(ready)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertFalse(h.machine.lifecycle.lostTrack)
        assertTracksTheNextQuery(h)
    }

    /// An error before the copy reads anything (CopyFrom's checks, a BEFORE STATEMENT trigger:
    /// after the CopyInResponse) while the client had sent nothing after its Sync: the server
    /// cannot have read a copy message, so that Sync was not read in copy-in mode, it ends
    /// the error's skip (ReadyForQuery), and the client's CopyFail and Sync later are ignored
    /// and answered by PostgresMain as outside a copy.
    func testAnErrorBeforeTheCopyReadsAnythingAnswersLibpqsSync() {
        let h = startExtendedCopy()
        h.server(Self.error("P0001", "no copies", routine: "exec_stmt_raise", context: "PL/pgSQL function f() line 1 at RAISE"))
        XCTAssertFalse(h.machine.isAtRest)
        h.server(ready)
        XCTAssertTrue(h.machine.isAtRest, "the Sync after the Execute was answered")
        h.client(.copyFail("client abort"), .sync)
        XCTAssertFalse(h.machine.isAtRest)
        h.server(ready)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertFalse(h.machine.lifecycle.lostTrack)
        assertTracksTheNextQuery(h)
    }

    /// Still ambiguous, still failing closed: the client sent data after the Sync and the error
    /// does not say it was raised reading it (no COPY context: a BEFORE STATEMENT trigger, or
    /// a bad row: either is possible).
    func testAnErrorThatMayComeBeforeTheReadStillLosesTrack() {
        let h = startExtendedCopy()
        h.client(.copyData(Array("1\n".utf8)), .copyDone, .sync)
        h.server(Self.error("P0001", "no copies", routine: "exec_stmt_raise", context: "PL/pgSQL function f() line 1 at RAISE"), ready)
        XCTAssertTrue(h.machine.lifecycle.lostTrack)
        XCTAssertFalse(h.machine.isAtRest)
    }

    // MARK: A simple Query after a failed extended-protocol message

    /// `Describe(portal "nope")`, `Query("SELECT 1")`, `Sync` in one write, then `Parse a1`,
    /// `Sync`. PostgreSQL: 34000 for the Describe; the Query is skipped with everything else up
    /// to the Sync (postgres.c: ignore_till_sync; no ReadyForQuery of its own), then
    /// ReadyForQuery; then ParseComplete, ReadyForQuery. The proxy blamed the error on the
    /// Query and waited for its ReadyForQuery: the FIFO shifted by one and the client got the
    /// CloseComplete of the proxy's own Close instead of its ParseComplete.
    func testAQuerySkippedAfterAFailedDescribeKeepsTheRepliesInOrder() {
        let h = pooled()
        h.client(.describe(.portal, name: "nope"), .query("SELECT 1"), .sync)
        XCTAssertEqual(types(h.sentToServer()), "DQS")
        h.server(H.error("34000", "portal \"nope\" does not exist"), ready)
        XCTAssertEqual(types(h.sentToClient()), "EZ")
        XCTAssertTrue(h.machine.isAtRest, "the Sync's ReadyForQuery was the only one owed")
        h.client(.parse(name: "a1", query: "SELECT 1", parameterTypes: []), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CPS", "another client's a1 closed first")
        h.server(.closeComplete, .parseComplete, ready)
        XCTAssertEqual(types(h.sentToClient()), "1Z", "the client's ParseComplete, not the proxy's CloseComplete")
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertNotNil(h.machine.clientStatements["a1"])
    }

    /// The same with the error read before the Query is sent: the Query is skipped too.
    func testAQuerySentWhileTheServerSkipsToSyncHasNoReadyForQuery() {
        let h = pooled()
        h.client(H.bind(portal: "", statement: "nope"), .execute(portal: "", maxRows: 0))
        h.server(H.error("26000", "prepared statement \"nope\" does not exist"))
        h.client(.query("SELECT 1"), .sync, .parse(name: "a1", query: "SELECT 1", parameterTypes: []), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BEQSCPS")
        h.server(ready, .closeComplete, .parseComplete, ready)
        XCTAssertEqual(types(h.sentToClient()), "EZ1Z")
        XCTAssertTrue(h.machine.isAtRest)
    }

    /// A Query whose extended messages before it all succeeded fails on its own: no skip, its
    /// ReadyForQuery comes, then the Sync's.
    func testAQuerysOwnErrorAfterExtendedMessagesIsNotASkip() {
        let h = pooled()
        h.client(.parse(name: "", query: "SELECT 1", parameterTypes: []), .describe(.statement, name: ""), .query("SELECT 1/0"), .sync,
                 .parse(name: "a1", query: "SELECT 1", parameterTypes: []), .sync)
        h.server(.parseComplete, .raw(type: UInt8(ascii: "t"), payload: [0, 0]), H.rowDescription("x"),
                 H.error("22012", "division by zero"), ready, ready, .closeComplete, .parseComplete, ready)
        XCTAssertEqual(types(h.sentToClient()), "1tTEZZ1Z")
        XCTAssertTrue(h.machine.isAtRest)
    }
}
