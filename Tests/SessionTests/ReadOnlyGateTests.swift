import XCTest
import Wire
import Policy
@testable import Session
@testable import Proxy

/// The gate's decisions on message values; the effects on a real server are in
/// IntegrationTests/ReadOnlyEnforcementTests.
final class ReadOnlyGateTests: XCTestCase {
    var classifier = CachingStatementClassifier()

    /// Tokens are random in the shell; here predictable, to show the gate's matching.
    private func gate() -> ReadOnlyGate {
        var issued = 0
        return ReadOnlyGate(identity: "agent", tokens: { issued += 1; return "tok\(issued)z" })
    }

    /// The replacement frame decoded back into a message.
    private func replacement(_ verdict: ReadOnlyGate.ClientVerdict, file: StaticString = #filePath, line: UInt = #line) throws -> FrontendMessage {
        guard case .replace(var bytes) = verdict else {
            XCTFail("expected a stand-in, got \(verdict)", file: file, line: line)
            throw CancellationError()
        }
        let frame = try XCTUnwrap(try FrameDecoder(maxMessageLength: 1 << 20).peekFrame(in: bytes))
        let message = try FrontendMessage.decode(frame: frame, from: &bytes)
        XCTAssertEqual(bytes.readableBytes, 0, "exactly one frame", file: file, line: line)
        return message
    }

    private func standInError(_ marker: String) -> ErrorFields {
        .error(sqlState: "22P02", message: "invalid input syntax for type integer: \"\(marker)\"")
    }

    private func marker(in sql: String) -> String? {
        guard let start = sql.range(of: "'portcullis-refused-")?.upperBound,
              let end = sql[start...].firstIndex(of: "'") else { return nil }
        return "portcullis-refused-" + sql[start..<end]
    }

    func testReadsAreForwardedUnchanged() {
        var gate = gate()
        for sql in ["SELECT 1", "select * from t where a = 'x;y'; select 2", "BEGIN READ ONLY", "SET search_path = app, public"] {
            XCTAssertEqual(gate.clientMessageReceived(.query(sql), classifier: &classifier), .forward, sql)
        }
        for sql in ["SELECT $1::int", "select * from t where a = 'x;y'", "DECLARE c CURSOR FOR SELECT 1"] {
            XCTAssertEqual(gate.clientMessageReceived(.parse(name: "s", query: sql, parameterTypes: []),
                                                      classifier: &classifier), .forward, sql)
        }
        XCTAssertEqual(gate.pendingCount, 0)
    }

    func testRefusedQueryBecomesStandInAndItsErrorBecomesTheRefusal() throws {
        var gate = gate()
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("INSERT INTO t VALUES (1)"), classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        XCTAssertFalse(sql.localizedCaseInsensitiveContains("insert"), sql)
        let marker = try XCTUnwrap(marker(in: sql))
        XCTAssertEqual(marker, "portcullis-refused-tok1z")
        let refusal = try XCTUnwrap(gate.serverErrorReceived(standInError(marker)))
        XCTAssertEqual(refusal.sqlState, "25006")
        XCTAssertEqual(refusal.message, "cannot execute INSERT in a read-only transaction")
        XCTAssertEqual(refusal.hint, "Portcullis identity \"agent\" is read-only.")
        XCTAssertEqual(refusal.severity, "ERROR")
        XCTAssertEqual(gate.pendingCount, 0)
    }

    func testMultiStatementQueryKeepsTheStatementsBeforeTheRefusedOne() throws {
        var gate = gate()
        let original = "select 'a;b' as \"é;\"; /* ; */ SELECT 2; delete from t; select 3"
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query(original), classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        XCTAssertTrue(sql.hasPrefix("select 'a;b' as \"é;\"; /* ; */ SELECT 2;"), sql)
        XCTAssertFalse(sql.contains("delete"), sql)
        XCTAssertFalse(sql.contains("select 3"), sql)
        XCTAssertNotNil(marker(in: sql))
        // The stand-in text itself classifies as allowed: the server runs what was judged.
        XCTAssertTrue(StatementClassifier().classify(sql: sql).isAllowedForReadOnly, sql)
    }

