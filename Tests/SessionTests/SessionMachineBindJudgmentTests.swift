import XCTest
import Wire
import Policy
@testable import Session

/// A read-only session's Bind is judged again (SessionMachine+BindJudgment.swift,
/// ``PreparedTexts``): against every text its statement name may stand for on the server, as
/// the server's answers tell which Parse and Close took effect.
final class SessionMachineBindJudgmentTests: XCTestCase {
    typealias H = SessionHarness

    private func bind(_ statement: String) -> FrontendMessage {
        .bind(.init(portal: "", statement: statement, parameterFormats: [], parameters: [], resultFormats: []))
    }

    private func prepare(_ h: H, _ name: String, _ sql: String) {
        h.client(.parse(name: name, query: sql, parameterTypes: []), .sync)
        h.server(.parseComplete, ready)
        _ = h.sentToServer()
        _ = h.sentToClient()
    }

    static let refusedNow = ReadOnlyGate.refusing(Refusal(sqlState: "25006", message: "planted since", isPostgreSQLText: false))

    /// The catalog changed since the Parse: the Bind is replaced by a stand-in under a name of
    /// its own (the client's statement stays), and its error becomes the refusal.
    func testABindWhoseStatementIsRefusedNowIsReplaced() throws {
        let h = SessionHarness(readOnly: true)
        prepare(h, "s1", "SELECT lower(a) FROM t")
        h.classifiesInline = false
        h.client(bind("s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT lower(a) FROM t")
        XCTAssertEqual(h.requests.last?.isQuery, false)
        XCTAssertTrue(h.sentToServer().isEmpty, "the Bind waits for its judgment, and what follows it too")
        h.answerClassification(Self.refusedNow)
        let sent = h.sentToServer()
        guard case .parse(let name, let sql, _)? = sent.first else { return XCTFail("no stand-in: \(sent)") }
        XCTAssertEqual(name, "portcullis_refused")
        XCTAssertTrue(sql.contains("portcullis-refused-"), sql)
        XCTAssertEqual(Array(sent.dropFirst()), [.execute(portal: "", maxRows: 0), .sync])
        let start = try XCTUnwrap(sql.range(of: "'portcullis-refused-")?.upperBound)
        let token = sql[start...].prefix { $0 != "'" }
        h.server(H.error("22P02", "invalid input syntax for type integer: \"portcullis-refused-\(token)\""), ready)
        let answer = h.sentToClient()
        guard case .errorResponse(let fields)? = answer.first else { return XCTFail("\(answer)") }
        XCTAssertEqual(fields.sqlState, "25006")
        XCTAssertEqual(fields.message, "planted since")
        XCTAssertEqual(answer.last, ready)
    }

    /// The process-wide bound on kept text (``KeptTextBudget``): past it a read-only session's
    /// new Parse is refused (53200), never forwarded; a session that ends gives its part back.
    func testAParseBeyondTheProcessWideBoundIsRefusedAndAnEndedSessionGivesItsPartBack() {
        let budget = KeptTextBudget(limit: 100)
        let first = SessionHarness(readOnly: true, keptTexts: budget)
        prepare(first, "s1", "SELECT '" + String(repeating: "a", count: 60) + "'")
        XCTAssertEqual(budget.bytes, 69)
        let second = SessionHarness(readOnly: true, keptTexts: budget)
        second.client(.parse(name: "s2", query: "SELECT '" + String(repeating: "b", count: 30) + "'", parameterTypes: []), .sync)
        let sent = second.sentToServer()
        guard case .parse(let name, let sql, _)? = sent.first else { return XCTFail("\(sent)") }
        XCTAssertEqual(name, "s2")
        XCTAssertFalse(sql.contains("bbb"), "the refused text is never sent")
        let start = sql.range(of: "'portcullis-refused-")!.upperBound
        let token = sql[start...].prefix { $0 != "'" }
        second.server(H.error("22P02", "invalid input syntax for type integer: \"portcullis-refused-\(token)\""), ready)
        guard case .errorResponse(let fields)? = second.sentToClient().first else { return XCTFail("no error") }
        XCTAssertEqual(fields.sqlState, "53200")
        XCTAssertTrue(fields.message?.contains("max_kept_statement_memory") == true, "\(fields)")
        // The first session's Binds still work; once it ends, the second may keep its text.
        first.client(bind("s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(first.sentToServer(), [bind("s1"), .execute(portal: "", maxRows: 0), .sync])
        // The unnamed statement is not held to it (every extended-protocol query parses one).
        second.client(.parse(name: "", query: "SELECT 2", parameterTypes: []), bind(""), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(second.sentToServer().first, .parse(name: "", query: "SELECT 2", parameterTypes: []))
        second.server(.parseComplete, .bindComplete, complete("SELECT 1"), ready)
        first.machine.releaseKeptTexts()
        second.machine.releaseKeptTexts()
        XCTAssertEqual(budget.bytes, 0)
        prepare(second, "s2", "SELECT '" + String(repeating: "b", count: 30) + "'")
        XCTAssertEqual(budget.bytes, 39 + 8, "s2 and the unnamed statement second still holds")
    }

    func testAnAllowedBindIsForwardedAsItCame() {
        let h = SessionHarness(readOnly: true)
        prepare(h, "s1", "SELECT 1")
        h.client(bind("s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1")
        XCTAssertEqual(h.sentToServer(), [bind("s1"), .execute(portal: "", maxRows: 0), .sync])
    }

    /// Found in review (audit, the same hole): a Parse the server skips after an error, or
    /// fails (42P05), leaves the old statement; the Bind is judged against both texts.
    func testAParseInAFailedBatchAddsATextWithoutReplacingTheOld() {
        let h = SessionHarness(readOnly: true)
        prepare(h, "s1", "SELECT 1 AS judged_first")
        h.client(bind("nosuch"), .parse(name: "s1", query: "SELECT 2 AS harmless", parameterTypes: []), .sync)
        h.server(H.error("26000", "prepared statement \"nosuch\" does not exist"), ready)
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1 AS judged_first\n;\nSELECT 2 AS harmless")
    }

    /// A Bind sent before the Parse's answer, in the same batch, can run the new text only (a
    /// failed Parse makes the server skip it); once a batch failed, later Binds are judged
    /// against both texts.
    func testAPipelinedParseCountsBeforeItsAnswer() {
        let h = SessionHarness(readOnly: true)
        prepare(h, "s1", "SELECT 1")
        h.client(.parse(name: "s1", query: "SELECT 3", parameterTypes: []), bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 3")
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1\n;\nSELECT 3", "in the next batch, before the answers: either")
        h.server(H.error("42P05", "prepared statement \"s1\" already exists"), ready)
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1\n;\nSELECT 3", "the failed Parse may have been the one the Bind ran")
    }

    func testACloseAndANewParseInCleanBatchesReplaceTheText() {
        let h = SessionHarness(readOnly: true)
        prepare(h, "s1", "SELECT 1")
        h.client(.close(.statement, name: "s1"), .sync)
        h.server(.closeComplete, ready)
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1", "forgotten only once its CloseComplete came")
        let before = h.requests.count
        h.server(H.error("26000", "prepared statement \"s1\" does not exist"), ready)
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.count, before, "an unknown name is the server's to refuse (26000)")
        prepare(h, "s1", "SELECT 4")
        h.client(bind("s1"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 4")
    }

    /// PostgreSQL keys statements by their first 63 bytes: two longer names that agree there
    /// are one statement.
    func testNamesAreComparedAsPostgreSQLKeysThem() {
        let h = SessionHarness(readOnly: true)
        let stem = String(repeating: "n", count: 63)
        prepare(h, stem + "A", "SELECT 5")
        h.client(bind(stem + "B"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT 5")
    }

    func testTextsBeyondTheBoundAreLostAndTheirBindsRefused() {
        var texts = PreparedTexts()
        let a = SessionMachine.StatementName("a"), b = SessionMachine.StatementName("b")
        texts.defined(a, .init(sql: "SELECT 1", parameterTypes: []), inBatch: 0)
        texts.defined(b, .init(sql: String(repeating: "x", count: PreparedTexts.maxBytes), parameterTypes: []), inBatch: 0)
        texts.batchCompleted(0, failed: false)
        XCTAssertEqual(texts.candidates(a)?.map(\.sql), ["SELECT 1"])
        XCTAssertNil(texts.candidates(b), "lost: a Bind of it is refused")
        // A failed batch's definition does not make it known again; a clean one does.
        texts.defined(b, .init(sql: "SELECT 2", parameterTypes: []), inBatch: 1)
        texts.batchCompleted(1, failed: true)
        XCTAssertNil(texts.candidates(b))
        texts.defined(b, .init(sql: "SELECT 3", parameterTypes: []), inBatch: 2)
        texts.batchCompleted(2, failed: false)
        XCTAssertEqual(texts.candidates(b)?.map(\.sql), ["SELECT 3"])
    }
}

/// Found in review of the re-judgment: the gate's batches follow the server's answers even when
/// the server skips a Query after an extended-protocol error, and a PREPARE that a Bind/Execute
/// runs defines its name again.
final class SessionMachineBatchSkipTests: XCTestCase {
    typealias H = SessionHarness

    private func bind(_ statement: String) -> FrontendMessage {
        .bind(.init(portal: "", statement: statement, parameterFormats: [], parameters: [], resultFormats: []))
    }

    func testAQuerySkippedAfterAnErrorDoesNotShiftTheBatches() {
        let h = SessionHarness(readOnly: true)
        h.client(.parse(name: "s", query: "SELECT lower(a) FROM t", parameterTypes: []), .sync)
        h.server(.parseComplete, ready)
        // The Query is skipped (ignore_till_sync): one ReadyForQuery, the Sync's.
        h.client(bind("nosuch"), .query("SELECT 1"), .sync)
        h.server(H.error("26000", "prepared statement \"nosuch\" does not exist"), ready)
        // The Close is skipped likewise: s stays.
        h.client(bind("nosuch"), .close(.statement, name: "s"), .sync)
        h.server(H.error("26000", "prepared statement \"nosuch\" does not exist"), ready)
        h.client(.sync)
        h.server(ready)
        h.client(bind("s"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT lower(a) FROM t", "the skipped Close did not forget s")
    }

    /// Found in review: psycopg's unnamed statements (Parse "", Bind "", Execute, Sync) after
    /// more than 16 failed queries, or 16 of them pipelined in one batch, were refused as lost.
    /// A Bind after a Parse of its name in the same batch can run that text only.
    func testABindAfterItsParseInTheSameBatchIsJudgedOnItsText() {
        let h = SessionHarness(readOnly: true)
        for i in 0..<20 {
            h.client(.parse(name: "", query: "SELECT \(i), 1/$1", parameterTypes: []), bind(""), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(h.requests.last?.sql, "SELECT \(i), 1/$1")
            h.server(.parseComplete, .bindComplete, H.error("22012", "division by zero"), ready)
        }
        h.client(.parse(name: "", query: "SELECT $1::int + 1", parameterTypes: []), bind(""), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(h.requests.last?.sql, "SELECT $1::int + 1")
        guard case .bind? = h.sentToServer().dropFirst(20 * 4 + 1).first else { return XCTFail("the Bind was not forwarded") }
        // Sixteen and more in one batch.
        let h2 = SessionHarness(readOnly: true)
        for i in 0..<20 { h2.client(.parse(name: "", query: "SELECT \(i)", parameterTypes: []), bind(""), .execute(portal: "", maxRows: 0)) }
        XCTAssertEqual(h2.requests.last?.sql, "SELECT 19")
        XCTAssertFalse(h2.sentToServer().contains { if case .parse(let name, _, _) = $0 { name == "portcullis_refused" } else { false } })
    }

    func testAPrepareRunByABindDefinesItsNameAgain() {
        let h = SessionHarness(readOnly: true)
        h.client(.parse(name: "p", query: "PREPARE s AS SELECT 1", parameterTypes: []), .sync)
        h.server(.parseComplete, ready)
        h.client(.close(.statement, name: "s"), .sync)
        h.server(.closeComplete, ready)
        h.client(bind("p"), .execute(portal: "", maxRows: 0), .sync)
        h.server(.bindComplete, complete("PREPARE"), ready)
        h.client(bind("s"), .sync)
        XCTAssertEqual(h.requests.last?.sql, "PREPARE s AS SELECT 1")
    }
}

/// SQL-level EXECUTE (and a protocol Bind of a name SQL PREPARE defined): the PREPARE's Query
/// text is judged again, in a second classification after the EXECUTE's own.
final class SessionMachineExecuteJudgmentTests: XCTestCase {
    typealias H = SessionHarness

    func testExecuteJudgesThePreparesTextAgain() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("PREPARE p AS SELECT lower(a) FROM t"))
        h.server(.commandComplete(tag: "PREPARE"), ready)
        _ = h.sentToServer()
        h.classifiesInline = false
        h.client(.query("SELECT 1; EXECUTE p"))
        XCTAssertEqual(h.requests.last?.sql, "SELECT 1; EXECUTE p")
        h.answerClassification()
        XCTAssertEqual(h.requests.last?.sql, "PREPARE p AS SELECT lower(a) FROM t", "the executed statement's text is asked for")
        h.answerClassification(SessionMachineBindJudgmentTests.refusedNow)
        guard case .query(let sent)? = h.sentToServer().first else { return XCTFail("nothing sent") }
        XCTAssertFalse(sent.contains("EXECUTE"), sent)
        XCTAssertTrue(sent.contains("portcullis-refused-"), sent)
    }

    func testAnAllowedExecuteIsForwardedAsItCame() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("PREPARE p AS SELECT 1"))
        h.server(.commandComplete(tag: "PREPARE"), ready)
        _ = h.sentToServer()
        h.client(.query("EXECUTE p"))
        XCTAssertEqual(h.requests.suffix(2).map(\.sql), ["EXECUTE p", "PREPARE p AS SELECT 1"])
        XCTAssertEqual(h.sentToServer(), [.query("EXECUTE p")])
    }

    func testABindOfAnSQLPreparedNameIsJudged() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("PREPARE p AS SELECT 2"))
        h.server(.commandComplete(tag: "PREPARE"), ready)
        h.client(.bind(.init(portal: "", statement: "p", parameterFormats: [], parameters: [], resultFormats: [])), .sync)
        XCTAssertEqual(h.requests.last?.sql, "PREPARE p AS SELECT 2")
    }

    /// A protocol statement whose text is `EXECUTE p` is not followed further: refused.
    func testAnExecuteInsideAnExecutedStatementIsRefused() {
        let h = SessionHarness(readOnly: true)
        h.client(.parse(name: "s1", query: "EXECUTE p", parameterTypes: []), .sync)
        h.server(.parseComplete, ready)
        h.client(.query("EXECUTE s1"))
        guard case .query(let sent)? = h.sentToServer().last else { return XCTFail("nothing sent") }
        XCTAssertTrue(sent.contains("portcullis-refused-"), sent)
    }
}
