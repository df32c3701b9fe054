import XCTest
import Wire
@testable import Session

/// Transaction pooling: prepared statements named in SQL (SessionMachine+SQLStatementNames.swift).
/// Found in review (2026-12-07): `EXECUTE s1` ran the statement another client had left on the
/// shared server. Against PostgreSQL: IntegrationTests/TransactionPoolingStatementTests.
final class SessionMachineSQLStatementNameTests: XCTestCase {
    private func pooled() -> SessionHarness {
        SessionHarness(readOnly: false, followsStatements: false, pooling: .init(refusesPinning: false, tokens: { "t" }))
    }

    /// The server set another client leaves after preparing `name`.
    private func serverWith(_ name: String) -> SessionMachine.ServerStatements {
        let other = pooled()
        other.client(.parse(name: name, query: "SELECT 'other'", parameterTypes: []), .sync)
        other.server(.closeComplete, .parseComplete, ready)
        return other.machine.serverDetached()
    }

    func testAnotherClientsStatementIsClosedBeforeSQLNamesIt() {
        for sql in ["EXECUTE s1", "EXPLAIN ANALYZE EXECUTE s1", "DEALLOCATE s1", "CREATE TABLE t AS EXECUTE s1",
                    "PREPARE s1 AS SELECT 1", "SELECT 1; EXECUTE \"s1\""] {
            let h = pooled()
            h.machine.serverAttached(processID: 1, secretKey: [1, 2, 3, 4], statements: serverWith("s1"))
            h.client(.query(sql))
            XCTAssertEqual(h.sentToServer(), [.close(.statement, name: "s1"), .query(sql)], sql)
            h.server(.closeComplete, complete("X"), ready)
            XCTAssertEqual(h.sentToClient().map(\.typeByte), [UInt8(ascii: "C"), UInt8(ascii: "Z")], "the Close's reply is the proxy's: \(sql)")
        }
    }

    /// Nothing that can fail is slipped in before a Query (no Sync follows it: a failed Parse
    /// would make the server skip the Query, and the session hang — found in review). Another
    /// client's statement of the name is closed; the client's own is not parsed again for an
    /// EXECUTE, and a DEALLOCATE finds a `SELECT 1` under the name.
    func testBeforeAQueryOnlyWhatCannotFailIsSlippedIn() {
        let h = pooled()
        h.client(.parse(name: "mine", query: "SELECT 'mine'", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 2, secretKey: [1, 2, 3, 4], statements: serverWith("mine"))
        _ = h.sentToServer()
        h.client(.query("EXECUTE mine"))
        XCTAssertEqual(h.sentToServer(), [.close(.statement, name: "mine"), .query("EXECUTE mine")])
        h.server(.closeComplete, .errorResponse(.error(sqlState: "26000", message: "prepared statement \"mine\" does not exist")), ready)
        _ = h.sentToClient()
        h.client(.query("DEALLOCATE mine"))
        XCTAssertEqual(h.sentToServer(), [.parse(name: "mine", query: "SELECT 1", parameterTypes: []), .query("DEALLOCATE mine")])
    }

    func testASQLDeallocateOfTheClientsStatementLeavesItToThePinnedServer() {
        let h = pooled()
        h.client(.parse(name: "mine", query: "SELECT 'mine'", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        h.client(.query("DEALLOCATE mine"))
        h.server(complete("DEALLOCATE"), ready)
        XCTAssertTrue(h.machine.isPinned)
        XCTAssertNil(h.machine.clientStatements["mine"])
        _ = h.sentToServer()
        h.client(.bind(.init(portal: "", statement: "mine", parameterFormats: [], parameters: [], resultFormats: [])))
        XCTAssertEqual(h.sentToServer().count, 1, "nothing slipped in: the server answers 26000, as directly")
    }

    func testAStatementPreparedInSQLIsNeverClosedAsSomeoneElses() {
        let h = pooled()
        h.client(.query("PREPARE q AS SELECT 1"))
        h.server(complete("PREPARE"), ready)
        h.client(.query("DEALLOCATE other"))
        h.server(complete("DEALLOCATE"), ready)
        _ = h.sentToServer()
        // The server is uncertain now; q is the client's own.
        h.client(.query("EXECUTE q"))
        XCTAssertEqual(h.sentToServer(), [.query("EXECUTE q")])
    }

    /// A text the classifier cannot read may name any statement in SQL: every statement the
    /// server holds for other clients is closed first. A LATIN1 client's Query that is not
    /// UTF-8 was let through unguarded (it could not be re-encoded byte for byte); it now goes
    /// behind the Closes as its own bytes.
    func testAQueryThatIsNotUTF8GoesBehindTheClosesAsItsOwnBytes() {
        let h = pooled()
        h.machine.serverAttached(processID: 1, secretKey: [1, 2, 3, 4], statements: serverWith("s1"))
        let text: [UInt8] = Array("EXECUTE s1 -- caf".utf8) + [0xE9]
        var query: [UInt8] = [UInt8(ascii: "Q")]
        let length = UInt32(4 + text.count + 1)
        query += withUnsafeBytes(of: length.bigEndian, Array.init) + text + [0]
        h.clientBytes(query)
        let sent = Array(h.toServer.readableBytesView)
        var close = ByteBuffer()
        FrontendMessage.encodeClose(.statement, name: Array("s1".utf8), into: &close)
        XCTAssertEqual(sent, Array(close.readableBytesView) + query, "the other client's s1 is closed, then the bytes the client sent")
    }
}