    func testRefusedParseKeepsItsNameSoBindFailsLikeAFailedParse() throws {
        var gate = gate()
        guard case .parse(let name, let sql, let types) = try replacement(
            gate.clientMessageReceived(.parse(name: "ins", query: "insert into t values ($1)", parameterTypes: [23]), classifier: &classifier))
        else { return XCTFail("not a Parse") }
        XCTAssertEqual(name, "ins")
        XCTAssertEqual(types, [])
        XCTAssertNotNil(marker(in: sql))
        XCTAssertEqual(gate.clientMessageReceived(.bind(.init(portal: "", statement: "ins", parameterFormats: [], parameters: [], resultFormats: [])),
                                                  classifier: &classifier), .forward)
    }

    func testParseOfSeveralStatementsIsRefusedWithPostgreSQLsText() throws {
        var gate = gate()
        guard case .parse(_, let sql, _) = try replacement(
            gate.clientMessageReceived(.parse(name: "", query: "select 1; select 2", parameterTypes: []), classifier: &classifier))
        else { return XCTFail("not a Parse") }
        let error = try XCTUnwrap(gate.serverErrorReceived(standInError(try XCTUnwrap(marker(in: sql)))))
        XCTAssertEqual(error.sqlState, "42601")
        XCTAssertEqual(error.message, "cannot insert multiple commands into a prepared statement")
        XCTAssertNil(error.hint)
    }

    func testSyntaxErrorsAreRefusedWithPosition() throws {
        var gate = gate()
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("select 1; selec 2"), classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        XCTAssertFalse(sql.contains("select 1"), "nothing of an unparseable string runs: \(sql)")
        let error = try XCTUnwrap(gate.serverErrorReceived(standInError(try XCTUnwrap(marker(in: sql)))))
        XCTAssertEqual(error.sqlState, "42601")
        XCTAssertEqual(error.message, "syntax error at or near \"selec\"")
        XCTAssertEqual(error["P"], "11")
    }

    /// Found in review: PostgreSQL parses a Query before it checks for an aborted block, so a
    /// syntax error there answers 42601, not 25P02; the stand-in's 25P02 becomes the refusal.
    /// (A refusal of a statement that parses, above and below, stays 25P02, as PostgreSQL's.)
    func testASyntaxErrorInAnAbortedBlockIsTheSyntaxError() throws {
        var gate = gate()
        _ = try replacement(gate.clientMessageReceived(.query("selec 2"), classifier: &classifier))
        let aborted = ErrorFields.error(sqlState: "25P02",
                                        message: "current transaction is aborted, commands ignored until end of transaction block")
        let error = try XCTUnwrap(gate.serverErrorReceived(aborted))
        XCTAssertEqual(error.sqlState, "42601")
        XCTAssertEqual(error["P"], "1")
        XCTAssertEqual(gate.pendingCount, 0)
        gate.readyForQueryReceived()
        // The next batch's own 25P02 is the server's.
        _ = try replacement(gate.clientMessageReceived(.query("truncate t"), classifier: &classifier))
        XCTAssertNil(gate.serverErrorReceived(aborted))
    }

    func testOtherErrorsPassThrough() throws {
        var gate = gate()
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("truncate t"), classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        let marker = try XCTUnwrap(marker(in: sql))
        // A client's own 22P02 naming a marker of another session is its own error.
        XCTAssertNil(gate.serverErrorReceived(standInError("portcullis-refused-other0")))
        XCTAssertNil(gate.serverErrorReceived(.error(sqlState: "22023", message: marker)))
        XCTAssertEqual(gate.pendingCount, 0, "an error ends its batch: the stand-in will not run")
        gate.readyForQueryReceived()
        XCTAssertNil(gate.serverErrorReceived(standInError(marker)))

        // In an aborted transaction block the stand-in gets 25P02, as the statement would.
        gate = self.gate()
        _ = try replacement(gate.clientMessageReceived(.query("truncate t"), classifier: &classifier))
        XCTAssertEqual(gate.pendingCount, 1)
        XCTAssertNil(gate.serverErrorReceived(.error(sqlState: "25P02",
            message: "current transaction is aborted, commands ignored until end of transaction block")))
        XCTAssertEqual(gate.pendingCount, 0)
        gate.readyForQueryReceived()
    }

