import Foundation
import XCTest

/// pg_hba.conf and pg_ident.conf reload independently, as PostgreSQL's SIGHUP handler calls
/// load_hba() and load_ident() separately: a broken pg_ident.conf keeps the old maps without
/// blocking a good pg_hba.conf, and the other way round. The same files go to PostgreSQL 15
/// and to Portcullis; after each reload both must decide every attempt alike, and
/// `portcullis reload` must exit 2 naming the file that was not reloaded.
extension HbaOracleTests {
    func testAccessFilesReloadIndependentlyAsPostgreSQL() throws {
        try requireProxyTarget("compares the proxy with PostgreSQL")
        let h = try harness
        let oracle = try startOracle()
        let hbaPath = "\(oracle.dir)/pg_hba.conf", identPath = "\(oracle.dir)/pg_ident.conf"
        let local = "local all postgres trust\n"
        func write(hba: String, ident: String) throws {
            try (local + hba).write(toFile: hbaPath, atomically: true, encoding: .utf8)
            try ident.write(toFile: identPath, atomically: true, encoding: .utf8)
        }
        // Generation 1: certificates mapped through map m.
        try write(hba: "hostssl all all all cert map=m\n", ident: "m agent agent\n")
        XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")

        let pidFile = "\(try h.makeDir("independent-reload"))/proxy.pid"
        let upstream = ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["hba_file = \(hbaPath)", "ident_file = \(identPath)", "pid_file = \(pidFile)"]
        options.extraDatabases = ["reports = \(upstream) dbname=reports"]
        options.extraIdentities = ["agent = mode=read-only server_user=app_ro server_password='app_ro_pw'"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        var compared = 0
        func compare(_ stage: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: String] {
            var outcomes: [String: String] = [:]
            for user in ["agent", "app_ro"] {
                for database in ["app", "reports"] {
                    for certificate in ["agent", "alice"] {
                        let attempt = Attempt(user: user, database: database, address: "127.0.0.1", tls: true,
                                              certificate: certificate, password: "unused")
                        let expected = try outcome(port: oracle.port, attempt)
                        let actual = try outcome(port: proxy.port, attempt)
                        compared += 1
                        XCTAssertEqual(actual, expected, "[\(stage)] \(attempt)", file: file, line: line)
                        outcomes["\(user)/\(database)/\(certificate)"] = expected
                    }
                }
            }
            return outcomes
        }
        func reloadBoth() throws -> CommandResult {
            XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")
            let result = try runCommand(ProxyProcess.binaryPath(repoRoot: h.repoRoot),
                                        ["reload", "--config", proxy.configPath, "--timeout", "30"], timeout: 60)
            usleep(500_000)  // pg_reload_conf() only signals; the postmaster reloads right after.
            return result
        }

        let first = try compare("generation 1")
        XCTAssertEqual(first["agent/reports/agent"], "accepted")

        // Generation 2: pg_ident.conf broken, pg_hba.conf good (reports now rejected).
        try write(hba: "hostssl reports all all reject\nhostssl all all all cert map=m\n",
                  ident: "m agent agent\nm alice\n")
        let partialIdent = try reloadBoth()
        XCTAssertEqual(partialIdent.status, 2, "\(partialIdent)")
        XCTAssertTrue(partialIdent.stderr.contains("pg_ident.conf \"\(identPath)\" was not reloaded"), "\(partialIdent)")
        XCTAssertTrue(partialIdent.stderr.contains("\(identPath):2: missing entry at end of line"), "\(partialIdent)")
        let second = try compare("broken pg_ident.conf, good pg_hba.conf")
        XCTAssertTrue(second["agent/reports/agent"]?.contains("pg_hba.conf rejects connection") == true, "new pg_hba.conf in force")
        XCTAssertEqual(second["agent/app/agent"], "accepted", "old maps kept")

        // Generation 3: pg_hba.conf broken, pg_ident.conf good (alice's certificate may be agent).
        try write(hba: "hostssl all all all cert map=m\nhostssl all all all bogus-method\n",
                  ident: "m agent agent\nm alice agent\n")
        let partialHba = try reloadBoth()
        XCTAssertEqual(partialHba.status, 2, "\(partialHba)")
        XCTAssertTrue(partialHba.stderr.contains("\(hbaPath):3: invalid authentication method \"bogus-method\""), "\(partialHba)")
        XCTAssertFalse(partialHba.stderr.contains("pg_ident.conf \""), "pg_ident.conf reloaded: \(partialHba)")
        let third = try compare("broken pg_hba.conf, good pg_ident.conf")
        XCTAssertTrue(third["agent/reports/agent"]?.contains("pg_hba.conf rejects connection") == true, "old pg_hba.conf kept")
        XCTAssertEqual(third["agent/app/alice"], "accepted", "new maps in force")

        // Both good again: a plain success.
        try write(hba: "hostssl all all all cert map=m\n", ident: "m agent agent\n")
        let good = try reloadBoth()
        XCTAssertEqual(good.status, 0, "\(good)")
        _ = try compare("both good")
        XCTAssertEqual(compared, 32)
        print("independent reload: \(compared) logins compared with PostgreSQL 15 over 4 generations")

        // Start-up with a broken pg_ident.conf: PostgreSQL starts without maps (postmaster.c),
        // and so does Portcullis; every map= check then fails alike.
        try write(hba: "hostssl all all all cert map=m\n", ident: "m agent\n")
        let restart = try runCommand("runuser", ["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "restart",
                                                 "-D", oracle.dir, "-m", "fast", "-w", "-t", "60",
                                                 "-l", "\(oracle.dir)/log/postgresql.log"], timeout: 90)
        XCTAssertEqual(restart.status, 0, "PostgreSQL starts with a broken pg_ident.conf: \(restart)")
        proxy.stop()
        let restarted = try ProxyProcess(harness: h, options: options)
        defer { restarted.stop() }
        XCTAssertTrue(restarted.stderrText.contains("\(identPath):1: missing entry at end of line"), restarted.stderrText)
        let attempt = Attempt(user: "agent", database: "app", address: "127.0.0.1", tls: true, certificate: "agent", password: "unused")
        let expected = try outcome(port: oracle.port, attempt)
        XCTAssertTrue(expected.contains("certificate authentication failed for user \"agent\""), expected)
        XCTAssertEqual(try outcome(port: restarted.port, attempt), expected)
    }
}
