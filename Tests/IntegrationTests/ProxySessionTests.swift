import Foundation
import Glibc
import XCTest

/// What a client must not be able to tell apart from PostgreSQL itself: real backend PIDs,
/// cancel keys that reach only their own backend, startup parameters that become the session's
/// defaults, pooled connections that look fresh, and a server restart seen as the server's error.
final class ProxySessionTests: IntegrationTestCase {
    private func proxy(_ settings: [String] = [], upstream: Cluster? = nil) throws -> ProxyProcess {
        let harness = try harness
        var options = ProxyProcess.Options(upstream: upstream ?? harness.cluster)
        options.extraSettings = settings
        return try ProxyProcess(harness: harness, options: options)
    }

    private func psql(_ endpoint: Endpoint, _ sql: String, extra: String = "", user: String = "app_rw") throws -> CommandResult {
        try runPsql(conninfo: endpoint.conninfo(user: user, extra: extra), sql: sql, env: endpoint.env(user: user))
    }

    /// BackendKeyData carries the real PID: pg_stat_activity and pg_terminate_backend agree with it.
    func testBackendPIDIsTheRealOneAndTerminateWorks() throws {
        try requireProxyTarget("checks the proxy forwards the real backend PID")
        let proxy = try proxy()
        let tag = marker("pid")
        let pid = try psql(proxy.endpoint, "SELECT pg_backend_pid()", extra: "application_name=\(tag)")
        assertSucceeded(pid, "pg_backend_pid")
        let direct = try harness.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) OR application_name = '\(tag)'")
        // The session has ended by now, so the PID is either gone or still reported under our name.
        XCTAssertLessThanOrEqual(Int(direct) ?? 99, 1)

        let killed = try psql(proxy.endpoint, "SELECT pg_terminate_backend(pg_backend_pid())")
        XCTAssertNotEqual(killed.status, 0)
        XCTAssertTrue(killed.stderr.contains("terminating connection due to administrator command"), "\(killed)")
        XCTAssertTrue(proxy.isAlive)
        assertSucceeded(try psql(proxy.endpoint, "SELECT 1"), "a new session after pg_terminate_backend")

        // The PID announced in BackendKeyData is the backend's own (pg_backend_pid() is computed
        // by the server, so only this comparison can tell a real PID from an invented one).
        let live = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw") + " password=app_rw_pw")
        let serverPID = try live.rows("SELECT pg_backend_pid()").first?.first ?? nil
        XCTAssertEqual(serverPID, String(live.announcedBackendPID))

