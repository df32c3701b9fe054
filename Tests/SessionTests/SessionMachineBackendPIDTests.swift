import XCTest
@testable import Session
import Wire

/// The audit record's BACKEND_PID is the backend each statement ran on. Found in review
/// (t8_txpool.py): under transaction pooling every record carried the session's first backend,
/// so matching records to PostgreSQL's own log lines (`%p`) blamed another client's statements.
final class SessionMachineBackendPIDTests: XCTestCase {
    typealias H = SessionHarness

    private func pooled() -> SessionHarness {
        var count = 0
        return SessionHarness(followsStatements: true,
                              pooling: .init(refusesPinning: false, tokens: { count += 1; return "pin\(count)z" },
                                             maxPreparedStatements: 200))
    }

    func testEachRecordNamesTheBackendAttachedWhenItRan() {
        let h = pooled()
        h.client(.query("SELECT 1"))
        h.server(H.rowDescription("?column?"), H.dataRow("1"), complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.last?.backendPID, 4242, "the backend of the session's start")
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 7, secretKey: [9, 9, 9, 9])
        h.client(.query("SELECT 2; SELECT 3"))
        h.server(H.rowDescription("?column?"), H.dataRow("2"), complete("SELECT 1"),
                 H.rowDescription("?column?"), H.dataRow("3"), complete("SELECT 1"), ready)
        XCTAssertEqual(h.records.suffix(2).map(\.backendPID), [7, 7])
        _ = h.machine.serverDetached()
        h.machine.serverAttached(processID: 8, secretKey: [8, 8, 8, 8])
        h.client(.query("SELECT pg_sleep(10)"))
        let ended = h.machine.sessionEnded(now: 0)
        XCTAssertEqual(ended.map(\.backendPID), [8], "a statement the session ended in: the backend it was sent to")
    }
}
