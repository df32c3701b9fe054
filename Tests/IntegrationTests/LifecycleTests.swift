import Foundation
import Glibc
import XCTest

/// Process-level behaviour a DBA relies on: the Unix-domain socket and a draining shutdown.
final class LifecycleTests: IntegrationTestCase {
    /// unix_socket_directories with unix_socket_permissions, and local_auth_method = trust.
    func testUnixSocketWithPermissionsAndLocalTrust() throws {
        try requireProxyTarget("the proxy's own Unix-domain socket")
        let harness = try harness
        let socketDir = try harness.makeDir("sock")
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["unix_socket_directories = \(socketDir)", "unix_socket_permissions = 0770"]
        let proxy = try ProxyProcess(harness: harness, options: options)
        var st = stat()
        XCTAssertEqual(stat("\(socketDir)/.s.PGSQL.\(proxy.port)", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o770)
        let result = try runPsql(conninfo: "host=\(socketDir) port=\(proxy.port) dbname=app user=app_rw",
                                 sql: "SELECT current_user || '|' || (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
        assertSucceeded(result, "psql over the Unix socket without a password")
        // Local trust on our side; the upstream leg is still TLS with SCRAM.
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "app_rw|true")
        proxy.stop()
        XCTAssertNotEqual(access("\(socketDir)/.s.PGSQL.\(proxy.port)", F_OK), 0, "socket file removed at exit")
    }

    /// SIGTERM: stop accepting, let sessions run until shutdown_drain_timeout, then 57P01 and exit.
    func testSigtermDrainsThenTerminatesSessions() throws {
        try requireProxyTarget("the proxy's shutdown")
        let harness = try harness
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["shutdown_drain_timeout = 2s"]
        let proxy = try ProxyProcess(harness: harness, options: options)
        let endpoint = proxy.endpoint
        let client = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo()], environment: endpoint.env(),
                                           workDir: try harness.makeDir("drain"), interactiveStdin: true)
        defer { client.signal(SIGKILL) }
        client.send("SELECT 'before';\n")
        XCTAssertTrue(try poll(timeout: 20) { client.stdoutText().contains("before") })
        kill(proxy.pid, SIGTERM)
        // Listeners close at once: a new client is refused while the old session still works.
        XCTAssertTrue(try poll(timeout: 5) {
            try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env(), timeout: 10).status != 0
        })
        client.send("SELECT 'during';\n")
        XCTAssertTrue(try poll(timeout: 5) { client.stdoutText().contains("during") }, "the session runs on during the drain")
        XCTAssertTrue(try poll(timeout: 15) { !proxy.isAlive }, "proxy exits after the drain timeout")
        // psql reads the server's FATAL when it next talks to it.
        client.send("SELECT 'after';\n")
        client.closeStdin()
        let result = try client.wait(timeout: 10)
        XCTAssertTrue(result.stderr.contains("terminating connection due to administrator command"), "\(result)")
    }
}