    /// Issue 9.6: however many refusals are pending, none is forgotten while its stand-in may
    /// still fail; the shell holds further messages back at the bound.
    func testPendingRefusalsAreNeverDropped() throws {
        var gate = gate()
        var markers: [String] = []
        for i in 0..<1000 {
            guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("insert into t values (\(i))"),
                                                                                   classifier: &classifier)) else {
                return XCTFail("not a Query")
            }
            markers.append(try XCTUnwrap(marker(in: sql)))
        }
        XCTAssertEqual(gate.pendingCount, 1000)
        XCTAssertTrue(gate.isAtPendingBound)
        XCTAssertEqual(Set(markers).count, 1000, "a fresh token per refusal")
        for (i, marker) in markers.enumerated() {
            XCTAssertEqual(gate.serverErrorReceived(standInError(marker))?.sqlState, "25006", "refusal \(i)")
            gate.readyForQueryReceived()
        }
        XCTAssertEqual(gate.pendingCount, 0)
        XCTAssertFalse(gate.isAtPendingBound)
    }

    /// A token is matched once: an error that repeats it later (the client copied it from an
    /// error or from pg_stat_activity) is the client's own.
    func testTokensAreSingleUse() throws {
        var gate = gate()
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("delete from t"), classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        let marker = try XCTUnwrap(marker(in: sql))
        XCTAssertNotNil(gate.serverErrorReceived(standInError(marker)))
        gate.readyForQueryReceived()
        XCTAssertNil(gate.serverErrorReceived(standInError(marker)), "a spent token is worthless")
        // Another gate (another session) never knew it.
        var other = self.gate()
        _ = try replacement(other.clientMessageReceived(.query("delete from t"), classifier: &classifier))
        XCTAssertNil(other.serverErrorReceived(standInError("portcullis-refused-tok9z")))
        XCTAssertEqual(other.pendingCount, 0, "the error ended the batch")
    }

    /// Extended protocol: after an error the server skips to Sync (55.2.3), so the stand-ins
    /// later in that batch never run — they are forgotten, and new ones in it are not awaited.
    func testAnErrorEndsItsExtendedBatch() throws {
        var gate = gate()
        var markers: [String] = []
        for _ in 0..<300 {
            guard case .parse(_, let text, _) = try replacement(gate.clientMessageReceived(
                .parse(name: "", query: "insert into t values (1)", parameterTypes: []), classifier: &classifier)) else {
                return XCTFail("not a Parse")
            }
            markers.append(try XCTUnwrap(marker(in: text)))
        }
        XCTAssertEqual(gate.pendingCount, 300)
        XCTAssertEqual(gate.serverErrorReceived(standInError(markers[0]))?.sqlState, "25006")
        XCTAssertEqual(gate.pendingCount, 0)
        _ = try replacement(gate.clientMessageReceived(.parse(name: "", query: "vacuum", parameterTypes: []), classifier: &classifier))
        XCTAssertEqual(gate.pendingCount, 0, "skipped by the server: nothing to await")
        XCTAssertEqual(gate.clientMessageReceived(.sync, classifier: &classifier), .forward)
        gate.readyForQueryReceived()
        // The next batch is awaited again.
        _ = try replacement(gate.clientMessageReceived(.parse(name: "", query: "vacuum", parameterTypes: []), classifier: &classifier))
        XCTAssertEqual(gate.pendingCount, 1)
    }

    /// A text refused whole without classifying (too long, out of time) gets a stand-in too.
    func testRefusingWithoutClassifying() throws {
        var gate = gate()
        let refusal = Refusal(sqlState: "57014", message: "canceling statement due to statement timeout", isPostgreSQLText: true)
        guard case .parse(let name, let text, _) = try replacement(gate.clientMessageReceived(
            .parse(name: "big", query: "select 1", parameterTypes: []), classification: ReadOnlyGate.refusing(refusal))) else {
            return XCTFail("not a Parse")
        }
        XCTAssertEqual(name, "big")
        let error = try XCTUnwrap(gate.serverErrorReceived(standInError(try XCTUnwrap(marker(in: text)))))
        XCTAssertEqual(error.sqlState, "57014")
        XCTAssertEqual(error.message, "canceling statement due to statement timeout")
        XCTAssertNil(error.hint)
        // No classification at all fails closed.
        _ = try replacement(gate.clientMessageReceived(.query("select 1"), classification: nil))
    }

    /// The shell finds statement offsets off the loop and passes them in; without them the
    /// whole string is replaced (fail closed), never parsed on the loop.
    func testKeptStatementsNeedOffsetsFromTheShell() throws {
        var gate = gate()
        let sql = "select 1; delete from t"
        let result = StatementClassifier().classify(sql: sql)
        XCTAssertTrue(ReadOnlyGate.keepsStatementsBefore(result))
        XCTAssertFalse(ReadOnlyGate.keepsStatementsBefore(StatementClassifier().classify(sql: "delete from t; select 1")))
        guard case .query(let without) = try replacement(gate.clientMessageReceived(.query(sql), classification: result)) else {
            return XCTFail("not a Query")
        }
        XCTAssertFalse(without.contains("select 1"), without)
        guard case .query(let with) = try replacement(gate.clientMessageReceived(
            .query(sql), classification: result, statementOffsets: StatementSplitter.statementOffsets(sql))) else {
            return XCTFail("not a Query")
        }
        XCTAssertTrue(with.hasPrefix("select 1;"), with)
    }

    func testShellTokensAre128BitHex() {
        let tokens = (0..<100).map { _ in ClientSession.refusalToken() }
        XCTAssertEqual(Set(tokens).count, 100)
        for token in tokens {
            XCTAssertEqual(token.count, 32)
            XCTAssertTrue(token.allSatisfy(\.isHexDigit))
        }
    }

    func testPipelinedRefusalsMapToTheirOwnErrors() throws {
        var gate = gate()
        var markers: [String] = []
        for sql in ["insert into t values (1)", "vacuum", "select nextval('s')"] {
            guard case .parse(_, let text, _) = try replacement(gate.clientMessageReceived(.parse(name: "", query: sql, parameterTypes: []), classifier: &classifier)) else {
                return XCTFail("not a Parse")
            }
            markers.append(try XCTUnwrap(marker(in: text)))
            XCTAssertEqual(gate.clientMessageReceived(.sync, classifier: &classifier), .forward)
        }
        XCTAssertEqual(gate.serverErrorReceived(standInError(markers[0]))?.message, "cannot execute INSERT in a read-only transaction")
        gate.readyForQueryReceived()
        XCTAssertEqual(gate.serverErrorReceived(standInError(markers[1]))?.message, "VACUUM is not allowed for a read-only identity")
        gate.readyForQueryReceived()
        XCTAssertEqual(gate.serverErrorReceived(standInError(markers[2]))?.message, "cannot execute nextval() in a read-only transaction")
        gate.readyForQueryReceived()
        XCTAssertEqual(gate.pendingCount, 0)
    }

    func testInvalidUTF8IsRefused() throws {
        var gate = gate()
        guard case .query(let sql) = try replacement(gate.clientMessageReceived(.query("select 1"), textIsUTF8: false, classifier: &classifier)) else {
            return XCTFail("not a Query")
        }
        XCTAssertFalse(sql.contains("select 1"))
        let error = try XCTUnwrap(gate.serverErrorReceived(standInError(try XCTUnwrap(marker(in: sql)))))
        XCTAssertEqual(error.sqlState, "22021")
    }

    func testFastPathLargeObjectReadsPassAndWritesAreRefused() throws {
        var gate = gate()
        let readOnlyMode: [UInt8] = [0x00, 0x04, 0x00, 0x00] // INV_READ
        let readWriteMode: [UInt8] = [0x00, 0x06, 0x00, 0x00] // INV_READ | INV_WRITE
        let loid: [UInt8] = [0, 0, 0x40, 0x01]
        func call(_ oid: Int32, _ args: [[UInt8]?], formats: [Int16] = [1]) -> FrontendMessage {
            .functionCall(.init(functionOID: oid, argumentFormats: formats, arguments: args, resultFormat: 1))
        }
        XCTAssertEqual(gate.clientMessageReceived(call(952, [loid, readOnlyMode]), classifier: &classifier), .forward)
        XCTAssertEqual(gate.clientMessageReceived(call(954, [[0, 0, 0, 0], [0, 0, 0x20, 0]]), classifier: &classifier), .forward)
        XCTAssertEqual(gate.clientMessageReceived(call(952, [Array("262144".utf8), Array("262144".utf8)], formats: [0]),
                                                  classifier: &classifier), .forward)
        for (oid, args, message) in [
            (Int32(952), [loid, readWriteMode], "cannot execute lo_open(INV_WRITE) in a read-only transaction"),
            (955, [[0, 0, 0, 0], [1, 2, 3]], "cannot execute lowrite() in a read-only transaction"),
            (2171, [[0, 0, 0, 1]], "the fast-path call of function 2171 is not allowed for a read-only identity"),
            (16_500, [], "the fast-path call of function 16500 is not allowed for a read-only identity"),
        ] as [(Int32, [[UInt8]?], String)] {
            guard case .functionCall(let standIn) = try replacement(gate.clientMessageReceived(call(oid, args), classifier: &classifier)) else {
                return XCTFail("not a FunctionCall")
            }
            XCTAssertEqual(standIn.functionOID, 42, "int4in")
            let marker = String(decoding: try XCTUnwrap(standIn.arguments.first ?? nil), as: UTF8.self)
            XCTAssertEqual(gate.serverErrorReceived(standInError(marker))?.message, message)
        }
    }
}

