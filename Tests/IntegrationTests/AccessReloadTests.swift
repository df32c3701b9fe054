import Foundation
import Glibc
import XCTest

/// SIGHUP re-reads pg_hba.conf atomically: a file with errors is refused with file:line and the
/// old rules stay; a good file applies to new connections only.
final class AccessReloadTests: IntegrationTestCase {
    func testReloadAppliesGoodRulesAndRefusesBrokenOnes() throws {
        try requireProxyTarget("proxy reload")
        let h = try harness
        let dir = try h.makeDir("hba-reload")
        let hbaPath = "\(dir)/pg_hba.conf"
        try "hostssl all all 127.0.0.1/32 scram-sha-256\n".write(toFile: hbaPath, atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["hba_file = \(hbaPath)"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let endpoint = proxy.endpoint
        func login() throws -> CommandResult {
            try runPsql(conninfo: endpoint.conninfo(user: "app_ro"), sql: "SELECT 'in'", env: endpoint.env(user: "app_ro"))
        }
        assertSucceeded(try login(), "login under the first rules")

        // A session that stays open across both reloads.
        let session = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(user: "app_ro")],
                                            environment: endpoint.env(user: "app_ro"), workDir: dir, interactiveStdin: true)
        defer { session.signal(SIGKILL) }
        session.send("SELECT 'before';\n")

        try "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 bogus-method\n"
            .write(toFile: hbaPath, atomically: true, encoding: .utf8)
        kill(endpoint.proxyPID!, SIGHUP)
        let refused = poll(timeout: 20) { proxy.stderrText.contains("\(hbaPath):2: invalid authentication method \"bogus-method\"") }
        XCTAssertTrue(refused, "a broken pg_hba.conf must be reported with file:line: \(proxy.stderrText.suffix(2000))")
        assertSucceeded(try login(), "the old rules stay in force")

        try "hostssl all all 127.0.0.1/32 reject\n".write(toFile: hbaPath, atomically: true, encoding: .utf8)
        kill(endpoint.proxyPID!, SIGHUP)
        let rejected = try poll(timeout: 20) { try login().stderr.contains("pg_hba.conf rejects connection for host \"127.0.0.1\", user \"app_ro\", database \"app\", SSL encryption") }
        let last = try login()
        XCTAssertTrue(rejected, "new connections follow the new rules: \(last)")

        session.send("SELECT 'after';\n")
        session.closeStdin()
        let result = try session.wait(timeout: 30)
        assertSucceeded(result, "the session opened before both reloads")
        XCTAssertEqual(result.stdout, "before\nafter\n")
    }

    /// PostgreSQL starts without maps when pg_ident.conf cannot be loaded (postmaster.c), and
    /// so does Portcullis, logging the file:line errors; `check-config` still fails on them.
    func testStartsWithoutMapsWhenPgIdentIsBroken() throws {
        try requireProxyTarget("proxy start-up")
        let h = try harness
        let dir = try h.makeDir("broken-ident")
        try "hostssl all all 127.0.0.1/32 scram-sha-256\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        try "m agent\n".write(toFile: "\(dir)/pg_ident.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["hba_file = \(dir)/pg_hba.conf", "ident_file = \(dir)/pg_ident.conf"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        XCTAssertTrue(proxy.stderrText.contains("\(dir)/pg_ident.conf:1: missing entry at end of line"), proxy.stderrText)
        assertSucceeded(try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_ro"), sql: "SELECT 1",
                                    env: proxy.endpoint.env(user: "app_ro")), "pg_hba.conf in force")
        let check = try runCommand(ProxyProcess.binaryPath(repoRoot: h.repoRoot), ["check-config", "--config", proxy.configPath])
        XCTAssertEqual(check.status, 1, "\(check)")
        XCTAssertTrue(check.stderr.contains("\(dir)/pg_ident.conf:1: missing entry at end of line"), "\(check)")
    }

    /// pg_hba.conf `peer` on the proxy's Unix socket: the connecting process's OS user
    /// (SO_PEERCRED), mapped through pg_ident.conf.
    func testPeerAuthenticationOnTheUnixSocket() throws {
        try requireProxyTarget("the proxy's own Unix-domain socket")
        let h = try harness
        let dir = try h.makeDir("peer")
        let user = String(cString: getpwuid(geteuid())!.pointee.pw_name)
        try "local all all peer map=os\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        try "os \(user) app_ro\n".write(toFile: "\(dir)/pg_ident.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["unix_socket_directories = \(dir)", "hba_file = \(dir)/pg_hba.conf",
                                 "ident_file = \(dir)/pg_ident.conf"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let mapped = try runPsql(conninfo: "host=\(dir) port=\(proxy.port) dbname=app user=app_ro", sql: "SELECT current_user")
        assertSucceeded(mapped, "\(user) mapped to app_ro")
        XCTAssertEqual(mapped.stdout, "app_ro\n")
        let unmapped = try runPsql(conninfo: "host=\(dir) port=\(proxy.port) dbname=app user=app_rw", sql: "SELECT 1")
        XCTAssertNotEqual(unmapped.status, 0)
        XCTAssertTrue(unmapped.stderr.contains("FATAL:  Peer authentication failed for user \"app_rw\""), "\(unmapped)")
    }
}
