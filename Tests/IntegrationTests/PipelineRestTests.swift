import Foundation
import Glibc
import XCTest

/// The session machine's one "reusable at rest" predicate on a real server: a client that
/// leaves while a pipelined query is still owed its ReadyForQuery leaves a server session that
/// is neither at rest nor idle. It must be cancelled (as a careful client would, 55.2.7) and
/// not reused: with `server_reset = discard` a reuse would queue DISCARD ALL behind the running
/// query, and the reset would take that query's ReadyForQuery for its own.
final class PipelineRestTests: IntegrationTestCase {
    private var proxy: ProxyProcess?

    override func setUpWithError() throws {
        try requireProxyTarget("pool reuse and cancel-on-leave are the proxy's")
    }

    override func tearDown() {
        proxy?.stop()
        proxy = nil
    }

    /// One loop, one server connection at most, reuse on, and pg_hba.conf `trust` on loopback
    /// so a raw client can log in.
    private func startProxy() throws -> ProxyProcess {
        let h = try harness
        let dir = try h.makeDir("pipeline-rest-hba")
        try "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
            .write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.clientTLS = "allow"
        options.extraSettings = ["workers = 1", "hba_file = \(dir)/pg_hba.conf", "server_reset = discard", "pool_max_size = 1"]
        let started = try ProxyProcess(harness: h, options: options)
        proxy = started
        return started
    }

    /// The first column of the first DataRow.
    private func firstValue(_ messages: [WireClient.Message]) -> String? {
        guard let row = messages.first(where: { $0.type == UInt8(ascii: "D") }), row.payload.count >= 6 else { return nil }
        let length = Int(row.payload[2]) << 24 | Int(row.payload[3]) << 16 | Int(row.payload[4]) << 8 | Int(row.payload[5])
        guard length >= 0, row.payload.count >= 6 + length else { return nil }
        return String(decoding: row.payload[6..<(6 + length)], as: UTF8.self)
    }

    private func sleeping(_ pid: String) throws -> Bool {
        try harness.cluster.query(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid) AND state = 'active' AND query = 'SELECT pg_sleep(60)'") == "1"
    }

    func testLeavingWithAPipelinedQueryOwedCancelsItAndDoesNotReuseTheServer() throws {
        let proxy = try startProxy()
        var client: WireClient? = try WireClient(port: proxy.port, user: "app_rw")
        // Two queries in one write: the first is answered at once, the second sleeps.
        XCTAssertTrue(client?.socket.send(WireClient.query("SELECT pg_backend_pid()") + WireClient.query("SELECT pg_sleep(60)")) ?? false)
        let pid = try XCTUnwrap(firstValue(try XCTUnwrap(client).collect(readyForQuery: 1, timeout: 20)))
        XCTAssertTrue(try poll(timeout: 20) { try self.sleeping(pid) }, "the pipelined query runs")

        // Terminate while the sleep is still owed its ReadyForQuery, then close.
        XCTAssertTrue(client?.socket.send(WireClient.frame("X", [])) ?? false)
        client = nil
        let left = Date()

        // Cancelled: the backend stops sleeping within seconds, not after 60.
        XCTAssertTrue(try poll(timeout: 15) { try !self.sleeping(pid) }, "the owed query was not cancelled")
        XCTAssertLessThan(Date().timeIntervalSince(left), 15)

        // Not reused: the next client gets another backend, at once, and a clean session.
        let next = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw"))
        let rows = try next.rows("SELECT pg_backend_pid()::text, 'fresh'")
        XCTAssertEqual(rows.first?.last, "fresh")
        XCTAssertNotEqual(rows.first?.first, pid)
        XCTAssertTrue(proxy.isAlive, "proxy died:\n\(proxy.stderrText.suffix(3000))")
    }

    func testAClientLeavingAtRestAfterAPipelineKeepsItsServerForTheNext() throws {
        // The control case: every reply received before Terminate, so the server is at rest and
        // (server_reset = discard) serves the next client.
        let proxy = try startProxy()
        var client: WireClient? = try WireClient(port: proxy.port, user: "app_rw")
        XCTAssertTrue(client?.socket.send(WireClient.query("SELECT pg_backend_pid()") + WireClient.query("SELECT 2")
                                          + WireClient.parse("SELECT 3") + WireClient.bind() + WireClient.execute() + WireClient.sync) ?? false)
        let pid = try XCTUnwrap(firstValue(try XCTUnwrap(client).collect(readyForQuery: 3, timeout: 20)))
        XCTAssertTrue(client?.socket.send(WireClient.frame("X", [])) ?? false)
        client = nil
        // The pool resets the returned connection (DISCARD ALL) before it serves again.
        let next = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw"))
        XCTAssertEqual(try next.rows("SELECT pg_backend_pid()::text").first?.first, pid, "a session at rest is reused")
    }
}
