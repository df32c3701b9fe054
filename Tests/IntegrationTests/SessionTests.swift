import Foundation
import Glibc
import XCTest

/// Asynchronous notifications, query cancellation and clients that vanish mid-query.
final class SessionTests: IntegrationTestCase {
    /// Session A LISTENs and stays connected (one psql reading a pipe); session B NOTIFYs;
    /// A's next command shows the notification.
    func testListenNotifyIsDeliveredAcrossSessions() throws {
        let endpoint = try endpoint
        let channel = marker("chan")
        let listener = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo()], environment: endpoint.env(),
                                             workDir: try harness.makeDir("listen"), interactiveStdin: true)
        defer { listener.signal(SIGKILL) }
        listener.send("LISTEN \(channel);\n")
        let listening = try poll(timeout: 20) { try backends(matching: "LISTEN \(channel)", state: "idle") == 1 }
        XCTAssertTrue(listening, "listener never became idle after LISTEN: \(listener.stderrText())")

        let notify = try runPsql(conninfo: endpoint.conninfo(), sql: "NOTIFY \(channel), 'x'", env: endpoint.env())
        assertSucceeded(notify, "NOTIFY")

        listener.send("SELECT 'after-notify';\n")
        listener.closeStdin()
        let result = try listener.wait(timeout: 30)
        assertSucceeded(result, "listener session")
        XCTAssertTrue(result.stdout.contains("after-notify"), "\(result)")
        XCTAssertTrue(result.stdout.contains(
            "Asynchronous notification \"\(channel)\" with payload \"x\" received from server process with PID"), "\(result)")
    }

    /// SIGINT makes psql send a CancelRequest on a new connection to the same endpoint.
    func testRunningQueryIsCancelledBySigint() throws {
        let endpoint = try endpoint
        let tag = marker("cancel")
        let client = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(), "-c", "SELECT pg_sleep(30) AS \(tag)"],
                                           environment: endpoint.env(), workDir: try harness.makeDir("cancel"))
        defer { client.signal(SIGKILL) }
        let running = try poll(timeout: 20) { try backends(matching: tag, state: "active") == 1 }
        XCTAssertTrue(running, "query never started: \(client.stderrText())")

        let interrupted = Date()
        client.signal(SIGINT)
        let result = try client.wait(timeout: 25)
        // Sanity bound only: an uncancelled query would take 30 s.
        XCTAssertLessThan(Date().timeIntervalSince(interrupted), 10, "cancel did not take effect: \(result)")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("canceling statement due to user request"), "\(result)")
        let gone = try poll(timeout: 10) { try backends(matching: tag, state: "active") == 0 }
        XCTAssertTrue(gone, "the cancelled query is still active on the server")
    }

    /// A client killed mid-query must not leave its server session behind — nor its query
    /// running: the query sleeps 60 s, the backend must be gone well before that, which only a
    /// cancel can do (the server itself notices a closed client only when it next writes).
    func testKilledClientLeavesNoBackendBehind() throws {
        let endpoint = try endpoint
        let tag = marker("kill")
        let client = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(extra: "application_name=\(tag)"),
                                                                "-c", "SELECT pg_sleep(60) AS \(tag)"],
                                           environment: endpoint.env(), workDir: try harness.makeDir("kill"))
        let running = try poll(timeout: 20) { try backends(matching: tag, state: "active") == 1 }
        XCTAssertTrue(running, "query never started: \(client.stderrText())")
        client.signal(SIGKILL)
        _ = try? client.wait(timeout: 10)

        let gone = try poll(timeout: 20, every: 0.25) { try backends(matching: tag) == 0 }
        let leftovers = try harness.cluster.query(
            "SELECT pid, state, application_name FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%\(tag)%'")
        XCTAssertTrue(gone, "backend left behind after the client was killed: \(leftovers)")
        if let pid = endpoint.proxyPID { XCTAssertEqual(kill(pid, 0), 0, "proxy died") }
    }
}
