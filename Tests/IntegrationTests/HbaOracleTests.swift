import Foundation
import XCTest

/// The same pg_hba.conf and pg_ident.conf loaded into a real PostgreSQL 15 and into Portcullis;
/// a matrix of connection attempts must get the same decision from both. PostgreSQL is the
/// oracle: nothing here states what the answer should be, only that the two agree.
final class HbaOracleTests: IntegrationTestCase {
    static let hba = """
        # Test rules: first match wins, as in PostgreSQL.
        local     all        all                      trust
        hostnossl app        all       all            reject
        hostssl   reports    samerole  127.0.0.1/32   scram-sha-256
        hostssl   reports    all       all            reject
        hostssl   all        +staff    ::1/128        scram-sha-256
        hostssl   app        agent     all            cert   map=agents
        hostssl   app        alice     127.0.0.1/32   scram-sha-256  clientcert=verify-full
        hostssl   postgres   alice     127.0.0.1/32   password
        hostssl   postgres   agent     ::1/128        cert  clientname=DN
        hostssl   all        legacy    samehost       md5
        hostssl   postgres   app_ro    127.0.0.1  255.255.255.255  scram-sha-256  clientcert=verify-ca
        hostssl   @dbs.txt   app_ro    samenet        scram-sha-256
        hostssl   "all"      all       all            scram-sha-256
        hostnossl postgres   "app_ro",legacy  ::1/128  scram-sha-256
        """
    static let ident = """
        # MAPNAME  SYSTEM-USERNAME  PG-USERNAME
        agents     agent            agent
        agents     alice            agent
        agents     /^(.*)-bot$      \\1
        """
    static let roles = """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agent') THEN
            CREATE ROLE agent LOGIN PASSWORD 'agent_pw';
            CREATE ROLE alice LOGIN PASSWORD 'alice_pw';
            SET password_encryption = 'md5';
            CREATE ROLE legacy LOGIN PASSWORD 'legacy_pw';
            RESET password_encryption;
            CREATE ROLE staff NOLOGIN;
            CREATE ROLE readers NOLOGIN IN ROLE staff;
            GRANT readers TO alice;
            CREATE ROLE reports NOLOGIN;
            GRANT reports TO alice;
          END IF;
        END $$;
        """

    struct Attempt: CustomStringConvertible {
        var user: String
        var database: String
        var address: String
        var tls: Bool
        var certificate: String?
        var password: String

        var description: String {
            "user=\(user) db=\(database) addr=\(address) \(tls ? "tls" : "plain") cert=\(certificate ?? "-") password=\(password)"
        }
    }

    /// accepted, or what the client was told.
    func outcome(port: Int, _ attempt: Attempt) throws -> String {
        let h = try harness
        var conninfo = "host=localhost hostaddr=\(attempt.address) port=\(port) dbname=\(attempt.database) user='\(attempt.user)' "
            + "sslmode=\(attempt.tls ? "verify-full" : "disable") sslrootcert=\(h.caFile) gssencmode=disable connect_timeout=10"
        if let certificate = attempt.certificate {
            conninfo += " sslcert=\(h.certDir)/\(certificate).crt sslkey=\(h.certDir)/\(certificate).key"
        }
        let result = try runCommand("psql", ["-X", "-A", "-t", "-w", "-d", conninfo, "-c", "SELECT 1"],
                                    environment: ["PGPASSWORD": attempt.password])
        if result.status == 0 { return "accepted" }
        let text = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let range = text.range(of: "failed: ") else { return text }
        return String(text[range.upperBound...])
    }

    /// A second PostgreSQL 15 (the oracle) beside the harness's, both with the test roles and
    /// the `reports` database.
    func startOracle() throws -> Cluster {
        let h = try harness
        let oracle = try h.startExtraCluster(certName: "server")
        for cluster in [oracle, h.cluster] {
            _ = try cluster.query(Self.roles)
            if try cluster.query("SELECT count(*) FROM pg_database WHERE datname = 'reports'") == "0" {
                _ = try cluster.query("CREATE DATABASE reports")
            }
        }
        return oracle
    }

