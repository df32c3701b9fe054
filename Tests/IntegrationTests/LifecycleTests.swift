import Foundation
import Glibc
import XCTest

/// Process-level behaviour a DBA relies on: the Unix-domain socket, a port in use, a draining
/// shutdown, check-role.
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

    /// A second instance on a port in use fails to start, as PostgreSQL does (found in review:
    /// with SO_REUSEPORT always set, two instances shared the port with two configurations);
    /// with `so_reuseport = on` it starts, and serves the port once the first is gone.
    func testASecondInstanceOnTheSamePortFailsUnlessSoReusePort() throws {
        try requireProxyTarget("the proxy's listening sockets")
        let harness = try harness
        let proxy = try ProxyProcess(harness: harness, options: ProxyProcess.Options(upstream: harness.cluster))
        let binary = ProxyProcess.binaryPath(repoRoot: harness.repoRoot)
        let second = try BackgroundCommand(binary, ["run", "--config", proxy.configPath], workDir: try harness.makeDir("second"))
        let refused = try second.wait(timeout: 20)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("could not bind to address \"127.0.0.1\", port \(proxy.port)")
                      && refused.stderr.contains("in use"), refused.stderr)
        XCTAssertTrue(proxy.isAlive)
        proxy.stop()

        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["so_reuseport = on"]
        let sharing = try ProxyProcess(harness: harness, options: options)
        let successor = try BackgroundCommand(binary, ["run", "--config", sharing.configPath], workDir: try harness.makeDir("successor"))
        defer { successor.signal(SIGTERM); _ = try? successor.wait(timeout: 15) }
        sharing.stop()
        // Only the successor can answer now: a psql that gets in proves it listens.
        let answered = try poll(timeout: 20, every: 0.2) {
            try runPsql(conninfo: sharing.endpoint.conninfo(user: "app_rw", dbname: "app", extra: "password=app_rw_pw"),
                        sql: "SELECT 1").status == 0
        }
        XCTAssertTrue(answered, "the successor did not serve the shared port:\n\(successor.stderrText().suffix(2000))")
        XCTAssertTrue(successor.isRunning)
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
        XCTAssertTrue(poll(timeout: 20) { client.stdoutText().contains("before") })
        kill(proxy.pid, SIGTERM)
        // Listeners close at once: a new client is refused while the old session still works.
        XCTAssertTrue(try poll(timeout: 5) {
            try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env(), timeout: 10).status != 0
        })
        client.send("SELECT 'during';\n")
        XCTAssertTrue(poll(timeout: 5) { client.stdoutText().contains("during") }, "the session runs on during the drain")
        XCTAssertTrue(poll(timeout: 15) { !proxy.isAlive }, "proxy exits after the drain timeout")
        // psql reads the server's FATAL when it next talks to it.
        client.send("SELECT 'after';\n")
        client.closeStdin()
        let result = try client.wait(timeout: 10)
        XCTAssertTrue(result.stderr.contains("terminating connection due to administrator command"), "\(result)")
    }

    /// check-role against a real PostgreSQL: the default role fails (PUBLIC's TEMP), the role made
    /// from create-readonly-role passes, and a write privilege inherited through a group is found.
    func testCheckRoleAndCreateReadonlyRole() throws {
        try requireProxyTarget("exercises the portcullis binary against its own cluster")
        let harness = try harness
        let cluster = try harness.startExtraCluster(certName: "upstream")
        let binary = ProxyProcess.binaryPath(repoRoot: harness.repoRoot)
        let dir = try harness.makeDir("roles")
        func config(_ identities: String) throws -> String {
            let path = "\(dir)/roles-\(UUID().uuidString.prefix(6)).ini"
            let server = "host=127.0.0.1 port=\(cluster.port) sslmode=verify-full sslrootcert=\(harness.certDir)/ca.crt"
            try writePrivateConfig("""
                [portcullis]
                host_auth_method = trust
                [tls]
                client_tls = disable
                [databases]
                app = \(server) dbname=app
                [identities]
                \(identities)
                """, to: path)
            return path
        }
        let before = try runCommand(binary, ["check-role", "--config", try config("app_ro = mode=read-only server_user=app_ro server_password=app_ro_pw")], timeout: 60)
        XCTAssertEqual(before.status, 1, "\(before)")
        XCTAssertTrue(before.stdout.contains("app: TEMPORARY"), "\(before)")

        let sql = try runCommand(binary, ["create-readonly-role", "ro_clean", "--database", "app", "--owner", "app_rw"], timeout: 30)
        assertSucceeded(sql, "create-readonly-role")
        let sqlFile = "\(dir)/ro_clean.sql"
        try (sql.stdout + "ALTER ROLE ro_clean PASSWORD 'ro_clean_pw';\nREVOKE TEMPORARY, CREATE ON DATABASE postgres FROM PUBLIC;\n")
            .write(toFile: sqlFile, atomically: true, encoding: .utf8)
        let applied = try runCommand("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.dir, "-p", String(cluster.port),
                                              "-U", "postgres", "-d", "app", "-f", sqlFile], timeout: 60)
        assertSucceeded(applied, "apply the generated SQL")
        let cleanConfig = try config("ro = mode=read-only server_user=ro_clean server_password=ro_clean_pw")
        let after = try runCommand(binary, ["check-role", "--config", cleanConfig], timeout: 60)
        XCTAssertEqual(after.status, 0, "\(after)")
        XCTAssertTrue(after.stdout.contains("can only read"), "\(after)")

        // A write privilege reached through role membership is still found.
        assertSucceeded(try runCommand("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.dir, "-p", String(cluster.port),
                                                "-U", "postgres", "-d", "app", "-c",
                                                "CREATE TABLE public.t(x int); CREATE ROLE writers NOLOGIN; GRANT INSERT ON public.t TO writers; GRANT writers TO ro_clean;"],
                                       timeout: 60), "grant through a group")
        let inherited = try runCommand(binary, ["check-role", "--config", cleanConfig], timeout: 60)
        XCTAssertEqual(inherited.status, 1, "\(inherited)")
        XCTAssertTrue(inherited.stdout.contains("public.t: INSERT"), "\(inherited)")
    }
}
