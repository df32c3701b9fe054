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
}
