import Foundation
import Glibc
import XCTest

/// Issue 10 item 3: a reload reaches existing pools (pool_*, server_reset), pools of removed
/// [databases] entries drain, and `portcullis reload` answers only once the running process
/// has the new configuration in force (or refused it, with file:line).
final class ReloadReachTests: IntegrationTestCase {
    private func portcullisReload(_ proxy: ProxyProcess) throws -> CommandResult {
        try runCommand(ProxyProcess.binaryPath(repoRoot: try harness.repoRoot), ["reload", "--config", proxy.configPath, "--timeout", "30"],
                       timeout: 60)
    }

    /// Replaces the `[portcullis]` line starting with `key =` (or the line `old` verbatim).
    private func rewriteConfig(_ proxy: ProxyProcess, _ edit: (String) -> String) throws {
        let text = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        try writePrivateConfig(edit(text), to: proxy.configPath)
    }

    private func setting(_ key: String, _ value: String) -> (String) -> String {
        { text in
            text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
                line.hasPrefix("\(key) =") ? "\(key) = \(value)" : String(line)
            }.joined(separator: "\n")
        }
    }

    private func conninfo(_ proxy: ProxyProcess, dbname: String = "app") -> String {
        proxy.endpoint.conninfo(user: "app_rw", dbname: dbname, extra: "password=app_rw_pw")
    }

    private func backendPID(_ proxy: ProxyProcess) throws -> String {
        let result = try runPsql(conninfo: proxy.endpoint.conninfo(), sql: "SELECT pg_backend_pid()", env: proxy.endpoint.env())
        assertSucceeded(result, "session for its backend pid")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testPoolSettingsReachExistingPools() throws {
        try requireProxyTarget("proxy pool reload")
        let h = try harness
        let dir = try h.makeDir("pool-reload")
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["workers = 1", "pool_max_size = 2", "pool_wait_timeout = 1s", "server_reset = close",
                                 "pid_file = \(dir)/portcullis.pid"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        // pool_max_size lowered: the pool that already exists (it holds `held`) gives a
        // second client nothing; raised again: it does.
        let held = try LibPQSession(conninfo: conninfo(proxy))
        XCTAssertEqual(try held.rows("SELECT 'held'"), [["held"]])
        XCTAssertNoThrow(try LibPQSession(conninfo: conninfo(proxy)), "two server connections under pool_max_size = 2")
        try rewriteConfig(proxy, setting("pool_max_size", "1"))
        let lowered = try portcullisReload(proxy)
        assertSucceeded(lowered, "portcullis reload with pool_max_size = 1")
        XCTAssertThrowsError(try LibPQSession(conninfo: conninfo(proxy))) { error in
            XCTAssertTrue("\(error)".contains("no server connection became free for database \"app\" within pool_wait_timeout"), "\(error)")
        }
        try rewriteConfig(proxy, setting("pool_max_size", "2"))
        assertSucceeded(try portcullisReload(proxy), "portcullis reload with pool_max_size = 2")
        XCTAssertNoThrow(try LibPQSession(conninfo: conninfo(proxy)), "pool_max_size raised again")
        withExtendedLifetime(held) {}

        // server_reset: close never hands a server connection to the next client; after the
        // reload to discard, consecutive clients share one.
        let closed = try (0..<3).map { _ in try backendPID(proxy) }
        XCTAssertEqual(Set(closed).count, 3, "server_reset = close: \(closed)")
        try rewriteConfig(proxy, setting("server_reset", "discard"))
        assertSucceeded(try portcullisReload(proxy), "portcullis reload with server_reset = discard")
        var seen: [String] = []
        let reused = try poll(timeout: 20) {
            seen.append(try backendPID(proxy))
            return seen.count >= 2 && seen[seen.count - 1] == seen[seen.count - 2]
        }
        XCTAssertTrue(reused, "server_reset = discard reuses the server connection: \(seen)")
    }

    func testRemovedDatabaseEntryDrains() throws {
        try requireProxyTarget("proxy pool reload")
        let h = try harness
        let dir = try h.makeDir("drain-reload")
        var options = ProxyProcess.Options(upstream: h.cluster)
        let entry = "gone = \(ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir)) dbname=app"
        options.extraDatabases = [entry]
        // discard: without the drain the returned connection would stay idle in the pool.
        options.extraSettings = ["workers = 1", "server_reset = discard", "pid_file = \(dir)/portcullis.pid"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        var session: LibPQSession? = try LibPQSession(conninfo: conninfo(proxy, dbname: "gone"))
        let pid = try XCTUnwrap(session?.rows("SELECT pg_backend_pid()").first?.first ?? nil)
        try rewriteConfig(proxy) { $0.replacingOccurrences(of: entry, with: "") }
        assertSucceeded(try portcullisReload(proxy), "portcullis reload without [databases] gone")

        let refused = try runPsql(conninfo: proxy.endpoint.conninfo(dbname: "gone"), sql: "SELECT 1", env: proxy.endpoint.env())
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("FATAL:  database \"gone\" does not exist"), "\(refused)")

        XCTAssertEqual(try session?.rows("SELECT 'still here'"), [["still here"]], "the open session keeps working")
        XCTAssertEqual(try h.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)"), "1")
        session = nil
        let gone = try poll(timeout: 20) { try h.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)") == "0" }
        XCTAssertTrue(gone, "the removed entry's server connection is closed when its session ends")
    }

    /// An entry that now points elsewhere starts a new generation of connections: the old
    /// server connection is not handed out again (server_reset = discard would reuse it).
    func testChangedDatabaseEntryStartsANewGeneration() throws {
        try requireProxyTarget("proxy pool reload")
        let h = try harness
        let dir = try h.makeDir("moved-reload")
        var options = ProxyProcess.Options(upstream: h.cluster)
        let server = ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir)
        options.extraDatabases = ["moved = \(server) dbname=app"]
        options.extraSettings = ["workers = 1", "server_reset = discard", "pid_file = \(dir)/portcullis.pid"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        var session: LibPQSession? = try LibPQSession(conninfo: conninfo(proxy, dbname: "moved"))
        XCTAssertEqual(try session?.rows("SELECT current_database()"), [["app"]])
        let pid = try XCTUnwrap(session?.rows("SELECT pg_backend_pid()").first?.first ?? nil)
        try rewriteConfig(proxy) { $0.replacingOccurrences(of: "moved = \(server) dbname=app", with: "moved = \(server) dbname=postgres") }
        assertSucceeded(try portcullisReload(proxy), "portcullis reload with [databases] moved changed")
        XCTAssertEqual(try session?.rows("SELECT current_database()"), [["app"]], "the open session keeps its server")
        session = nil
        let gone = try poll(timeout: 20) { try h.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)") == "0" }
        XCTAssertTrue(gone, "the old generation's server connection is closed when its session ends")
        let next = try runPsql(conninfo: proxy.endpoint.conninfo(dbname: "moved"), sql: "SELECT current_database()", env: proxy.endpoint.env())
        assertSucceeded(next, "a new session on the changed entry")
        XCTAssertEqual(next.stdout, "postgres\n")
    }

    func testReloadCommandRefusesBrokenFilesAndNeedsARunningProcess() throws {
        try requireProxyTarget("portcullis reload")
        let h = try harness
        let dir = try h.makeDir("reload-command")
        let hbaPath = "\(dir)/pg_hba.conf"
        let pidFile = "\(dir)/portcullis.pid"
        try "hostssl all all 127.0.0.1/32 scram-sha-256\n".write(toFile: hbaPath, atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["hba_file = \(hbaPath)", "pid_file = \(pidFile)"]
        let proxy = try ProxyProcess(harness: h, options: options)
        XCTAssertEqual(try String(contentsOfFile: pidFile, encoding: .utf8), "\(proxy.pid)\n", "pid_file holds the process id")
        func login() throws -> CommandResult {
            try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_ro"), sql: "SELECT 'in'", env: proxy.endpoint.env(user: "app_ro"))
        }
        assertSucceeded(try login(), "login under the first rules")

        try "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 bogus-method\n"
            .write(toFile: hbaPath, atomically: true, encoding: .utf8)
        // PostgreSQL keeps the old pg_hba.conf and applies the rest: "partial", exit 2.
        let broken = try portcullisReload(proxy)
        XCTAssertEqual(broken.status, 2, "\(broken)")
        XCTAssertTrue(broken.stderr.contains("\(hbaPath):2: invalid authentication method \"bogus-method\""), "\(broken)")
        assertSucceeded(try login(), "the old rules stay in force")
        // A plain SIGHUP: the process itself says why in <pid_file>.status.
        kill(proxy.pid, SIGHUP)
        var status = ""
        let reported = poll(timeout: 20) {
            status = (try? String(contentsOfFile: "\(pidFile).status", encoding: .utf8)) ?? ""
            return status.contains("outcome = partial")
        }
        XCTAssertTrue(reported, status)
        XCTAssertTrue(status.contains("error = \(hbaPath):2: invalid authentication method \"bogus-method\""), status)
        assertSucceeded(try login(), "the old rules stay in force")

        try "hostssl all all 127.0.0.1/32 scram-sha-256\n".write(toFile: hbaPath, atomically: true, encoding: .utf8)
        try rewriteConfig(proxy, setting("log_level", "nonsense"))
        let badIni = try portcullisReload(proxy)
        XCTAssertEqual(badIni.status, 1, "\(badIni)")
        XCTAssertTrue(badIni.stderr.contains("\(proxy.configPath):"), "the refusal names the ini: \(badIni)")

        try rewriteConfig(proxy, setting("log_level", "info"))
        try "hostssl all all 127.0.0.1/32 reject\n".write(toFile: hbaPath, atomically: true, encoding: .utf8)
        let good = try portcullisReload(proxy)
        assertSucceeded(good, "a good reload")
        // In force when the command returns: no polling.
        XCTAssertTrue(try login().stderr.contains("pg_hba.conf rejects connection"), "the new rules are in force")

        proxy.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidFile), "pid_file removed at a clean exit")
        let none = try portcullisReload(proxy)
        XCTAssertEqual(none.status, 3, "\(none)")
        XCTAssertTrue(none.stderr.contains("no running portcullis process"), "\(none)")
    }
}
