import XCTest
import Wire
import Policy
@testable import Session

/// A read-only identity's session: the gate's stand-ins and refusals (docs/READONLY.md), the
/// classification hand-off to the shell, and the tripwire, through the machine's actions.
/// The effects on a real server are in IntegrationTests/ReadOnlyEnforcementTests.
final class SessionMachineReadOnlyTests: XCTestCase {
    typealias H = SessionHarness

    /// The error PostgreSQL 15 gives a stand-in (int4in on the marker).
    private func standInError(_ sql: String) throws -> BackendMessage {
        let start = try XCTUnwrap(sql.range(of: "'portcullis-refused-")?.upperBound)
        let end = try XCTUnwrap(sql[start...].firstIndex(of: "'"))
        return H.error("22P02", "invalid input syntax for type integer: \"portcullis-refused-\(sql[start..<end])\"")
    }

    private func errorFields(_ message: BackendMessage?) -> ErrorFields? {
        if case .errorResponse(let fields) = message { fields } else { nil }
    }

    func testAllowedReadIsForwardedByteForByte() {
        let h = SessionHarness(readOnly: true)
        let query = H.encoded([FrontendMessage.query("SELECT * FROM t WHERE a = 'x;y'")])
        h.clientBytes(query)
        XCTAssertEqual(Array(h.toServer.readableBytesView), query)
        XCTAssertEqual(h.requests.map(\.isQuery), [true])
        h.server(complete("SELECT 0"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.ok])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testRefusedQueryIsReplacedAndItsErrorBecomesTheRefusal() throws {
        let h = SessionHarness(readOnly: true)
        h.client(.query("DELETE FROM t"))
        guard case .query(let sql)? = h.sentToServer().first else { return XCTFail("no stand-in Query") }
        XCTAssertFalse(sql.localizedCaseInsensitiveContains("delete"), sql)
        h.server(try standInError(sql), ready)
        let sent = h.sentToClient()
        let refusal = try XCTUnwrap(errorFields(sent.first))
        XCTAssertEqual(refusal.sqlState, "25006")
        XCTAssertEqual(refusal.message, "cannot execute DELETE in a read-only transaction")
        XCTAssertEqual(refusal["H"], "Portcullis identity \"agent\" is read-only.")
        XCTAssertFalse(refusal.message?.contains("portcullis-refused") ?? true)
        XCTAssertEqual(sent.last, ready)
        XCTAssertEqual(h.records.map(\.outcome), [.refused(sqlState: "25006", message: "cannot execute DELETE in a read-only transaction")])
        XCTAssertTrue(h.actions.contains { if case .replaceToClient = $0 { true } else { false } })
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testStatementsBeforeTheRefusedOneRun() throws {
        let h = SessionHarness(readOnly: true)
        h.client(.query("SELECT 1; DELETE FROM t; SELECT 2"))
        guard case .query(let sql)? = h.sentToServer().first else { return XCTFail("no stand-in Query") }
        XCTAssertTrue(sql.hasPrefix("SELECT 1;"), sql)
        XCTAssertFalse(sql.localizedCaseInsensitiveContains("delete"), sql)
        XCTAssertFalse(sql.contains("SELECT 2"), sql)
        h.server(H.dataRow("1"), complete("SELECT 1"), try standInError(sql), ready)
        XCTAssertEqual(h.records.map(\.substatementID), [1, 2])
        XCTAssertEqual(h.records.map(\.outcome).last, .refused(sqlState: "25006", message: "cannot execute DELETE in a read-only transaction"))
    }

    func testRefusedParseInTheMiddleOfAPipeline() throws {
        let h = SessionHarness(readOnly: true)
        h.client(.parse(name: "a", query: "SELECT 1", parameterTypes: []), H.bind(statement: "a"), .execute(portal: "", maxRows: 0), .sync,
                 .parse(name: "w", query: "INSERT INTO t VALUES (1)", parameterTypes: []), H.bind(statement: "w"),
                 .execute(portal: "", maxRows: 0), .sync,
                 H.bind(statement: "a"), .execute(portal: "", maxRows: 0), .sync)
        let sent = h.sentToServer()
        XCTAssertEqual(sent.count, 11, "one message for each: the refused Parse has a stand-in")
        guard case .parse(let name, let sql, _) = sent[4] else { return XCTFail("no stand-in Parse") }
        XCTAssertEqual(name, "w", "under the client's statement name")
        // The Bind of the statement never prepared is not run either (PreparedTexts: no text).
        guard case .parse(let unknown, _, _) = sent[5] else { return XCTFail("no stand-in for the Bind") }
        XCTAssertEqual(unknown, "portcullis_refused")
        XCTAssertEqual(Array(sent[6...]), [.execute(portal: "", maxRows: 0), .sync,
                                           H.bind(statement: "a"), .execute(portal: "", maxRows: 0), .sync])
        h.server(.parseComplete, .bindComplete, complete("SELECT 1"), ready,
                 try standInError(sql), ready,
                 .bindComplete, complete("SELECT 1"), ready)
        let replies = h.sentToClient()
        XCTAssertEqual(errorFields(replies[4])?.sqlState, "25006")
        XCTAssertEqual(h.records.map(\.outcome), [.ok, .refused(sqlState: "25006", message: "cannot execute INSERT in a read-only transaction"), .ok])
        XCTAssertEqual(h.records[1].text, "INSERT INTO t VALUES (1)")
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testRefusedFunctionCall() throws {
        let h = SessionHarness(readOnly: true)
        // lo_import (OID 764): a large-object writer.
        h.client(.functionCall(.init(functionOID: 764, argumentFormats: [0], arguments: [Array("/etc/passwd".utf8)], resultFormat: 1)))
        guard case .functionCall(let call)? = h.sentToServer().first else { return XCTFail("no stand-in FunctionCall") }
        XCTAssertEqual(call.functionOID, 42, "int4in, which fails on the marker")
        let marker = String(decoding: call.arguments.first??.prefix { _ in true } ?? [], as: UTF8.self)
        h.server(H.error("22P02", "invalid input syntax for type integer: \"\(marker)\""), ready)
        XCTAssertEqual(errorFields(h.sentToClient().first)?.sqlState, "25006")
        XCTAssertEqual(h.records.map(\.source), [.functionCall(oid: 764)])
        XCTAssertEqual(h.records.first?.outcome, .refused(sqlState: "25006", message: "cannot execute lo_import() in a read-only transaction"))
    }

    func testTooLongStatementIsRefusedUnread() throws {
        let h = SessionHarness(readOnly: true, maxStatementSize: 100)
        h.client(.query("SELECT '" + String(repeating: "x", count: 200) + "'"))
        XCTAssertEqual(h.requests, [], "not classified")
        guard case .query(let sql)? = h.sentToServer().first else { return XCTFail("no stand-in") }
        h.server(try standInError(sql), ready)
        let refusal = try XCTUnwrap(errorFields(h.sentToClient().first))
        XCTAssertEqual(refusal.sqlState, "54000")
        XCTAssertTrue(refusal.message?.contains("readonly_max_statement_size is 100 bytes") ?? false)
    }

    func testInvalidUTF8IsRefusedUnclassified() throws {
        let h = SessionHarness(readOnly: true)
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt8(ascii: "Q"))
        bytes.writeInteger(Int32(4 + 12))
        bytes.writeBytes(Array("SELECT '".utf8) + [0xFF, 0xFE, 0x27] + [0])
        h.clientBytes(bytes.readableBytesView)
        XCTAssertEqual(h.requests, [])
        guard case .query(let sql)? = h.sentToServer().first else { return XCTFail("no stand-in") }
        h.server(try standInError(sql), ready)
        XCTAssertEqual(errorFields(h.sentToClient().first)?.sqlState, "22021")
    }

    func testClientMessagesWaitBehindAClassificationInOrder() {
        let h = SessionHarness(readOnly: true)
        h.classifiesInline = false
        h.client(.query("SELECT 1"), .query("SELECT 2"))
        XCTAssertEqual(h.requests.map(\.sql), ["SELECT 1"])
        XCTAssertEqual(h.toServer.readableBytes, 0)
        XCTAssertTrue(h.machine.isHoldingClientMessages)
        XCTAssertTrue(h.machine.statementInFlight)
        XCTAssertFalse(h.machine.isAtRest)
        h.answerClassification()
        XCTAssertEqual(h.requests.map(\.sql), ["SELECT 1", "SELECT 2"])
        h.answerClassification()
        XCTAssertEqual(h.sentToServer(), [.query("SELECT 1"), .query("SELECT 2")])
        XCTAssertEqual(h.records, [])
        h.server(complete("SELECT 1"), ready, complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.map(\.statementID), [1, 2], "each observed once despite the wait")
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testClassificationThatRanOutOfTimeIsRefused() throws {
        let h = SessionHarness(readOnly: true)
        h.classifiesInline = false
        h.client(.query("SELECT 1"))
        h.answerClassification(ReadOnlyGate.refusing(SessionMachine.classificationTimedOut))
        guard case .query(let sql)? = h.sentToServer().first else { return XCTFail("no stand-in") }
        h.server(try standInError(sql), ready)
        let refusal = try XCTUnwrap(errorFields(h.sentToClient().first))
        XCTAssertEqual(refusal.sqlState, "57014")
        XCTAssertEqual(refusal.message, "canceling statement due to statement timeout")
    }

    func testParseDeclaringAFlaggedTypeIsRefusedOnTheShellsWord() throws {
        let h = SessionHarness(readOnly: true)
        h.classifiesInline = false
        h.client(.parse(name: "", query: "SELECT $1", parameterTypes: [16_500]), .sync)
        XCTAssertEqual(h.requests.first?.parameterTypes, [16_500])
        let refusal = Refusal(sqlState: "42501", message: "the type with OID 16500 runs code", isPostgreSQLText: false)
        let action = h.machine.classified(h.classifier.classify(sql: "SELECT $1", catalog: .empty), parameterTypesRefusal: refusal)
        guard case .replaceToServer(_, var bytes) = action else { return XCTFail("expected a stand-in, got \(action)") }
        let frame = try XCTUnwrap(try FrameDecoder(maxMessageLength: 1 << 20).peekFrame(in: bytes))
        guard case .parse(_, let sql, let types) = try FrontendMessage.decode(frame: frame, from: &bytes) else { return XCTFail("not a Parse") }
        XCTAssertEqual(types, [])
        XCTAssertTrue(sql.contains("portcullis-refused-"))
    }

    func testMultipleCommandsInAParseAreRefusedFirst() throws {
        let h = SessionHarness(readOnly: true)
        h.client(.parse(name: "", query: "SELECT 1; SELECT 2", parameterTypes: []), .sync)
        guard case .parse(_, let sql, _)? = h.sentToServer().first else { return XCTFail("no stand-in") }
        h.server(try standInError(sql), ready)
        let refusal = try XCTUnwrap(errorFields(h.sentToClient().first))
        XCTAssertEqual(refusal.sqlState, "42601")
        XCTAssertEqual(refusal.message, "cannot insert multiple commands into a prepared statement")
    }

    func testPendingRefusalsAreBoundedByHoldingTheClient() throws {
        let h = SessionHarness(readOnly: true, followsStatements: false)
        for _ in 0..<ReadOnlyGate.maxPending { h.client(.query("DELETE FROM t")) }
        let standIns = h.sentToServer()
        XCTAssertEqual(standIns.count, ReadOnlyGate.maxPending)
        h.client(.query("SELECT 1"))
        XCTAssertEqual(h.toServer.readableBytes, 0, "held while the gate is at its bound")
        XCTAssertTrue(h.machine.isHoldingClientMessages)
        guard case .query(let sql) = standIns[0] else { return XCTFail("not a Query") }
        h.server(try standInError(sql), ready)
        h.pumpClient()
        XCTAssertEqual(h.sentToServer(), [.query("SELECT 1")], "resumes as replies resolve refusals")
    }

    func testTripwireEndsTheSessionWhenTheServerLeavesReadOnlyMode() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("SELECT set_config('default_transaction_read_only', 'off', false)"))
        h.server(H.rowDescription("set_config"), H.dataRow("off"), complete("SELECT 1"),
                 .parameterStatus(name: "default_transaction_read_only", value: "off"), ready)
        guard let closed = h.closed else { return XCTFail("not closed") }
        XCTAssertEqual(closed.error?.sqlState, "25006")
        XCTAssertEqual(closed.error?["S"], "FATAL")
        XCTAssertEqual(h.events.filter { if case .readOnlyBreached = $0 { true } else { false } }.count, 1)
        let breach = BackendMessage.parameterStatus(name: "default_transaction_read_only", value: "off")
        XCTAssertEqual(h.fromServer.readableBytes, H.encoded([breach, ready]).count, "neither the breach nor what follows is passed on")
        XCTAssertFalse(h.sentToClient().contains(breach))
        XCTAssertFalse(h.machine.isAtRest, "never reused")
    }

    func testHarmlessParameterStatusPasses() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("SET application_name = 'x'"))
        h.server(complete("SET"), .parameterStatus(name: "application_name", value: "x"), ready)
        XCTAssertNil(h.closed)
        XCTAssertEqual(h.sentToClient(), [complete("SET"), .parameterStatus(name: "application_name", value: "x"), ready])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testServersOwnErrorsPassUnchanged() {
        let h = SessionHarness(readOnly: true)
        h.client(.query("SELECT * FROM missing"))
        let error = H.error("42P01", "relation \"missing\" does not exist")
        h.serverBytes(H.encoded([error, ready]))
        XCTAssertEqual(Array(h.toClient.readableBytesView), H.encoded([error, ready]))
        XCTAssertEqual(h.records.map(\.outcome), [.failed(sqlState: "42P01", message: "relation \"missing\" does not exist")])
    }

