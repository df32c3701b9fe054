import Foundation
import XCTest

/// Identity names that need quoting in portcullis.ini ("bob smith", a leading "#", "=" and a
/// double quote) are written "..." with "" for a quote and log in like the same roles on
/// PostgreSQL 15; the same names quoted in pg_hba.conf select their lines in both.
extension HbaOracleTests {
    func testQuotedIdentityNamesLogInAsOnPostgreSQL() throws {
        try requireProxyTarget("compares the proxy with PostgreSQL")
        let h = try harness
        let oracle = try h.startExtraCluster(certName: "server")
        let names = ["bob smith", "#ops=1", ";semi", "o\"brien"]
        for cluster in [oracle, h.cluster] {
            for name in names {
                let ident = "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                _ = try cluster.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(name)') THEN CREATE ROLE \(ident) LOGIN PASSWORD 'quoted_pw'; END IF; END $$")
            }
        }
        // pg_hba.conf quoting: "bob smith" may not use database postgres.
        try """
            local   all       postgres                  trust
            hostssl postgres  "bob smith"  127.0.0.1/32 reject
            hostssl all       all          127.0.0.1/32 scram-sha-256
            """.write(toFile: "\(oracle.dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")
        usleep(300_000)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["hba_file = \(oracle.dir)/pg_hba.conf"]
        options.extraIdentities = try names.map { name in
            let verifier = try oracle.query("SELECT rolpassword FROM pg_authid WHERE rolname = '\(name)'")
            return "\"\(name.replacingOccurrences(of: "\"", with: "\"\""))\" = mode=read-only password='\(verifier)' server_user=app_ro server_password='app_ro_pw'"
        }
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        var accepted = 0
        for name in names {
            for database in ["app", "postgres"] {
                for password in ["quoted_pw", "wrong"] {
                    let attempt = Attempt(user: name, database: database, address: "127.0.0.1", tls: true, certificate: nil, password: password)
                    let expected = try outcome(port: oracle.port, attempt)
                    XCTAssertEqual(try outcome(port: proxy.port, attempt), expected, "\(attempt)")
                    if expected == "accepted" { accepted += 1 }
                }
            }
        }
        XCTAssertEqual(accepted, 7, "every name logs in with its password, except bob smith on postgres")
    }
}
