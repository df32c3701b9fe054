import XCTest
import Wire
@testable import Session

/// COPY (docs 55.2.6 COPY Operations) and FunctionCall (55.2.5 Function Call), as psql, libpq
/// and its large-object functions send them.
final class SessionMachineCopyTests: XCTestCase {
    typealias H = SessionHarness

    func testCopyFromStdinSimpleProtocol() {
        let h = SessionHarness()
        h.client(.query("COPY t FROM STDIN"))
        h.server(H.copyResponse("G"))
        XCTAssertFalse(h.machine.isAtRest)
        h.client(.copyData(Array("1\n".utf8)), .copyData(Array("2\n3\n".utf8)), .copyDone)
        XCTAssertEqual(h.sentToServer().count, 4)
        h.server(complete("COPY 3"), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.records[0].command, "COPY")
        XCTAssertEqual(h.records[0].rows, 3)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testCopyToStdoutIsForwardedUnchanged() {
        let h = SessionHarness()
        h.client(.query("COPY t TO STDOUT"))
        let replies: [BackendMessage] = [H.copyResponse("H"), H.copyData("1\n"), H.copyData("2\n"), .copyDone,
                                         complete("COPY 2"), ready]
        let bytes = H.encoded(replies)
        // Delivered in small pieces, as a socket may.
        var offset = 0
        while offset < bytes.count {
            h.serverBytes(bytes[offset..<min(offset + 7, bytes.count)])
            offset += 7
        }
        XCTAssertEqual(Array(h.toClient.readableBytesView), bytes)
        XCTAssertEqual(h.records.map(\.rows), [2])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testCopyFailEndsTheStatementWithItsError() {
        let h = SessionHarness()
        h.client(.query("COPY t FROM STDIN"))
        h.server(H.copyResponse("G"))
        h.client(.copyData(Array("1\n".utf8)), .copyFail("client gave up"))
        h.server(H.error("57014", "COPY from stdin failed: client gave up"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.failed(sqlState: "57014", message: "COPY from stdin failed: client gave up")])
        XCTAssertTrue(h.machine.isAtRest)
    }

    /// libpq's extended COPY FROM STDIN: a Sync right after the Execute (the server is in
    /// copy-in mode and ignores it) and another after CopyDone.
    private func extendedCopy(_ h: SessionHarness, copyResponseFirst: Bool) {
        h.client(.parse(name: "", query: "COPY t FROM STDIN", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync)
        if copyResponseFirst {
            h.server(.parseComplete, .bindComplete, H.copyResponse("G"))
            h.client(.copyData(Array("1\n2\n".utf8)), .copyDone, .sync)
        } else {
            // The client's CopyDone and Sync are read before the server's CopyInResponse.
            h.client(.copyData(Array("1\n2\n".utf8)), .copyDone, .sync)
            h.server(.parseComplete, .bindComplete, H.copyResponse("G"))
        }
        h.server(complete("COPY 2"), ready)
    }

    func testExtendedCopyFromStdinInBothArrivalOrders() {
        for first in [true, false] {
            for follows in [true, false] {
                let h = SessionHarness(followsStatements: follows)
                extendedCopy(h, copyResponseFirst: first)
                XCTAssertTrue(h.machine.isAtRest, "the Sync inside copy-in owes nothing (first: \(first), follows: \(follows))")
                h.client(.query("SELECT 1"))
                h.server(complete("SELECT 1"), ready)
                XCTAssertTrue(h.machine.isAtRest)
                if follows {
                    XCTAssertEqual(h.records.map(\.command), ["COPY", "SELECT"])
                    XCTAssertEqual(h.records.first?.rows, 2)
                }
            }
        }
    }

    func testExtendedCopyFollowedByAnErrorAndSuccesses() {
        let h = SessionHarness()
        extendedCopy(h, copyResponseFirst: true)
        h.client(.parse(name: "", query: "SELECT 1/0", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync,
                 .parse(name: "", query: "SELECT 2", parameterTypes: []), H.bind(), .execute(portal: "", maxRows: 0), .sync)
        h.server(.parseComplete, .bindComplete, H.error("22012", "division by zero"), ready,
                 .parseComplete, .bindComplete, complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.map(\.text), ["COPY t FROM STDIN", "SELECT 1/0", "SELECT 2"])
        XCTAssertEqual(h.records.map(\.outcome), [.ok, .failed(sqlState: "22012", message: "division by zero"), .ok])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testCopyDataIsStreamedAndAHalfSentMessageIsNotRest() {
        let h = SessionHarness()
        h.client(.query("COPY t FROM STDIN"))
        h.server(H.copyResponse("G"))
        let data = H.encoded([FrontendMessage.copyData(Array(repeating: 0x31, count: 5000))])
        _ = h.sentToServer()
        h.clientBytes(data.prefix(2000))
        XCTAssertEqual(h.toServer.readableBytes, 2000, "CopyData is passed on as it arrives")
        XCTAssertTrue(h.machine.statementInFlight)
        h.clientBytes(data.dropFirst(2000))
        h.client(.copyDone)
        h.server(complete("COPY 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testCopyOutErrorMidStream() {
        let h = SessionHarness()
        h.client(.query("COPY (SELECT 1/(i - 2) FROM generate_series(1, 3) i) TO STDOUT"))
        h.server(H.copyResponse("H"), H.copyData("-1\n"), H.error("22012", "division by zero"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.failed(sqlState: "22012", message: "division by zero")])
        XCTAssertTrue(h.machine.isAtRest)
    }

    // MARK: FunctionCall

    private func functionCall(_ oid: Int32, _ arguments: [[UInt8]?]) -> FrontendMessage {
        .functionCall(.init(functionOID: oid, argumentFormats: [1], arguments: arguments, resultFormat: 1))
    }

    func testFunctionCallSucceeds() {
        let h = SessionHarness()
        // lo_open(oid, INV_READ) as libpq's lo_open sends it (binary arguments).
        h.client(functionCall(952, [[0, 0, 0x40, 0], [0, 4, 0, 0]]))
        h.server(.raw(type: UInt8(ascii: "V"), payload: [0, 0, 0, 4, 0, 0, 0, 0]), ready)
        XCTAssertEqual(h.records.count, 1)
        XCTAssertEqual(h.records[0].source, .functionCall(oid: 952))
        XCTAssertEqual(h.records[0].outcome, .ok)
        XCTAssertNil(h.records[0].tag)
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testFunctionCallFails() {
        let h = SessionHarness()
        h.client(functionCall(954, [[0, 0, 0, 9], [0, 0, 0, 10]]))
        h.server(H.error("42704", "invalid large-object descriptor: 9"), ready)
        XCTAssertEqual(h.records.map(\.outcome), [.failed(sqlState: "42704", message: "invalid large-object descriptor: 9")])
        XCTAssertTrue(h.machine.isAtRest)
    }

    func testFunctionCallsPipelinedWithQueries() {
        let h = SessionHarness(followsStatements: false)
        h.client(functionCall(952, [[0, 0, 0x40, 0], [0, 4, 0, 0]]), .query("SELECT 1"))
        h.server(.raw(type: UInt8(ascii: "V"), payload: [0, 0, 0, 4, 0, 0, 0, 0]), ready)
        XCTAssertFalse(h.machine.isAtRest, "the Query is still owed")
        h.server(complete("SELECT 1"), ready)
        XCTAssertTrue(h.machine.isAtRest)
    }
}
