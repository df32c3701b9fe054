import XCTest
import Wire
@testable import Session

/// Transaction pooling and the unnamed prepared statement, which lives until the next Parse of
/// "" or Query (protocol docs 55.2.3): a client that prepares it in one transaction and binds it
/// in the next (asyncpg without a statement cache, libpq's PQprepare with an empty name) gets it
/// parsed again on another server; a client that has none never runs another client's. Found by
/// asyncpg's test_introspection_no_stmt_cache_03 through transaction mode (docs/TRANSACTION_POOLING.md).
final class SessionMachineUnnamedStatementTests: XCTestCase {
    typealias H = SessionHarness

    private func pooled() -> SessionHarness {
        var count = 0
        return SessionHarness(readOnly: false, followsStatements: false,
                              pooling: .init(refusesPinning: false, tokens: { count += 1; return "pin\(count)z" },
                                             maxPreparedStatements: 200))
    }

    private func types(_ messages: [BackendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    private func types(_ messages: [FrontendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    private let statement = FrontendMessage.parse(name: "", query: "SELECT $1::int", parameterTypes: [23])

    /// Parse/Describe/Sync, as asyncpg prepares: the statement is the client's now.
    private func prepareUnnamed(_ h: SessionHarness) {
        h.client(statement, .describe(.statement, name: ""), .sync)
        XCTAssertEqual(h.sentToServer(), [statement, .describe(.statement, name: ""), .sync], "sent as it came")
        h.server(.parseComplete, .noData, ready)
        XCTAssertEqual(types(h.sentToClient()), "1nZ")
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testTheUnnamedStatementIsParsedAgainOnAnotherServer() {
        let h = pooled()
        prepareUnnamed(h)
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.client(H.bind(parameters: [Array("5".utf8)]), .execute(portal: "", maxRows: 0), .sync)
        let sent = h.sentToServer()
        XCTAssertEqual(types(sent), "PBES")
        XCTAssertEqual(sent.first, statement, "the client's own text and parameter types")
        h.server(.parseComplete, .bindComplete, H.dataRow("5"), complete("SELECT 1"), ready)
        XCTAssertEqual(types(h.sentToClient()), "2DCZ", "the ParseComplete the proxy caused is dropped")
        XCTAssertTrue(h.machine.isAtRest)

        // Still on that server: nothing to slip in.
        h.client(H.bind(parameters: [Array("6".utf8)]), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BES")
    }

    func testAServerHandedBackIsNotTrustedWithTheUnnamedStatement() {
        // The link's record may be stale: the proxy's own settings queries destroy it.
        let h = pooled()
        prepareUnnamed(h)
        let left = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9], statements: left)
        h.client(.describe(.statement, name: ""), .sync)
        XCTAssertEqual(types(h.sentToServer()), "PDS")
    }

    func testAfterTheSettingsAreReadTheUnnamedStatementIsParsedAgain() {
        let h = pooled()
        prepareUnnamed(h)
        h.machine.settingsCaptured()
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "PBES")
    }

    func testAnotherClientsUnnamedStatementIsClosedNotRun() {
        let other = pooled()
        other.client(.parse(name: "", query: "SELECT secret FROM vault", parameterTypes: []), .sync)
        other.server(.parseComplete, ready)
        let serverSet = other.machine.serverDetached()

        let h = pooled()
        h.machine.serverAttached(processID: 8, secretKey: [1, 1, 1, 1], statements: serverSet)
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(h.sentToServer(), [.close(.statement, name: ""), H.bind(), .execute(portal: "", maxRows: 0), .sync],
                       "closed, so the server answers 26000 as PostgreSQL would")
        h.server(.closeComplete, H.error("26000", "unnamed prepared statement does not exist"), ready)
        XCTAssertEqual(types(h.sentToClient()), "EZ")
    }

    func testAQueryDestroysTheUnnamedStatement() {
        let h = pooled()
        prepareUnnamed(h)
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        _ = h.sentToServer()
        XCTAssertNil(h.machine.clientUnnamed)
        // The same server: PostgreSQL itself answers 26000.
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BES")
        h.server(H.error("26000", "unnamed prepared statement does not exist"), ready)
        // Another server: nothing of this client's to parse again.
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BES")
    }

    func testCloseAndAFailedParseForgetTheUnnamedStatement() {
        let h = pooled()
        prepareUnnamed(h)
        h.client(.close(.statement, name: ""), .sync)
        h.server(.closeComplete, ready)
        XCTAssertEqual(types(h.sentToClient()), "3Z")
        XCTAssertNil(h.machine.clientUnnamed)

        h.client(.parse(name: "", query: "SELEC 1", parameterTypes: []), .sync)
        h.server(H.error("42601", "syntax error at or near \"SELEC\""), ready)
        XCTAssertNil(h.machine.clientUnnamed, "PostgreSQL dropped the old one before failing")
        _ = h.sentToServer()
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BES")
    }

    func testAFailedInjectedParseEndsTheBatchAsTheServerDoes() {
        let h = pooled()
        prepareUnnamed(h)
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        h.server(H.error("42883", "operator does not exist"), ready)
        XCTAssertEqual(types(h.sentToClient()), "EZ")
        XCTAssertTrue(h.machine.isAtRest)
        // Parsed again at the next use: the server's is not known.
        h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer().suffix(4)), "PBES")
    }

    /// A server another client left its unnamed statement (and a statement "s") on.
    private func onAnotherClientsServer() -> SessionHarness {
        let other = pooled()
        other.client(.parse(name: "s", query: "SELECT 'other s'", parameterTypes: []), .sync)
        other.server(.closeComplete, .parseComplete, ready)
        other.client(.parse(name: "", query: "SELECT 'other'", parameterTypes: []), .sync)
        other.server(.parseComplete, ready)
        let h = pooled()
        h.machine.serverAttached(processID: 8, secretKey: [8, 8, 8, 8], statements: other.machine.serverDetached())
        return h
    }

    /// DEALLOCATE ALL (and DISCARD ALL) leave the unnamed statement alone (prepare.c
    /// DropAllPreparedStatements): run from a named statement, the server keeps another
    /// client's, which must still be closed before this client's Bind of the unnamed statement.
    func testDeallocateAllDoesNotForgetAnotherClientsUnnamedStatement() {
        for tag in ["DEALLOCATE ALL", "DISCARD ALL"] {
            let h = onAnotherClientsServer()
            h.client(.parse(name: "d", query: tag, parameterTypes: []), H.bind(statement: "d"), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(types(h.sentToServer()), "CPBES", tag)
            h.server(.closeComplete, .parseComplete, .bindComplete, complete(tag), ready)
            XCTAssertEqual(types(h.sentToClient()), "12CZ", tag)
            // Back to the pool and out again (the same server).
            let left = h.machine.serverDetached()
            h.machine.serverAttached(processID: 8, secretKey: [8, 8, 8, 8], statements: left)
            h.client(H.bind(), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(h.sentToServer(), [.close(.statement, name: ""), H.bind(), .execute(portal: "", maxRows: 0), .sync], tag)
        }
    }

    /// A prepared statement runs again at each Bind, and its pins were read from its text when
    /// it was parsed: DISCARD TEMP releases the pin of a prepared `CREATE TEMP TABLE` but keeps
    /// the statement (docs DISCARD), so the pin is taken again before its Bind goes up — and a
    /// portal bound before the release keeps it until its transaction ends.
    func testAPreparedStatementPinsAgainWhenBoundAfterARelease() {
        for name in ["t", ""] {
            let h = pooled()
            h.client(.parse(name: name, query: "CREATE TEMP TABLE x AS SELECT 1", parameterTypes: []), .sync)
            if name.isEmpty { h.server(.parseComplete, ready) } else { h.server(.closeComplete, .parseComplete, ready) }
            XCTAssertTrue(h.machine.isPinned, name)
            h.client(.parse(name: "d", query: "DISCARD TEMP", parameterTypes: []), H.bind(statement: "d"), .execute(portal: "", maxRows: 0), .sync)
            h.server(.closeComplete, .parseComplete, .bindComplete, complete("DISCARD TEMP"), ready)
            XCTAssertFalse(h.machine.isPinned, "released: \(name)")
            _ = h.sentToServer()
            h.client(H.bind(statement: name))
            XCTAssertTrue(h.machine.isPinned, "pinned before its Bind goes up: \(name)")
            XCTAssertEqual(types(h.sentToServer()), "B")
        }

        let h = pooled()
        h.client(.parse(name: "t", query: "CREATE TEMP TABLE x AS SELECT 1", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        h.client(.query("BEGIN"), H.bind(portal: "p", statement: "t"), .sync)
        h.server(complete("BEGIN"), readyInTransaction, .bindComplete, readyInTransaction)
        h.client(.query("DISCARD TEMP"))
        h.server(complete("DISCARD TEMP"), readyInTransaction)
        XCTAssertTrue(h.machine.isPinned, "portal p can still run it")
        h.client(.execute(portal: "p", maxRows: 0), .sync, .query("COMMIT"))
        h.server(complete("SELECT 1"), readyInTransaction, complete("COMMIT"), ready)
        XCTAssertTrue(h.machine.isPinned)
    }
}
