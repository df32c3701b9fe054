import XCTest
import Wire
@testable import Session

/// Transaction pooling's view of prepared statements against the server's: names compared as
/// PostgreSQL compares them (their first 63 bytes), Parse and Close counted done only when the
/// server says so (an error makes it skip them), statements over `max_prepared_statements` left
/// alone on the pinned server, and names and texts sent as the client's bytes. Each case was
/// found in review (2026-12-07) and fails on the code before its fix; against PostgreSQL:
/// IntegrationTests/TransactionPoolingStatementTests.
final class SessionMachineStatementTrackingTests: XCTestCase {
    typealias H = SessionHarness

    private func pooled(maxPrepared: Int = 200) -> SessionHarness {
        var count = 0
        return SessionHarness(readOnly: false, followsStatements: false,
                              pooling: .init(refusesPinning: false, tokens: { count += 1; return "pin\(count)z" },
                                             maxPreparedStatements: maxPrepared))
    }

    private func types(_ messages: [FrontendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    private func types(_ messages: [BackendMessage]) -> String {
        String(decoding: messages.map(\.typeByte), as: UTF8.self)
    }

    /// A Bind of the unnamed portal to statement `name` (bytes as given), no parameters.
    private static func bind(_ name: [UInt8]) -> [UInt8] {
        let payload: [UInt8] = [0] + name + [0, 0, 0, 0, 0, 0, 0]
        return [UInt8(ascii: "B")] + length(payload) + payload
    }

    private static func length(_ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count + 4)
        return [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
    }

    private static func parse(_ name: [UInt8], _ query: [UInt8]) -> [UInt8] {
        var out = ByteBuffer()
        FrontendMessage.RawParse(name: name, query: query, parameterTypes: []).encode(into: &out)
        return Array(out.readableBytesView)
    }

    private static let execute = H.encoded([.execute(portal: "", maxRows: 0)])
    private static let sync = H.encoded([.sync])

    /// The server set `other` leaves after preparing `name` as `query` (answered).
    private func serverWith(_ name: String, _ query: String) -> SessionMachine.ServerStatements {
        let other = pooled()
        other.client(.parse(name: name, query: query, parameterTypes: []), .sync)
        other.server(.closeComplete, .parseComplete, ready)
        return other.machine.serverDetached()
    }

    // MARK: Names as PostgreSQL keys them

    /// prepare.c's hash compares the first 63 bytes: `ppp…pC`, never prepared by this client,
    /// is the other client's `ppp…pA` to the server, so it is closed before the Bind.
    func testANameIsItsFirst63Bytes() {
        let prefix = String(repeating: "p", count: 63)
        let h = pooled()
        h.machine.serverAttached(processID: 8, secretKey: [1, 1, 1, 1], statements: serverWith(prefix + "A", "SELECT 'A'"))
        h.client(H.bind(statement: prefix + "C"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CBES", "the other client's statement is closed: 26000 as from PostgreSQL")
        h.server(.closeComplete, H.error("26000", "prepared statement does not exist"), ready)

        // Within one client a second name equal in 63 bytes is the same statement: 42P05.
        h.client(.parse(name: prefix + "B", query: "SELECT 'B'", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        _ = h.sentToServer()
        h.client(.parse(name: prefix + "D", query: "SELECT 'D'", parameterTypes: []), .sync)
        XCTAssertEqual(h.sentToServer(), [.parse(name: prefix + "D", query: "SELECT 'D'", parameterTypes: []), .sync],
                       "not closed first: the server answers 42P05")
        XCTAssertEqual(h.machine.clientStatements.count, 1)
        XCTAssertEqual(h.machine.clientStatements[SessionMachine.StatementName(Array((prefix + "B").utf8))]?.query, Array("SELECT 'B'".utf8))
    }

    // MARK: Changes follow the server's answers

    /// [Bind nope, Execute, Close s1, Sync]: the server skips the Close; s1 is still there, the
    /// client's, and the next client of that server must not run it.
    func testACloseTheServerSkippedLeavesTheStatement() {
        let h = pooled()
        h.client(.parse(name: "s1", query: "SELECT 'mine'", parameterTypes: []), .sync)
        h.server(.closeComplete, .parseComplete, ready)
        h.client(H.bind(statement: "nope"), .execute(portal: "", maxRows: 0), .close(.statement, name: "s1"), .sync)
        h.server(H.error("26000", "prepared statement \"nope\" does not exist"), ready)
        XCTAssertNotNil(h.machine.clientStatements["s1"], "PostgreSQL still has s1 for this client")
        let left = h.machine.serverDetached()
        XCTAssertEqual(left.count, 1, "the server still has s1")

        let next = pooled()
        next.machine.serverAttached(processID: 9, secretKey: [1, 1, 1, 1], statements: left)
        next.client(H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(next.sentToServer()), "CBES", "closed first: never another client's statement")

        // The client's own s1, on another server, is prepared again.
        h.machine.serverAttached(processID: 10, secretKey: [1, 1, 1, 1])
        _ = h.sentToServer()
        h.client(H.bind(statement: "s1"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CPBES")
    }

    /// The eviction Close the proxy slips in is skipped as well after an error.
    func testAnEvictionTheServerSkippedLeavesTheStatement() {
        let other = pooled(maxPrepared: 2)
        other.client(.parse(name: "o1", query: "SELECT 1", parameterTypes: []), .parse(name: "o2", query: "SELECT 2", parameterTypes: []), .sync)
        other.server(.closeComplete, .parseComplete, .closeComplete, .parseComplete, ready)
        let h = pooled(maxPrepared: 2)
        h.machine.serverAttached(processID: 8, secretKey: [1, 1, 1, 1], statements: other.machine.serverDetached())
        h.client(H.bind(statement: "nope"), .execute(portal: "", maxRows: 0), .parse(name: "mine", query: "SELECT 3", parameterTypes: []), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BECCPS", "its own name and one of the other's closed first")
        h.server(H.error("26000", "prepared statement \"nope\" does not exist"), ready)
        XCTAssertTrue(h.machine.clientStatements.isEmpty, "the Parse was skipped")
        let left = h.machine.serverDetached()
        XCTAssertEqual(left.count, 2, "both of the other client's statements are still there")

        let third = pooled(maxPrepared: 2)
        third.machine.serverAttached(processID: 9, secretKey: [1, 1, 1, 1], statements: left)
        for name in ["o1", "o2"] {
            third.client(H.bind(statement: name), .execute(portal: "", maxRows: 0), .sync)
            XCTAssertEqual(types(third.sentToServer()), "CBES", "\(name) is closed before a client that never prepared it binds it")
            third.server(.closeComplete, H.error("26000", "prepared statement does not exist"), ready)
        }
    }

    /// A Parse skipped after an error leaves the server as it was: another client's statement of
    /// that name is still there and must be closed before this client binds the name.
    func testAParseTheServerSkippedLeavesAnotherClientsStatementKnown() {
        let h = pooled()
        h.machine.serverAttached(processID: 8, secretKey: [1, 1, 1, 1], statements: serverWith("x", "SELECT 'other'"))
        h.client(H.bind(statement: "nope"), .execute(portal: "", maxRows: 0), .parse(name: "x", query: "SELECT 'mine'", parameterTypes: []), .sync)
        h.server(H.error("26000", "prepared statement \"nope\" does not exist"), ready)
        _ = h.sentToServer()
        XCTAssertTrue(h.machine.clientStatements.isEmpty)
        h.client(H.bind(statement: "x"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CBES", "the other client's x is still on the server")
    }

    /// Pipelined after a Parse, a Bind needs nothing slipped in; the Parse confirmed by its
    /// ParseComplete stays, and one failing takes its changes out of the plan again.
    func testTheProjectionFollowsAnErrorInAnEarlierBatch() {
        let h = pooled()
        h.client(.parse(name: "a", query: "SELEC", parameterTypes: []), .sync,
                 H.bind(statement: "a"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CPSBES", "planned as if the Parse succeeds")
        h.server(.closeComplete, H.error("42601", "syntax error"), ready)
        XCTAssertTrue(h.machine.clientStatements.isEmpty, "the failed Parse is out of the projection")
        h.server(H.error("26000", "prepared statement \"a\" does not exist"), ready)
        XCTAssertTrue(h.machine.isAtRest)
        XCTAssertEqual(h.machine.serverDetached().count, 0)
    }

    // MARK: Over max_prepared_statements

    /// Statements over the bound stay on the pinned server: a SQL DEALLOCATE of another name
    /// (the proxy cannot tell which) must not get them closed, and a Parse of one of them again
    /// answers 42P05 rather than replacing it.
    func testStatementsOverTheBoundAreLeftAloneOnThePinnedServer() {
        let h = pooled(maxPrepared: 2)
        for index in 0..<4 {
            h.client(.parse(name: "s\(index)", query: "SELECT \(index)", parameterTypes: []), .sync)
            h.server(.closeComplete, .parseComplete, ready)
        }
        XCTAssertEqual(h.machine.pins, .namedProtocolStatement)
        XCTAssertEqual(h.machine.clientPinnedStatements, ["s2", "s3"])
        h.client(.query("DEALLOCATE s0"))
        h.server(complete("DEALLOCATE"), ready)
        _ = h.sentToServer()
        h.client(H.bind(statement: "s2"), .execute(portal: "", maxRows: 0), .sync)
        XCTAssertEqual(types(h.sentToServer()), "BES", "s2 is the client's, on this server")
        h.server(.bindComplete, H.dataRow("2"), complete("SELECT 1"), ready)
        h.client(.parse(name: "s3", query: "SELECT 'replaced'", parameterTypes: []), .sync)
        XCTAssertEqual(types(h.sentToServer()), "PS", "not closed first: the server answers 42P05")
        h.server(H.error("42P05", "prepared statement \"s3\" already exists"), ready)
        // s0, deallocated in SQL, is left to the pinned server too (SessionMachine+SQLStatementNames.swift).
        XCTAssertEqual(h.machine.clientPinnedStatements, ["s0", "s2", "s3"])
        // Closed by the client: gone, confirmed by its CloseComplete.
        h.client(.close(.statement, name: "s3"), .sync)
        XCTAssertEqual(types(h.sentToServer()), "CS")
        h.server(.closeComplete, ready)
        XCTAssertEqual(types(h.sentToClient()).suffix(2), "3Z")
        XCTAssertEqual(h.machine.clientPinnedStatements, ["s0", "s2"])
    }

    // MARK: Bytes as sent

    /// client_encoding LATIN1: a named Parse of `SELECT 'caf\xe9'` reaches the server byte for
    /// byte (it was re-encoded from a lossily decoded String: `'cafï¿½'`).
    func testANamedParseIsForwardedByteForByte() {
        let h = pooled()
        let text = Array("SELECT 'caf".utf8) + [0xE9] + Array("'".utf8)
        h.clientBytes(Self.parse(Array("n1".utf8), text) + Self.sync)
        let sent = Array(h.toServer.readableBytesView)
        XCTAssertEqual(sent, H.encoded([.close(.statement, name: "n1")]) + Self.parse(Array("n1".utf8), text) + Self.sync)
    }

    /// Names that are not UTF-8 (LATIN1 `\xff`, `\xfe`) are two names, sent as they are, and
    /// pin: the server keys them after converting them from the client's encoding.
    func testNamesThatAreNotASCIIAreSentAsTheyAreAndPin() {
        let h = pooled()
        let y = Self.parse([0xFF], Array("SELECT 'y'".utf8)), thorn = Self.parse([0xFE], Array("SELECT 't'".utf8))
        h.clientBytes(y + thorn + Self.sync)
        XCTAssertEqual(Array(h.toServer.readableBytesView), y + thorn + Self.sync, "nothing slipped in, nothing re-encoded")
        h.toServer.clear()
        XCTAssertTrue(h.machine.pins.contains(.namedProtocolStatement))
        h.server(.parseComplete, .parseComplete, ready)
        XCTAssertEqual(types(h.sentToClient()), "11Z")
        XCTAssertEqual(h.machine.clientPinnedStatements.count, 2)
        h.clientBytes(Self.bind([0xFF]) + Self.execute + Self.bind([0xFE]) + Self.execute + Self.sync)
        XCTAssertEqual(Array(h.toServer.readableBytesView), Self.bind([0xFF]) + Self.execute + Self.bind([0xFE]) + Self.execute + Self.sync)
    }

    /// A kept text prepared again on another server is the client's bytes.
    func testAStatementIsPreparedAgainAsTheClientsBytes() {
        let h = pooled()
        // Valid UTF-8 (so classified and kept), read by a LATIN1 server session as other characters.
        let text = Array("SELECT 'Ã©'".utf8)
        h.clientBytes(Self.parse(Array("k".utf8), text) + Self.sync)
        h.server(.closeComplete, .parseComplete, ready)
        h.toServer.clear()
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.clientBytes(Self.bind(Array("k".utf8)) + Self.execute + Self.sync)
        XCTAssertEqual(Array(h.toServer.readableBytesView),
                       H.encoded([.close(.statement, name: "k")]) + Self.parse(Array("k".utf8), text) + Self.bind(Array("k".utf8)) + Self.execute + Self.sync)
    }
}
