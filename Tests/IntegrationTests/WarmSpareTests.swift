import Foundation
import XCTest

/// The default configuration keeps one warm spare server connection per pool in use
/// (`pool_min_idle = 1`) and for `pool_spare_linger` (1 s) after its last client left. A spare
/// is a backend on its database, so these check what a DBA would run into: PostgreSQL's
/// DROP DATABASE, ALTER DATABASE … RENAME and CREATE DATABASE … TEMPLATE wait up to 5 s
/// for other sessions to leave (procarray.c CountOtherDBBackends: 50 × 100 ms) before failing
/// with 55006, and a cold pool's spare is gone well within that.
final class WarmSpareTests: IntegrationTestCase {
    static let databases = ["spare_drop", "spare_rename", "spare_template"]

    private func backends(on database: String, _ cluster: Cluster) throws -> [Int32] {
        try cluster.query("SELECT pid FROM pg_stat_activity WHERE datname = '\(database)' ORDER BY pid")
            .split(separator: "\n").compactMap { Int32($0) }
    }

    /// Uses `database` through the proxy as a client would (two clients one after the other,
    /// the second served by the spare the first one left), checks the spare is a real, unshared
    /// session, and returns once the last client has left, with the spare still connected.
    private func useThroughProxy(_ database: String, proxy: ProxyProcess, cluster: Cluster) throws {
        let conninfo = proxy.endpoint.conninfo(user: "app_rw", dbname: database, extra: "password=app_rw_pw")
        var first: LibPQSession? = try LibPQSession(conninfo: conninfo)
        let firstPID = try XCTUnwrap(first?.announcedBackendPID)
        // While a client is connected the pool opens a spare beside it.
        // The spare is read from the same listing that shows it, and only once the same backend
        // has stood beside the client in two listings running: a loaded machine once showed a
        // count of two and no such backend in the next listing.
        var spare: Int32?, candidate: Int32?
        XCTAssertTrue(try poll(timeout: 10) {
            let others = try backends(on: database, cluster).filter { $0 != firstPID }
            defer { candidate = others.count == 1 ? others.first : nil }
            if others.count == 1, others.first == candidate { spare = candidate }
            return spare != nil
        }, "no warm spare beside the client")
        let spareKept = try XCTUnwrap(spare)
        first = nil
        // Connections go to the least-loaded event loop and each loop has its own pools, so the
        // second client is connected only once the proxy has ended the first one's session
        // (`server_reset = close` ends its backend with it): connected earlier, it would be
        // handed to the other loop, whose pool has no spare.
        XCTAssertTrue(try poll(timeout: 10) { try !backends(on: database, cluster).contains(firstPID) },
                      "the first client's backend outlived it")
        let second = try LibPQSession(conninfo: conninfo)
        // The spare serves the next client, under its own real backend PID and parameters.
        XCTAssertEqual(second.announcedBackendPID, spareKept, "the second client was not given the spare")
        XCTAssertEqual(try second.rows("SELECT pg_backend_pid()"), [["\(second.announcedBackendPID)"]])
        XCTAssertEqual(second.parameterStatus("server_version").map { $0.hasPrefix("15") }, true)
        XCTAssertTrue(try poll(timeout: 10) { try backends(on: database, cluster).count == 2 }, "no new spare beside the second client")
        _ = second
    }

    func testDatabaseCommandsRightAfterTheLastClientLeftWaitForTheSpareAndSucceed() throws {
        try requireProxyTarget("spares are the proxy's")
        let h = try harness
        let cluster = h.cluster
        for database in Self.databases + ["spare_renamed", "spare_copy"] {
            _ = try cluster.query("DROP DATABASE IF EXISTS \(database)")
        }
        for database in Self.databases { _ = try cluster.query("CREATE DATABASE \(database) OWNER app_rw") }
        var options = ProxyProcess.Options(upstream: cluster)
        options.extraDatabaseNames = Self.databases
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        let commands = [
            ("spare_drop", "DROP DATABASE spare_drop"),
            ("spare_rename", "ALTER DATABASE spare_rename RENAME TO spare_renamed"),
            ("spare_template", "CREATE DATABASE spare_copy TEMPLATE spare_template"),
        ]
        for (database, command) in commands {
            try useThroughProxy(database, proxy: proxy, cluster: cluster)
            // The last client has left; its pool's spare is still connected (it lingers 1 s).
            let before = try backends(on: database, cluster)
            let started = Date()
            let result = try cluster.superuserPsql(command)
            let elapsed = Date().timeIntervalSince(started)
            XCTAssertEqual(result.status, 0, "\(command) failed while the pool was cold: \(result)")
            XCTAssertLessThan(elapsed, 5, "\(command)")
            print("WarmSpareTests: \(command): backends on \(database) when issued: \(before.count), succeeded after \(String(format: "%.2f", elapsed)) s")
        }
        XCTAssertEqual(try cluster.query("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'spare%'"), "0")

        // A client of the dropped database now gets PostgreSQL's own answer.
        let gone = try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: "spare_drop"), sql: "SELECT 1", env: ["PGPASSWORD": "app_rw_pw"])
        XCTAssertNotEqual(gone.status, 0)
        XCTAssertTrue(gone.stderr.contains("database \"spare_drop\" does not exist"), "\(gone)")
        for database in ["spare_renamed", "spare_copy", "spare_template"] {
            _ = try cluster.query("DROP DATABASE IF EXISTS \(database)")
        }
    }
}