        // While connected, the PID the client sees is the one PostgreSQL lists for the session.
        let both = try psql(proxy.endpoint, "SELECT pg_backend_pid() = (SELECT pid FROM pg_stat_activity WHERE application_name = '\(tag)-2')",
                            extra: "application_name=\(tag)-2")
        assertSucceeded(both, "pid lookup")
        XCTAssertEqual(both.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "t")
    }

    /// A CancelRequest for one session must not touch another session's query.
    func testCancelReachesOnlyItsOwnBackend() throws {
        let endpoint = try endpoint
        let a = marker("cancel_a"), b = marker("cancel_b")
        let clientA = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(), "-c", "SELECT pg_sleep(20) AS \(a)"],
                                            environment: endpoint.env(), workDir: try harness.makeDir("cancel-a"))
        let clientB = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(), "-c", "SELECT pg_sleep(20) AS \(b)"],
                                            environment: endpoint.env(), workDir: try harness.makeDir("cancel-b"))
        defer { clientA.signal(SIGKILL); clientB.signal(SIGKILL) }
        XCTAssertTrue(try poll(timeout: 20) { try backends(matching: a, state: "active") == 1 && backends(matching: b, state: "active") == 1 })
        clientA.signal(SIGINT)
        let resultA = try clientA.wait(timeout: 15)
        XCTAssertTrue(resultA.stderr.contains("canceling statement due to user request"), "\(resultA)")
        XCTAssertEqual(try backends(matching: b, state: "active"), 1, "the other session's query was disturbed")
        clientB.signal(SIGINT)
        _ = try clientB.wait(timeout: 15)
    }

    /// PQcancel returns when the server closes the cancel connection, which PostgreSQL does once
    /// the backend has been signalled (libpq waits for it "without this delay, we might issue
    /// another command only to find that our cancel zaps that command"). A cancel sent while
    /// nothing runs is then ignored, and the next query completes. The proxy used to close the
    /// client's cancel connection at once and forward later, so the cancel hit the next query
    /// (asyncpg's test_copy_records_to_table_generator_error, docs/TRANSACTION_POOLING.md).
    func testACancelIsDeliveredBeforeItsConnectionCloses() throws {
        let endpoint = try endpoint
        let session = try LibPQSession(conninfo: endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw"))
        let canceller = try XCTUnwrap(session.canceller())
        for round in 1...3 {
            XCTAssertEqual(session.run("SELECT 1", protocol: .simple).first?.isError, false)
            XCTAssertTrue(canceller.cancel(), "round \(round)")
            // Sent the moment PQcancel returns; a late cancel lands inside the sleep.
            let outcome = session.run("SELECT pg_sleep(0.3)", protocol: .simple)
            XCTAssertEqual(outcome.first?.isError, false, "round \(round): the cancel hit the next query: \(outcome)")
        }
    }

    /// Startup parameters go into the server's startup packet, so RESET returns to them.
    func testStartupParametersBecomeSessionDefaults() throws {
        let endpoint = try endpoint
        let sql = "SET search_path = pg_catalog; RESET search_path; SELECT current_setting('search_path') || '|' || current_setting('DateStyle') || '|' || current_setting('application_name')"
        let tag = marker("app")
        let result = try psql(endpoint, sql, extra: "options='-c search_path=portcullis_test,public -c DateStyle=SQL,DMY' application_name=\(tag)")
        assertSucceeded(result, "startup parameters")
        // PostgreSQL itself is the oracle: the same connection string straight to the server.
        let cluster = try harness.cluster
        let direct = try psql(Endpoint(port: cluster.port, caFile: try harness.caFile, proxyPID: nil), sql,
                              extra: "options='-c search_path=portcullis_test,public -c DateStyle=SQL,DMY' application_name=\(tag)")
        assertSucceeded(direct, "same parameters, direct")
        XCTAssertTrue(result.stdout.contains("portcullis_test,public|SQL, DMY|\(tag)"), "\(result)")
        XCTAssertEqual(result.stdout, direct.stdout)
    }

    /// server_reset = discard: a reused server connection must look like a fresh one.
    func testReusedServerConnectionLooksFresh() throws {
        try requireProxyTarget("pool reuse is a proxy feature")
        // One loop and one server connection, so the second client must get the first one's.
        let proxy = try proxy(["workers = 1", "server_reset = discard", "pool_max_size = 1"])
        let first = try psql(proxy.endpoint, """
            CREATE TEMP TABLE scratch(x int); PREPARE p AS SELECT 1; SET work_mem = '77MB'; LISTEN reused_channel;
            SELECT pg_advisory_lock(4242); SELECT pg_backend_pid();
            """)
        assertSucceeded(first, "dirty the session")
        let firstPID = first.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let second = try psql(proxy.endpoint, """
            SELECT pg_backend_pid() || '|' ||
              (SELECT count(*) FROM pg_prepared_statements) || '|' || current_setting('work_mem') || '|' ||
              (SELECT count(*) FROM pg_listening_channels()) || '|' ||
              (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) || '|' ||
              (SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't')
            """)
        assertSucceeded(second, "inspect the reused session")
        XCTAssertEqual(second.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(firstPID)|0|4MB|0|0|0",
                       "same backend, but nothing of the first client's session left")
    }

    /// server_reset = close (the default): a server connection never serves a second client.
    func testClosePolicyNeverReusesAServerSession() throws {
        try requireProxyTarget("pool policy is a proxy feature")
        let proxy = try proxy(["workers = 1"])
        let first = try psql(proxy.endpoint, "SELECT pg_backend_pid()")
        let second = try psql(proxy.endpoint, "SELECT pg_backend_pid()")
        assertSucceeded(first, "first"); assertSucceeded(second, "second")
        XCTAssertNotEqual(first.stdout, second.stdout)
    }

    /// PostgreSQL applies a role's settings (and checks its LOGIN) when a session starts; a warm
    /// spare started earlier. One older than pool_spare_max_age is replaced, so a change made
    /// while the pool is in use reaches new clients within that age and a sweep (1 s) (found in
    /// review: the spare's settings could be as old as the pool's longest session).
    func testARoleSettingChangedWhileThePoolIsInUseReachesNewClientsWithinTheSpareMaxAge() throws {
        try requireProxyTarget("warm spares are a proxy feature")
        let proxy = try proxy(["workers = 1", "pool_spare_max_age = 1s"])
        let holder = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw"))
        XCTAssertEqual(holder.run("SELECT 1", protocol: .simple).last?.rows, [["1"]])
        // The pool's spare opens beside the holder's session (at the loop's next sweep).
        let holderPID = try XCTUnwrap(holder.run("SELECT pg_backend_pid()", protocol: .simple).last?.rows.first?.first ?? nil)
        let spareOpen = try poll(timeout: 5, every: 0.1) {
            try harness.cluster.query("""
                SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_rw' AND pid <> \(holderPID)
                   AND backend_start >= (SELECT backend_start FROM pg_stat_activity WHERE pid = \(holderPID))
                """) == "1"
        }
        XCTAssertTrue(spareOpen, "no spare opened beside the holder")
        _ = try harness.cluster.query("ALTER ROLE app_rw IN DATABASE app SET work_mem = '7MB'")
        defer { _ = try? harness.cluster.query("ALTER ROLE app_rw IN DATABASE app RESET work_mem") }
        // The documented bound: the spare's age limit (1 s) and a sweep (1 s), and its
        // replacement's connect. The next client is the first to ask: no earlier client took
        // the old spare and made a new one open.
        Thread.sleep(forTimeInterval: 2.5)
        let client = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw"))
        XCTAssertEqual(client.run("SHOW work_mem", protocol: .simple).last?.rows, [["7MB"]],
                       "the first new client got a server session from before ALTER ROLE … SET, past pool_spare_max_age and a sweep")
        XCTAssertEqual(holder.run("SHOW work_mem", protocol: .simple).last?.rows, [["4MB"]], "a running session keeps its settings")
    }

    /// The upstream restarts: the connected client gets the server's own FATAL, new clients work.
    func testUpstreamRestartGivesACleanErrorAndRecovers() throws {
        try requireProxyTarget("restarts a dedicated upstream behind its own proxy")
        let upstream = try harness.startExtraCluster(certName: "upstream")
        let proxy = try proxy(upstream: upstream)
        let endpoint = proxy.endpoint
        let client = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo()], environment: endpoint.env(),
                                           workDir: try harness.makeDir("restart"), interactiveStdin: true)
        defer { client.signal(SIGKILL) }
        client.send("SELECT 'before';\n")
        XCTAssertTrue(poll(timeout: 20) { client.stdoutText().contains("before") })
        let restart = try runCommand("runuser", ["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "restart",
                                                 "-D", upstream.dir, "-m", "fast", "-w", "-l", "\(upstream.dir)/log/postgresql.log"],
                                     timeout: 60)
        XCTAssertEqual(restart.status, 0, "\(restart)")
        client.send("SELECT 'after';\n")
        client.closeStdin()
        let result = try client.wait(timeout: 30)
        XCTAssertTrue(result.stderr.contains("terminating connection due to administrator command") ||
                      result.stderr.contains("server closed the connection"), "\(result)")
        XCTAssertTrue(proxy.isAlive)
        let fresh = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 'works'", env: endpoint.env())
        assertSucceeded(fresh, "a new session after the restart")
    }

    /// Reload on SIGHUP: a broken file is refused and the old settings stay in force.
    func testReloadWithErrorsKeepsServing() throws {
        try requireProxyTarget("reload is a proxy feature")
        let proxy = try proxy()
        let good = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        try writePrivateConfig((good + "\nbogus_key = 1\n"), to: proxy.configPath)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 10) { proxy.stderrText.contains("contains errors") }, proxy.stderrText)
        XCTAssertTrue(proxy.stderrText.contains("bogus_key"), "the error names what is wrong")
        assertSucceeded(try psql(proxy.endpoint, "SELECT 1"), "still serving with the old settings")
        try writePrivateConfig(good.replacingOccurrences(of: "login_timeout = 60s", with: "login_timeout = 30s"), to: proxy.configPath)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 10) { proxy.stderrText.contains("reloading configuration files") })
        assertSucceeded(try psql(proxy.endpoint, "SELECT 1"), "serving after a good reload")
        XCTAssertTrue(proxy.isAlive)
    }

    /// SIGHUP reloads certificates: new clients see the new one, running sessions carry on.
    func testCertificateReloadKeepsRunningSessions() throws {
        try requireProxyTarget("certificate reload is a proxy feature")
        let proxy = try proxy()
        let endpoint = proxy.endpoint
        let client = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo()], environment: endpoint.env(),
                                           workDir: try harness.makeDir("reload-cert"), interactiveStdin: true)
        defer { client.signal(SIGKILL) }
        client.send("SELECT 'before';\n")
        XCTAssertTrue(poll(timeout: 20) { client.stdoutText().contains("before") })

        let config = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        try writePrivateConfig(config.replacingOccurrences(of: "/server.crt", with: "/wrong-host.crt")
            .replacingOccurrences(of: "/server.key", with: "/wrong-host.key"), to: proxy.configPath)
        kill(proxy.pid, SIGHUP)
        let refused = try poll(timeout: 10) {
            let r = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env(), timeout: 20)
            return r.status != 0 && r.stderr.contains("does not match host name")
        }
        XCTAssertTrue(refused, "new clients should get the reloaded (wrong-host) certificate")
        client.send("SELECT 'after';\n")
        XCTAssertTrue(poll(timeout: 10) { client.stdoutText().contains("after") }, "the running session was dropped")
        client.closeStdin()
        assertSucceeded(try client.wait(timeout: 10), "running session across the reload")
    }

    /// Secrets at rest: keygen, `secret encrypt`, an enc: server_password that works, and a
    /// key file others can read is refused.
    func testEncryptedServerPasswordWorksEndToEnd() throws {
        try requireProxyTarget("secret handling is a proxy feature")
        let harness = try harness
        let binary = ProxyProcess.binaryPath(repoRoot: harness.repoRoot)
        let dir = try harness.makeDir("secrets")
        let keyPath = "\(dir)/secret.key"
        assertSucceeded(try runCommand(binary, ["keygen", "--output", keyPath], timeout: 30), "keygen")
        var st = stat()
        XCTAssertEqual(stat(keyPath, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(st.st_size, 32)
        XCTAssertNotEqual(try runCommand(binary, ["keygen", "--output", keyPath], timeout: 30).status, 0, "never overwrites a key")
        let input = "\(dir)/plain.txt"
        try "app_rw_pw\n".write(toFile: input, atomically: true, encoding: .utf8)
        let encrypted = try runCommand(binary, ["secret", "encrypt", "--key", keyPath], stdinFile: input, timeout: 30)
        assertSucceeded(encrypted, "secret encrypt")
        let value = encrypted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(value.hasPrefix("enc:v1:"))

        // An identity whose upstream password exists only as the enc: value (the proxy never saw
        // it in plaintext), so a login proves the decryption.
        let role = marker("enc")
        _ = try harness.cluster.query("CREATE ROLE \(role) LOGIN PASSWORD 'app_rw_pw'")
        defer { _ = try? harness.cluster.query("DROP ROLE IF EXISTS \(role)") }
        let clientInput = "\(dir)/client.txt"
        try "client_side_pw\n".write(toFile: clientInput, atomically: true, encoding: .utf8)
        let verifier = try runCommand(binary, ["scram-verifier"], stdinFile: clientInput, timeout: 30)
        assertSucceeded(verifier, "scram-verifier")
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["secret_key_file = \(keyPath)"]
        options.extraIdentities = ["\(role) = mode=read-write password='\(verifier.stdout.trimmingCharacters(in: .whitespacesAndNewlines))' "
                                   + "server_user=\(role) server_password='\(value)'"]
        let proxy = try ProxyProcess(harness: harness, options: options)
        defer { proxy.stop() }
        let check = try runCommand(binary, ["check-config", "--config", proxy.configPath], timeout: 30)
        assertSucceeded(check, "check-config with an enc: value")
        XCTAssertFalse(check.stdout.contains("app_rw_pw") || check.stderr.contains("app_rw_pw"))
        let login = try runPsql(conninfo: proxy.endpoint.conninfo(user: role), sql: "SELECT current_user",
                                env: ["PGPASSWORD": "client_side_pw"])
        assertSucceeded(login, "login with the decrypted server password")
        XCTAssertEqual(login.stdout.trimmingCharacters(in: .whitespacesAndNewlines), role)
        XCTAssertFalse(proxy.stderrText.contains("app_rw_pw"), "a secret reached the log")

        chmod(keyPath, 0o644)
        let refused = try runCommand(binary, ["check-config", "--config", proxy.configPath], timeout: 30)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("group or world access"), "\(refused)")
    }

    /// A read-only identity's server session starts read-only, and the startup packet cannot
    /// change that (PGOPTIONS is libpq's `options`).
    func testReadOnlyIdentityCannotLeaveReadOnlyAtStartup() throws {
        try requireProxyTarget("read-only identities are a proxy feature")
        let endpoint = try endpoint
        let shown = try runPsql(conninfo: endpoint.conninfo(user: "app_ro"), sql: "SHOW default_transaction_read_only", env: endpoint.env(user: "app_ro"))
        assertSucceeded(shown, "read-only session")
        XCTAssertEqual(shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "on")
        var env = endpoint.env(user: "app_ro")
        env["PGOPTIONS"] = "-c default_transaction_read_only=off"
        let refused = try runPsql(conninfo: endpoint.conninfo(user: "app_ro"), sql: "SELECT 1", env: env)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("permission denied to set parameter \"default_transaction_read_only\""), "\(refused)")
    }

    /// check-config reports every error with file:line and exits non-zero.
    func testCheckConfigReportsLineNumbers() throws {
        try requireProxyTarget("exercises the portcullis binary")
        let dir = try harness.makeDir("check")
        let path = "\(dir)/bad.ini"
        try "[portcullis]\nlisten_port = 99999\nnot_a_key = 1\n[databases]\napp = host=127.0.0.1 sslmode=prefer\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runCommand(ProxyProcess.binaryPath(repoRoot: harness.repoRoot), ["check-config", "--config", path], timeout: 30)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("\(path):2:"), "\(result)")
        XCTAssertTrue(result.stderr.contains("\(path):3:"), "\(result)")
        XCTAssertTrue(result.stderr.contains("\(path):5:"), "\(result)")
    }
}
