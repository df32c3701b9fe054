import Foundation
import XCTest

/// The proxy's own settings queries in `pool_mode = transaction` (SettingsExchange) against a
/// real PostgreSQL 15, from the review of 2026-12-07: each case below ended the client's session
/// with FATAL 08006 where PostgreSQL directly just goes on. `txone` has one server connection,
/// so consecutive transactions of different clients share it.
final class TransactionPoolingSettingsTests: SharedProxyTestCase {

    private func startProxy() throws -> ProxyProcess {
        try sharedProxy {
            let h = try harness
            var options = try ProxyProcess.Options.transactionPooling(h, directory: "txset-hba", poolSize: 1, waitTimeout: "10s") { server in
                ["txone = \(server) dbname=app pool_mode=transaction"]
            }
            options.extraSettings += ["pool_min_idle = 0"]
            return try ProxyProcess(harness: h, options: options)
        }
    }

    private func connect(_ proxy: ProxyProcess) throws -> LibPQSession {
        try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: "txone",
                                                           extra: "password=\(Endpoint.passwords["app_rw"] ?? "") application_name=txset_it"))
    }

    private func value(_ session: LibPQSession, _ sql: String) throws -> String? {
        try session.rows(sql).first?.first ?? nil
    }

    /// The capture ran under the client's statement_timeout: with 1ms it timed out itself.
    func testATinyStatementTimeoutDoesNotEndTheSession() throws {
        let proxy = try startProxy()
        let a = try connect(proxy)
        let other = try connect(proxy)
        _ = try a.rows("SET statement_timeout = '1ms'")
        for round in 0..<10 {
            _ = try a.rows("SET work_mem = '\(3001 + round)kB'")
            // Another client in between: a's next transaction gets its settings restored.
            XCTAssertEqual(try value(other, "SELECT current_setting('statement_timeout')"), "0")
            XCTAssertEqual(try value(a, "SELECT current_setting('work_mem')"), "\(3001 + round)kB")
        }
        XCTAssertEqual(try value(a, "SELECT current_setting('statement_timeout')"), "1ms")
    }

    /// temp_buffers cannot change once a backend has accessed temporary tables (guc.c
    /// check_temp_buffers): restoring a's value failed on the backend x had used.
    func testASettingARefusingServerCannotTakeMovesTheClientToAnother() throws {
        let proxy = try startProxy()
        let a = try connect(proxy)
        _ = try a.rows("SET temp_buffers = '16MB'")
        let x = try connect(proxy)
        _ = try x.rows("CREATE TEMP TABLE settings_tx (i int)")
        _ = try x.rows("INSERT INTO settings_tx VALUES (1)")
        _ = try x.rows("DISCARD ALL")
        XCTAssertEqual(try value(a, "SELECT current_setting('temp_buffers')"), "16MB")
        XCTAssertEqual(try value(x, "SELECT 1"), "1", "x goes on too")
    }

    /// A 9 MB value: its hex in the capture's reply overran the frame limit (the session closed
    /// with a bare EOF). Too long to carry, it keeps the session on its server.
    func testAHugeSettingKeepsTheSessionOnItsServer() throws {
        let proxy = try startProxy()
        let a = try connect(proxy)
        _ = try a.rows("SELECT set_config('local_preload_libraries', repeat('x', 9000000), false) IS NOT NULL")
        XCTAssertEqual(try value(a, "SELECT length(current_setting('local_preload_libraries'))"), "9000000")
        let pid = try value(a, "SELECT pg_backend_pid()")
        XCTAssertEqual(try value(a, "SELECT pg_backend_pid()"), pid)
        _ = try a.rows("DISCARD ALL")
        // Unpinned: another client gets the server connection.
        XCTAssertEqual(try value(try connect(proxy), "SELECT length(current_setting('local_preload_libraries'))"), "0")
    }
}
