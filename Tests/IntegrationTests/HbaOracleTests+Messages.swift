import Foundation
import XCTest

/// Every method's failure as the client sees it must be PostgreSQL 15's own text and SQLSTATE
/// (auth.c auth_failed and ClientAuthentication), trust included: a trust line whose
/// clientcert=verify-full check fails, and a trust line for a role that does not exist.
extension HbaOracleTests {
    static let messageRules = """
        local     all  postgres              trust
        local     all  app_ro                password
        local     all  app_rw                peer
        hostssl   all  alice    127.0.0.1/32 trust  clientcert=verify-full
        hostssl   all  nosuch   127.0.0.1/32 trust
        hostssl   all  agent    127.0.0.1/32 cert
        hostssl   all  legacy   127.0.0.1/32 md5
        hostssl   all  app_ro   127.0.0.1/32 password
        hostssl   all  all      127.0.0.1/32 scram-sha-256
        hostssl   all  all      ::1/128      reject
        hostnossl all  app_ro   127.0.0.1/32 password
        hostnossl all  legacy   127.0.0.1/32 md5
        """

    func testEveryMethodFailsWithPostgreSQLsMessage() throws {
        try requireProxyTarget("compares the proxy with PostgreSQL")
        let h = try harness
        let oracle = try h.startExtraCluster(certName: "server")
        for cluster in [oracle, h.cluster] { _ = try cluster.query(Self.roles) }
        try Self.messageRules.write(toFile: "\(oracle.dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        XCTAssertEqual(try oracle.query("SELECT pg_reload_conf()"), "t")
        usleep(300_000)
        XCTAssertEqual(try oracle.query("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"), "0")
        func verifier(_ role: String) throws -> String {
            try oracle.query("SELECT rolpassword FROM pg_authid WHERE rolname = '\(role)'")
        }
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.clientTLS = "allow"
        let socketDir = try h.makeDir("messages-socket")
        options.extraSettings = ["hba_file = \(oracle.dir)/pg_hba.conf", "unix_socket_directories = \(socketDir)"]
        options.extraIdentities = try ["agent", "alice", "legacy"].map {
            "\($0) = mode=read-only password='\(try verifier($0))' server_user=app_ro server_password='app_ro_pw'"
        }
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        let attempts = [
            // trust + clientcert=verify-full: a certificate for someone else.
            Attempt(user: "alice", database: "app", address: "127.0.0.1", tls: true, certificate: "agent", password: "-"),
            Attempt(user: "alice", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "-"),
            Attempt(user: "alice", database: "app", address: "127.0.0.1", tls: true, certificate: "alice", password: "-"),
            // trust for a role that does not exist.
            Attempt(user: "nosuch", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "-"),
            Attempt(user: "agent", database: "app", address: "127.0.0.1", tls: true, certificate: "alice", password: "-"),
            Attempt(user: "agent", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "-"),
            Attempt(user: "legacy", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "wrong"),
            Attempt(user: "legacy", database: "app", address: "127.0.0.1", tls: false, certificate: nil, password: "wrong"),
            Attempt(user: "app_ro", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "wrong"),
            Attempt(user: "app_ro", database: "app", address: "127.0.0.1", tls: false, certificate: nil, password: "wrong"),
            // password on every transport, as PostgreSQL: plaintext TCP and TLS.
            Attempt(user: "app_ro", database: "app", address: "127.0.0.1", tls: false, certificate: nil, password: "app_ro_pw"),
            Attempt(user: "app_ro", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "app_ro_pw"),
            Attempt(user: "ghost", database: "app", address: "127.0.0.1", tls: true, certificate: nil, password: "wrong"),
            Attempt(user: "alice", database: "app", address: "::1", tls: true, certificate: "alice", password: "-"),
            Attempt(user: "alice", database: "app", address: "127.0.0.1", tls: false, certificate: nil, password: "-"),
        ]
        var disagreements: [String] = []
        var seen: Set<String> = []
        for attempt in attempts {
            let expected = try outcome(port: oracle.port, attempt)
            let actual = try outcome(port: proxy.port, attempt)
            seen.insert(expected)
            if expected != actual {
                disagreements.append("\(attempt)\n    PostgreSQL: \(expected)\n    Portcullis: \(actual)")
            }
        }
        // password over the Unix socket, as PostgreSQL; peer for a role that is not the
        // operating-system user running the test.
        func overSocket(_ dir: String, _ port: Int, user: String, password: String) throws -> String {
            let result = try runCommand("psql", ["-X", "-A", "-t", "-w", "-d", "host=\(dir) port=\(port) dbname=app user=\(user)", "-c", "SELECT 1"],
                                        environment: ["PGPASSWORD": password])
            if result.status == 0 { return "accepted" }
            let text = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.range(of: "failed: ").map { String(text[$0.upperBound...]) } ?? text
        }
        for (user, password) in [("app_ro", "app_ro_pw"), ("app_ro", "wrong"), ("app_rw", "app_rw_pw")] {
            let expected = try overSocket(oracle.dir, oracle.port, user: user, password: password)
            seen.insert(expected)
            let actual = try overSocket(socketDir, proxy.port, user: user, password: password)
            if expected != actual { disagreements.append("unix socket, \(user)/\(password)\n    PostgreSQL: \(expected)\n    Portcullis: \(actual)") }
        }
        print("failure messages:\n  " + seen.sorted().joined(separator: "\n  "))
        XCTAssertTrue(seen.contains { $0.contains("\"trust\" authentication failed for user \"alice\"") }, "\(seen)")
        XCTAssertTrue(seen.contains { $0.contains("role \"nosuch\" does not exist") }, "\(seen)")
        XCTAssertTrue(seen.contains("accepted"), "\(seen)")
        XCTAssertTrue(seen.contains { $0.contains("Peer authentication failed for user \"app_rw\"") }, "\(seen)")
        // The hostnossl password line is warned about with its file:line.
        XCTAssertTrue(proxy.stderrText.contains("\(oracle.dir)/pg_hba.conf:11: warning: authentication method \"password\""), proxy.stderrText)
        let check = try runCommand(ProxyProcess.binaryPath(repoRoot: h.repoRoot), ["check-config", "--config", proxy.configPath])
        XCTAssertEqual(check.status, 0, "a warning is no error: \(check)")
        XCTAssertTrue(check.stderr.contains("\(oracle.dir)/pg_hba.conf:11: warning: authentication method \"password\" on a \"hostnossl\" line"), "\(check)")
        XCTAssertTrue(disagreements.isEmpty, "\(disagreements.count) of \(attempts.count + 3) differ:\n" + disagreements.joined(separator: "\n"))
    }
}
