import XCTest
import Wire
@testable import Session

/// Extended-protocol traffic (docs 55.2.3 Extended Query) as libpq and pgbench -M extended
/// send it and PostgreSQL 15 answers it: named and unnamed statements and portals, pipelines,
/// errors in the middle (the server discards everything up to the next Sync).
final class SessionMachineExtendedTests: XCTestCase {
    typealias H = SessionHarness

    /// What PQexecParams sends: Parse, Bind, Describe portal, Execute, Sync.
    private func execParams(_ sql: String, statement: String = "", portal: String = "") -> [FrontendMessage] {
        [.parse(name: statement, query: sql, parameterTypes: []), H.bind(portal: portal, statement: statement),
         .describe(.portal, name: portal), .execute(portal: portal, maxRows: 0), .sync]
    }

    func testExecParamsIsForwardedAndRecorded() {
        let h = SessionHarness()
        for message in execParams("SELECT $1::int") { h.client(message) }
        XCTAssertEqual(h.sentToServer(), execParams("SELECT $1::int"))
        h.server(.parseComplete, .bindComplete, H.rowDescription("int4"), H.dataRow("7"), complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.records[0].text, "SELECT $1::int")
        XCTAssertEqual(h.records[0].source, .extendedQuery)
        XCTAssertEqual(h.records[0].rows, 1)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testNamedStatementPreparedOnceExecutedTwiceAndAnUnnamedOneInOneBatch() {
        let h = SessionHarness()
        h.client(.parse(name: "s1", query: "SELECT $1::int", parameterTypes: [23]),
                 H.bind(statement: "s1", parameters: [Array("1".utf8)]), .execute(portal: "", maxRows: 0),
                 H.bind(statement: "s1", parameters: [Array("2".utf8)]), .execute(portal: "", maxRows: 0),
                 .parse(name: "", query: "UPDATE t SET a = 1", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0),
                 .sync)
        h.server(.parseComplete, .bindComplete, H.dataRow("1"), complete("SELECT 1"), .bindComplete, H.dataRow("2"), complete("SELECT 1"),
                 .parseComplete, .bindComplete, complete("UPDATE 4"), ready)
        XCTAssertEqual(h.records.map(\.text), ["SELECT $1::int", "SELECT $1::int", "UPDATE t SET a = 1"])
        XCTAssertEqual(h.records.map(\.statementID), [1, 2, 3])
        XCTAssertEqual(h.records.map(\.rows), [1, 1, 4])
        // The named statement outlives its batch.
        h.client(H.bind(portal: "p", statement: "s1"), .execute(portal: "p", maxRows: 0), .sync)
        h.server(.bindComplete, complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.last?.text, "SELECT $1::int")
    }

    func testPipelineWithAnErrorInTheMiddleBatch() {
        let h = SessionHarness()
        // Three batches sent before any reply (libpq pipeline mode).
        h.client(.parse(name: "ok", query: "SELECT 1", parameterTypes: []), H.bind(statement: "ok"), .execute(portal: "", maxRows: 0), .sync,
                 .parse(name: "", query: "SELECT 1/0", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0),
                 H.bind(statement: "ok"), .execute(portal: "", maxRows: 0), .sync,
                 H.bind(statement: "ok"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(h.sentToServer().count, 13, "nothing is held back")
        h.server(.parseComplete, .bindComplete, complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.ok])
        XCTAssertTrue(h.machine.statementInFlight, "two batches still owe their ReadyForQuery")
        XCTAssertFalse(h.machine.isAtRest)
        // Batch 2: the division fails at Execute; the server skips its second Execute.
        h.server(.parseComplete, .bindComplete, H.error("22012", "division by zero"), ready)
        XCTAssertEqual(h.records.count, 2)
        XCTAssertEqual(h.records[1].text, "SELECT 1/0")
        XCTAssertEqual(h.records[1].outcome, .failed(sqlState: "22012", message: "division by zero"))
        XCTAssertFalse(h.machine.isAtRest)
        h.server(.bindComplete, complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.map(\.statementID), [1, 2, 3])
        XCTAssertEqual(h.records[2].outcome, .ok)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testPipelineCountsReadyForQueryWithoutTheLifecycleToo() {
        // Read-write session without the audit stream: nothing is held, types only.
        let h = SessionHarness(followsStatements: false)
        h.client(.parse(name: "", query: "SELECT 1", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync,
                 .query("SELECT 2"), .parse(name: "", query: "SELECT 1/0", parameterTypes: []), H.bind(),
                 .execute(portal: "", maxRows: 0), .sync)
        XCTAssertTrue(h.actions.allSatisfy { if case .forwardToServer = $0 { true } else { false } })
        h.server(.parseComplete, .bindComplete, complete("SELECT 1"), ready)
        XCTAssertFalse(h.machine.isAtRest, "the Query and the last batch are owed")
        h.server(complete("SELECT 1"), ready)
        XCTAssertFalse(h.machine.isAtRest)
        XCTAssertTrue(h.machine.needsCancelOnEnd)
        h.server(.parseComplete, .bindComplete, H.error("22012", "division by zero"), ready)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertFalse(h.machine.needsCancelOnEnd)
        XCTAssertEqual(h.records, [])
    }

    func testParseErrorFailsTheBatchWithTheParseText() {
        let h = SessionHarness()
        h.client(.parse(name: "", query: "SELEC 1", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync)
        h.server(.errorResponse(.error(sqlState: "42601", message: "syntax error at or near \"SELEC\"")), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.records[0].text, "SELEC 1")
        XCTAssertEqual(h.records[0].outcome, .failed(sqlState: "42601", message: "syntax error at or near \"SELEC\""))
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testBindErrorFailsTheExecuteOfItsBatch() {
        let h = SessionHarness()
        h.client(.parse(name: "", query: "SELECT $1::int", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete,
                 H.error("08P01", "bind message supplies 0 parameters, but prepared statement \"\" requires 1"), ready)
        XCTAssertEqual(h.records.map(\.text), ["SELECT $1::int"])
        XCTAssertEqual(h.records.first?.outcome,
                       .failed(sqlState: "08P01", message: "bind message supplies 0 parameters, but prepared statement \"\" requires 1"))
    }

    func testMessagesAfterAnErrorUpToSyncAreDiscardedAsTheServerDoes() {
        let h = SessionHarness()
        // The error arrives before the client sent its Sync: what it sends until then is skipped
        // by the server — a Query too.
        h.client(.parse(name: "", query: "SELECT 1/0", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0))
        h.server(.parseComplete, .bindComplete, H.error("22012", "division by zero"))
        h.client(.parse(name: "", query: "SELECT 2", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0),
                 .query("SELECT 3"), .sync)
        h.server(ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertTrue(h.machine.isAtRest, "the skipped Query owes no ReadyForQuery")
    }

    func testRowLimitedPortalSuspendsAndResumes() {
        let h = SessionHarness()
        h.client(.query("BEGIN"))
        h.server(complete("BEGIN"), readyInTransaction)
        h.client(.parse(name: "", query: "SELECT generate_series(1, 3)", parameterTypes: []), H.bind(portal: "c"),
                 .execute(portal: "c", maxRows: 2), .sync)
        h.server(.parseComplete, .bindComplete, H.dataRow("1"), H.dataRow("2"), .portalSuspended, readyInTransaction)
        XCTAssertEqual(h.records.count, 2, "BEGIN, and the portal's statement once it started")
        XCTAssertEqual(h.records[1].text, "SELECT generate_series(1, 3)")
        h.client(.execute(portal: "c", maxRows: 2), .sync)
        h.server(H.dataRow("3"), complete("SELECT 1"), readyInTransaction)
        XCTAssertEqual(h.records.count, 2, "the rest of the portal is no new statement")
        XCTAssertFalse(h.machine.isAtRest, "inside the transaction block")
        h.client(.query("COMMIT"))
        h.server(complete("COMMIT"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testClosedStatementIsForgotten() {
        let h = SessionHarness()
        h.client(.parse(name: "s", query: "SELECT 1", parameterTypes: []), .sync)
        h.server(.parseComplete, ready)
        h.client(.close(.statement, name: "s"), .sync)
        h.server(.closeComplete, ready)
        h.client(H.bind(statement: "s"), .execute(portal: "", maxRows: 0), .sync)
        h.server(H.error("26000", "prepared statement \"s\" does not exist"), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.records[0].text, "<unknown prepared statement \"s\">", "no text for a statement that no longer exists")
        XCTAssertFalse(h.records[0].textKnown)
        XCTAssertEqual(h.records[0].outcome, .failed(sqlState: "26000", message: "prepared statement \"s\" does not exist"))
    }

    func testDescribeAndFlushOweNothing() {
        let h = SessionHarness()
        h.client(.parse(name: "s", query: "SELECT 1", parameterTypes: []), .describe(.statement, name: "s"), .flush)
        XCTAssertEqual(h.sentToServer().count, 3)
        h.server(.parseComplete, .raw(type: UInt8(ascii: "t"), payload: [0, 0]), H.rowDescription("?column?"))
        XCTAssertEqual(h.records, [])
        // Without a Sync there is no ReadyForQuery: the extended query is still open.
        XCTAssertFalse(h.machine.isAtRest)
        h.client(.sync)
        h.server(ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testEmptyExtendedQueryHasNoRecord() {
        let h = SessionHarness()
        h.client(.parse(name: "", query: "", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, .emptyQueryResponse, ready)
        XCTAssertEqual(h.records, [])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testErrorAtSyncItselfIsNotAttributedToAStatement() {
        let h = SessionHarness()
        // A deferred constraint fails at the implicit COMMIT that Sync runs.
        h.client(.parse(name: "", query: "INSERT INTO d VALUES (1)", parameterTypes: []), H.bind(),
                 .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, complete("INSERT 0 1"),
                 H.error("23505", "duplicate key value violates unique constraint \"d_pkey\""), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.ok])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testLargeBindIsForwardedInPiecesWithoutTheLifecycle() {
        let h = SessionHarness(followsStatements: false)
        let bind = H.encoded([H.bind(parameters: [Array(repeating: 0x41, count: 10_000)])])
        h.clientBytes(bind.prefix(1000))
        XCTAssertEqual(h.toServer.readableBytes, 1000, "not held back")
        h.clientBytes(bind.dropFirst(1000))
        XCTAssertEqual(Array(h.toServer.readableBytesView), bind)
    }
}
