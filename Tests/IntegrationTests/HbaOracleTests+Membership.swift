import Foundation
import XCTest

/// Every spelling PostgreSQL 15 turns into a role-membership check (hba.c check_db and
/// check_role: `samerole`, its old spelling `samegroup`, `+group`, `+group` inside an @file),
/// each as the only membership spelling of its file, so Portcullis must load membership for
/// each one alone. A quoted "+staff" is a plain name and must not be taken for a group.
extension HbaOracleTests {
    static let membershipVariants: [(name: String, hba: String)] = [
        ("samegroup", "host samegroup all all scram-sha-256\nhost all all all reject\n"),
        ("samerole", "host samerole all all scram-sha-256\nhost all all all reject\n"),
        ("+group", "host all +staff all scram-sha-256\nhost all all all reject\n"),
        ("@file with +group", "host all \"+staff\" all reject\nhost all @members.txt all scram-sha-256\nhost all all all reject\n"),
    ]

    func testMembershipSpellingsAsPostgreSQL() throws {
        try requireProxyTarget("compares the proxy with PostgreSQL")
        let h = try harness
        let oracle = try startOracle()
        try "+reports\n".write(toFile: "\(oracle.dir)/members.txt", atomically: true, encoding: .utf8)
        try "".write(toFile: "\(oracle.dir)/pg_ident.conf", atomically: true, encoding: .utf8)
        func verifier(_ role: String) throws -> String {
            try oracle.query("SELECT rolpassword FROM pg_authid WHERE rolname = '\(role)'")
        }
        let identities = try ["agent", "alice", "legacy"].map {
            "\($0) = mode=read-only password='\(try verifier($0))' server_user=app_ro server_password='app_ro_pw'"
        }
        let passwords = ["agent": "agent_pw", "alice": "alice_pw", "legacy": "legacy_pw"]
        var compared = 0, accepted = 0
        var disagreements: [String] = []
        for variant in Self.membershipVariants {
            // The first line keeps the superuser's own queries working.
            try ("local all postgres trust\n" + variant.hba).write(toFile: "\(oracle.dir)/pg_hba.conf", atomically: true, encoding: .utf8)
            XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")
            XCTAssertEqual(try oracle.query("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"), "0", variant.name)

            let upstream = ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir)
            var options = ProxyProcess.Options(upstream: h.cluster)
            options.clientTLS = "allow"
            options.extraSettings = ["hba_file = \(oracle.dir)/pg_hba.conf", "service_user = app_ro", "service_password = app_ro_pw"]
            options.extraDatabases = ["reports = \(upstream) dbname=reports"]
            options.extraIdentities = identities
            let proxy = try ProxyProcess(harness: h, options: options)
            defer { proxy.stop() }
            for user in ["agent", "alice", "legacy"] {
                for database in ["app", "reports"] {
                    for address in ["127.0.0.1", "::1"] {
                        for password in [passwords[user]!, "wrong"] {
                            let attempt = Attempt(user: user, database: database, address: address, tls: true,
                                                  certificate: nil, password: password)
                            let expected = try outcome(port: oracle.port, attempt)
                            let actual = try outcome(port: proxy.port, attempt)
                            compared += 1
                            if expected == "accepted" { accepted += 1 }
                            if expected != actual {
                                disagreements.append("[\(variant.name)] \(attempt)\n    PostgreSQL: \(expected)\n    Portcullis: \(actual)")
                            }
                        }
                    }
                }
            }
        }
        print("membership spellings: \(compared) logins compared with PostgreSQL 15, \(accepted) accepted by it")
        XCTAssertEqual(compared, 96)
        // Every variant lets alice in somewhere only through membership: 4 variants × 2 addresses.
        XCTAssertGreaterThanOrEqual(accepted, 8, "membership must admit someone in every variant")
        XCTAssertTrue(disagreements.isEmpty, "\(disagreements.count) of \(compared) differ:\n" + disagreements.joined(separator: "\n"))
    }
}