/// Token soup: whatever a client sends, the gate never crashes, and it forwards a text only
/// when the classifier allows every statement of it.
final class ReadOnlyGateSoupTests: XCTestCase {
    func testRandomStatementSoupIsForwardedOnlyWhenAllowed() throws {
        let tokens = ["select", "insert", "into", "t", "values", "(", ")", "1", "'x;y'", ";", "delete", "from",
                      "with", "w", "as", "update", "set", "a", "=", "$$;$$", "--", "\n", "/*", "*/", "begin",
                      "commit", "read", "write", "only", "lock", "table", "in", "access", "share", "mode",
                      "pg_terminate_backend", "set_config", "'role'", ",", "false", "explain", "analyze",
                      "copy", "to", "stdout", "\"T\"", "U&\"\\0061\"", "E'\\''", "now()", "*", "where", "nextval"]
        var generator = SystemRandomNumberGenerator()
        var classifier = CachingStatementClassifier()
        let fresh = StatementClassifier()
        var gate = ReadOnlyGate(identity: "soup", tokens: { ClientSession.refusalToken() })
        var forwarded = 0
        for _ in 0..<3000 {
            let count = Int.random(in: 1...14, using: &generator)
            let sql = (0..<count).map { _ in tokens.randomElement(using: &generator)! }.joined(separator: " ")
            switch gate.clientMessageReceived(.query(sql), classifier: &classifier) {
            case .forward:
                forwarded += 1
                XCTAssertTrue(fresh.classify(sql: sql).isAllowedForReadOnly, "forwarded but refused: \(sql)")
            case .replace(let bytes):
                XCTAssertGreaterThan(bytes.readableBytes, 5)
            }
            _ = gate.clientMessageReceived(.parse(name: "", query: sql, parameterTypes: []), classifier: &classifier)
            gate.readyForQueryReceived()
        }
        XCTAssertGreaterThan(forwarded, 0, "some soup is harmless")
        XCTAssertLessThanOrEqual(gate.pendingCount, 2, "each batch's refusals settle with its ReadyForQuery")
    }
}
