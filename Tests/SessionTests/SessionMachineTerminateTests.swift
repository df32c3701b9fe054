import XCTest
import Wire
@testable import Session

/// Terminate as PostgreSQL takes it (postgres.c PostgresMain, case 'X'): everything the client
/// sent before it runs and is answered, then the session ends (SessionMachine+Terminate.swift).
/// Found in review: `BEGIN; INSERT; COMMIT` pipelined with Terminate lost the insert and every
/// reply, in session and transaction mode alike.
final class SessionMachineTerminateTests: XCTestCase {
    typealias H = SessionHarness

    private static var pooling: SessionMachine.TransactionPooling { .init(refusesPinning: false, tokens: { "t" }) }

    private func bind(_ statement: String = "") -> FrontendMessage {
        .bind(.init(portal: "", statement: statement, parameterFormats: [], parameters: [], resultFormats: []))
    }

    func testQueriesPipelinedWithTerminateAreAnsweredBeforeTheSessionEnds() {
        for pooling in [nil, Self.pooling] {
            let h = SessionHarness(pooling: pooling)
            h.client(.query("BEGIN"), .query("INSERT INTO t VALUES (1)"), .query("COMMIT"), .terminate)
            XCTAssertEqual(h.sentToServer().count, 3, "the three queries go up, the Terminate does not")
            XCTAssertFalse(h.released)
            XCTAssertEqual(h.actions.last, .terminate(consume: 5))
            XCTAssertEqual(h.machine.terminationStep(), .waiting)
            h.server(complete("BEGIN"), readyInTransaction, complete("INSERT 0 1"), readyInTransaction)
            XCTAssertEqual(h.machine.terminationStep(), .waiting, "COMMIT is still owed")
            h.server(complete("COMMIT"), ready)
            XCTAssertEqual(h.sentToClient().count, 6, "every reply reaches the client")
            XCTAssertEqual(h.machine.terminationStep(), .complete)
            XCTAssertTrue(h.machine.isAtRest, "the server connection can go back")
            XCTAssertFalse(h.machine.needsCancelOnEnd)
        }
    }

    func testNothingAfterTheTerminateIsRead() {
        let h = SessionHarness()
        h.client(.query("SELECT 1"), .terminate, .query("SELECT 2"))
        XCTAssertEqual(h.sentToServer(), [.query("SELECT 1")])
        XCTAssertTrue(h.machine.isHoldingClientMessages)
        h.client(.query("SELECT 3"))
        XCTAssertEqual(h.sentToServer(), [], "PostgreSQL reads nothing after Terminate")
    }

    func testAnOpenTransactionIsNotAtRestWhenTheRepliesAreIn() {
        let h = SessionHarness(pooling: Self.pooling)
        h.client(.query("BEGIN"), .query("INSERT INTO t VALUES (1)"), .terminate)
        h.server(complete("BEGIN"), readyInTransaction, complete("INSERT 0 1"), readyInTransaction)
        XCTAssertEqual(h.machine.terminationStep(), .complete)
        XCTAssertFalse(h.machine.isAtRest, "closed, not reused: PostgreSQL rolls back at exit")
    }

    func testUnsyncedExtendedMessagesPassTheTerminateOn() {
        let h = SessionHarness(pooling: Self.pooling)
        h.client(.parse(name: "", query: "INSERT INTO t VALUES (1)", parameterTypes: []), bind(), .execute(portal: "", maxRows: 0),
                 .flush, .terminate)
        XCTAssertEqual(h.actions.last, .terminate(consume: 5))
        XCTAssertEqual(h.machine.terminationStep(), .sendTerminate, "no ReadyForQuery will come: the server ends it")
        XCTAssertEqual(h.machine.termination, .forwarded)
        XCTAssertFalse(h.machine.needsCancelOnEnd, "the server runs what precedes the Terminate and exits")
        XCTAssertFalse(h.machine.isAtRest)
        XCTAssertEqual(h.machine.terminationStep(), .waiting)
    }

    func testACopyInStartedAfterTheTerminatePassesItOn() {
        let h = SessionHarness()
        h.client(.query("COPY t FROM STDIN"), .terminate)
        XCTAssertEqual(h.machine.terminationStep(), .waiting)
        h.server(H.copyResponse("G"))
        XCTAssertEqual(h.machine.terminationStep(), .sendTerminate, "the server waits for data that will never come")
    }

    func testTerminateAtRestStillReleasesAtOnce() {
        let h = SessionHarness(pooling: Self.pooling)
        h.client(.query("SELECT 1"))
        h.server(complete("SELECT 1"), ready)
        h.client(.terminate)
        XCTAssertEqual(h.actions.last, .releaseServer(consume: 5))
        XCTAssertNil(h.machine.termination)
    }
}
