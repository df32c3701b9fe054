import XCTest
import Wire
import Policy
@testable import Session

/// Server messages a session holds whole are held only up to `maxHeldServerBody`
/// (SessionMachine+ServerLimits.swift): a longer ErrorResponse is cut and the rest of its
/// bytes dropped as they arrive; a longer message of another held type ends the session; what
/// is not held streams byte for byte.
final class SessionMachineServerLimitTests: XCTestCase {
    typealias H = SessionHarness
    static let bound = 1000

    /// What PostgreSQL 15 answers `select repeat('x', n)::int` (22P02 quoting the input; elog.c
    /// send_message_to_frontend order: S, V, C, M, F, L, R).
    static func bigError(_ n: Int) -> BackendMessage {
        .errorResponse(ErrorFields(fields: [
            .init(code: UInt8(ascii: "S"), value: "ERROR"), .init(code: UInt8(ascii: "V"), value: "ERROR"),
            .init(code: UInt8(ascii: "C"), value: "22P02"),
            .init(code: UInt8(ascii: "M"), value: "invalid input syntax for type integer: \"" + String(repeating: "x", count: n) + "\""),
            .init(code: UInt8(ascii: "F"), value: "numutils.c"), .init(code: UInt8(ascii: "L"), value: "323"),
            .init(code: UInt8(ascii: "R"), value: "pg_strtoint32"),
        ]))
    }

    /// The sessions that hold ErrorResponses: read-only, transaction pooling, audit.
    private func holdingSessions() -> [(String, () -> SessionHarness)] {
        [("read-only", { SessionHarness(readOnly: true, maxHeldServerBody: Self.bound) }),
         ("transaction pooling", {
             SessionHarness(followsStatements: false, pooling: .init(refusesPinning: false, tokens: { "t" }), maxHeldServerBody: Self.bound)
         }),
         ("audit", { SessionHarness(followsStatements: true, maxHeldServerBody: Self.bound) })]
    }

    /// Fed one byte at a time and all at once (with a notice before it and ReadyForQuery
    /// after): the server's buffer never holds more than the bound plus the header, the client
    /// gets a well-formed 22P02 whose message is cut with the marker, then ReadyForQuery, and
    /// the session is at rest, its statement failed with the cut message.
    func testAnOversizedErrorIsCutAndTheRestDroppedAsItArrives() throws {
        let notice = BackendMessage.noticeResponse(.error(sqlState: "00000", message: "hello", severity: "NOTICE"))
        let replies = H.encoded([notice, Self.bigError(100_000), ready])
        for (what, make) in holdingSessions() {
            for chunkSize in [1, replies.count] {
                let h = make()
                h.client(.query("SELECT repeat('x', 100000)::int"))
                XCTAssertEqual(h.sentToServer().count, 1, what)
                var largestHeld = 0
                for start in stride(from: 0, to: replies.count, by: chunkSize) {
                    h.serverBytes(replies[start..<min(start + chunkSize, replies.count)])
                    largestHeld = max(largestHeld, h.fromServer.readableBytes)
                }
                if chunkSize == 1 { XCTAssertLessThanOrEqual(largestHeld, 5 + Self.bound, "\(what): held at most the bound") }
                XCTAssertNil(h.closed, what)
                XCTAssertEqual(h.fromServer.readableBytes, 0, what)
                let sent = h.sentToClient()
                XCTAssertEqual(sent.count, 3, "\(what): \(sent)")
                XCTAssertEqual(sent.first, notice, what)
                XCTAssertEqual(sent.last, ready, what)
                guard sent.count == 3, case .errorResponse(let fields) = sent[1] else { XCTFail("\(what): no error"); continue }
                XCTAssertEqual(fields.severity, "ERROR", what)
                XCTAssertEqual(fields.sqlState, "22P02", what)
                XCTAssertEqual(fields.fields.map(\.code), Array("SVCM".utf8), "\(what): the fields after the cut are dropped")
                let message = try XCTUnwrap(fields.message)
                XCTAssertTrue(message.hasPrefix("invalid input syntax for type integer: \"xxx"), what)
                XCTAssertTrue(message.hasSuffix(" bytes cut by Portcullis)"), "\(what): \(message.suffix(60))")
                XCTAssertLessThanOrEqual(message.utf8.count, Self.bound + 64, "\(what): the kept bytes and the marker")
                XCTAssertTrue(h.actions.contains { if case .discardFromServer = $0 { true } else { false } }, what)
                XCTAssertTrue(h.machine.isAtRest, what)
                if what != "transaction pooling" {
                    XCTAssertEqual(h.records.map(\.outcome), [.failed(sqlState: "22P02", message: message)], what)
                }
                // The session goes on: the next error, under the bound, passes unchanged.
                h.client(.query("SELECT 'y'::int"))
                _ = h.sentToServer()
                let small = H.error("22P02", "invalid input syntax for type integer: \"y\"")
                h.server(small, ready)
                XCTAssertEqual(h.sentToClient(), [small, ready], what)
            }
        }
    }

    /// An error of exactly the bound is held whole and passes unchanged; one byte more is cut.
    func testTheBoundIsTheBodyLength() {
        let h = SessionHarness(readOnly: true, maxHeldServerBody: Self.bound)
        let quotedAtBound = Self.bound - (H.encoded([Self.bigError(0)]).count - 5)
        for (n, cut) in [(quotedAtBound, false), (quotedAtBound + 1, true)] {
            h.client(.query("SELECT 1"))
            _ = h.sentToServer()
            h.server(Self.bigError(n), ready)
            let sent = h.sentToClient()
            XCTAssertEqual(sent.first == Self.bigError(n), !cut, "\(n) bytes quoted")
            XCTAssertEqual(sent.last, ready)
        }
    }

    /// Sessions that hold no ErrorResponse (read-write, session mode, no audit) stream it byte
    /// for byte whatever its length, as before.
    func testAnErrorThatIsNotHeldStreamsByteForByte() {
        let h = SessionHarness(followsStatements: false, maxHeldServerBody: Self.bound)
        h.client(.query("SELECT repeat('x', 100000)::int"))
        _ = h.sentToServer()
        let replies = H.encoded([Self.bigError(100_000), ready])
        for start in stride(from: 0, to: replies.count, by: 4096) {
            h.serverBytes(replies[start..<min(start + 4096, replies.count)])
        }
        XCTAssertEqual(Array(h.toClient.readableBytesView), replies)
        XCTAssertFalse(h.actions.contains { if case .discardFromServer = $0 { true } else { false } })
        XCTAssertTrue(h.machine.isAtRest)
    }

    /// A held type that cannot be cut (a ParameterStatus over the bound, as a long value of a reported
    /// setting PostgreSQL does not bound would be) ends the session with FATAL 54000 naming it, from
    /// its header: nothing of it is held.
    func testAnOversizedParameterStatusEndsTheSession() {
        let h = SessionHarness(readOnly: true, maxHeldServerBody: Self.bound)
        h.client(.query("SELECT 1"))
        _ = h.sentToServer()
        let status = H.encoded([.parameterStatus(name: "search_path", value: String(repeating: "a,", count: 5000))])
        h.serverBytes(status.prefix(5))
        XCTAssertEqual(h.closed?.error?.severity, "FATAL")
        XCTAssertEqual(h.closed?.error?.sqlState, "54000")
        XCTAssertTrue(h.closed?.reason.contains("ParameterStatus of \(status.count - 5) bytes") ?? false, "\(String(describing: h.closed))")
        XCTAssertEqual(h.toClient.readableBytes, 0)
        XCTAssertFalse(h.machine.isAtRest, "the server connection is not reused")
    }
}