    func testAMarkerTheClientWroteItselfIsNotARefusal() {
        let h = SessionHarness(readOnly: true)
        let text = "SELECT 'portcullis-refused-tok1z'::int"
        h.client(.query(text))
        XCTAssertEqual(h.sentToServer(), [.query(text)], "a read, forwarded")
        let error = H.error("22P02", "invalid input syntax for type integer: \"portcullis-refused-tok1z\"")
        h.server(error, ready)
        XCTAssertEqual(h.sentToClient(), [error, ready])
        XCTAssertEqual(h.records.first?.outcome, .failed(sqlState: "22P02", message: "invalid input syntax for type integer: \"portcullis-refused-tok1z\""))
    }

    func testReadOnlyWithoutTheLifecycleStillRefusesAndCounts() throws {
        let h = SessionHarness(readOnly: true, followsStatements: false)
        h.client(.query("UPDATE t SET a = 1"), .query("SELECT 1"))
        let sent = h.sentToServer()
        guard case .query(let sql) = sent[0] else { return XCTFail("no stand-in") }
        h.server(try standInError(sql), ready)
        XCTAssertFalse(h.machine.isAtRest, "the second Query is owed")
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertEqual(errorFields(h.sentToClient().first)?.sqlState, "25006")
        XCTAssertEqual(h.records, [])
    }
}