    func testSameDecisionsAsPostgreSQL() throws {
        try requireProxyTarget("compares the proxy with PostgreSQL")
        let h = try harness
        let oracle = try startOracle()
        try Self.hba.write(toFile: "\(oracle.dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        try Self.ident.write(toFile: "\(oracle.dir)/pg_ident.conf", atomically: true, encoding: .utf8)
        try "app, postgres\n".write(toFile: "\(oracle.dir)/dbs.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")
        XCTAssertEqual(try oracle.query("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"), "0")

        func verifier(_ role: String) throws -> String {
            try oracle.query("SELECT rolpassword FROM pg_authid WHERE rolname = '\(role)'")
        }
        let upstream = ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.clientTLS = "allow"
        options.extraSettings = [
            "hba_file = \(oracle.dir)/pg_hba.conf",
            "ident_file = \(oracle.dir)/pg_ident.conf",
            "service_user = app_ro",
            "service_password = app_ro_pw",
        ]
        options.extraDatabases = ["reports = \(upstream) dbname=reports"]
        options.extraIdentities = try ["agent", "alice", "legacy"].map {
            "\($0) = mode=read-only password='\(try verifier($0))' server_user=app_ro server_password='app_ro_pw'"
        }
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        let passwords = ["agent": "agent_pw", "alice": "alice_pw", "legacy": "legacy_pw", "app_ro": "app_ro_pw", "bob": "bob_pw"]
        var attempts: [Attempt] = []
        for user in ["agent", "alice", "legacy", "app_ro", "bob"] {
            for database in ["app", "postgres", "reports"] {
                for address in ["127.0.0.1", "::1"] {
                    for password in [passwords[user]!, "wrong"] {
                        attempts.append(Attempt(user: user, database: database, address: address, tls: false, certificate: nil, password: password))
                        attempts.append(Attempt(user: user, database: database, address: address, tls: true, certificate: nil, password: password))
                    }
                    for certificate in ["agent", "alice", "rogue", "expired"] {
                        attempts.append(Attempt(user: user, database: database, address: address, tls: true,
                                                certificate: certificate, password: passwords[user]!))
                    }
                }
            }
        }
        var disagreements: [String] = []
        var accepted = 0
        var distinct: [String: Int] = [:]
        for attempt in attempts {
            let expected = try outcome(port: oracle.port, attempt)
            let actual = try outcome(port: proxy.port, attempt)
            if expected == "accepted" { accepted += 1 }
            distinct[expected.replacingOccurrences(of: #"\d+\.\d+\.\d+\.\d+|::1"#, with: "ADDR", options: .regularExpression)
                .replacingOccurrences(of: #"user \"[a-z_]+\""#, with: "user U", options: .regularExpression)
                .replacingOccurrences(of: #"database \"[a-z_]+\""#, with: "database D", options: .regularExpression), default: 0] += 1
            if expected != actual {
                disagreements.append("\(attempt)\n    PostgreSQL: \(expected)\n    Portcullis: \(actual)")
            }
        }
        // The matrix must reach every kind of decision: acceptance, no entry, reject lines,
        // password and certificate failures, TLS-level refusals.
        print("hba matrix outcomes:\n" + distinct.sorted { $0.key < $1.key }.map { "  \($0.value)× \($0.key)" }.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(distinct.count, 10, "\(distinct)")
        XCTAssertGreaterThan(accepted, 10, "the matrix must exercise accepted logins too")
        XCTAssertLessThan(accepted, attempts.count - 10, "and refused ones")
        XCTAssertTrue(disagreements.isEmpty, "\(disagreements.count) of \(attempts.count) attempts differ:\n" + disagreements.joined(separator: "\n"))
    }
}
