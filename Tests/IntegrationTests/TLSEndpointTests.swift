import Foundation
import XCTest

/// Client-facing TLS and upstream verify-full.
final class TLSEndpointTests: IntegrationTestCase {
    /// psql with verify-full against the endpoint's name; the session's server leg is TLS too.
    func testVerifyFullSelectOneOverTLS() throws {
        let endpoint = try endpoint
        let result = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env())
        assertSucceeded(result, "SELECT 1")
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1")

        // Through the proxy this is PostgreSQL's view of the proxy's upstream connection.
        let ssl = try runPsql(conninfo: endpoint.conninfo(),
                              sql: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", env: endpoint.env())
        assertSucceeded(ssl, "pg_stat_ssl")
        XCTAssertEqual(ssl.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "t")
    }

    func testIPv6LoopbackAcceptsVerifyFull() throws {
        let endpoint = try endpoint
        // sslrootcert + verify-full against ::1 checks the IP SAN of the served certificate.
        let conninfo = endpoint.conninfo().replacingOccurrences(of: "host=localhost", with: "host=::1")
        let result = try runPsql(conninfo: conninfo, sql: "SELECT current_user", env: endpoint.env())
        assertSucceeded(result, "SELECT over ::1")
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "app_rw")
    }

    func testPlaintextClientIsRefused() throws {
        let endpoint = try endpoint
        let result = try runPsql(conninfo: endpoint.conninfo(sslmode: "disable"), sql: "SELECT 1", env: endpoint.env())
        XCTAssertNotEqual(result.status, 0, "a plaintext session must not be accepted: \(result)")
        XCTAssertFalse(result.stdout.contains("1"), "\(result)")
    }

    func testWrongPasswordIsRefused() throws {
        let endpoint = try endpoint
        let result = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: ["PGPASSWORD": "not-the-password"])
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("password authentication failed"), "\(result)")
    }

    func testReadOnlyRoleCanReadButNotWrite() throws {
        let endpoint = try endpoint
        let setup = try runPsql(conninfo: endpoint.conninfo(),
                                sql: "CREATE TABLE IF NOT EXISTS it_readonly (v int); TRUNCATE it_readonly; INSERT INTO it_readonly VALUES (42)",
                                env: endpoint.env())
        assertSucceeded(setup, "setup as app_rw")
        let read = try runPsql(conninfo: endpoint.conninfo(user: "app_ro"), sql: "SELECT v FROM it_readonly",
                               env: endpoint.env(user: "app_ro"))
        assertSucceeded(read, "SELECT as app_ro")
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "42")
        let write = try runPsql(conninfo: endpoint.conninfo(user: "app_ro"), sql: "INSERT INTO it_readonly VALUES (1)",
                                env: endpoint.env(user: "app_ro"))
        XCTAssertNotEqual(write.status, 0, "app_ro must not write: \(write)")
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM it_readonly", dbname: "app"), "1")
    }

    /// A proxy serving a certificate for another name must fail psql's verify-full.
    func testProxyWithWrongHostCertificateIsRefusedByVerifyFull() throws {
        try requireProxyTarget("the certificate PostgreSQL serves is fixed by the cluster; this checks the proxy's")
        let harness = try harness
        let proxy = try ProxyProcess(harness: harness, options: .init(upstream: harness.cluster, certName: "wrong-host"))
        defer { proxy.stop() }
        let result = try runPsql(conninfo: proxy.endpoint.conninfo(), sql: "SELECT 1", env: proxy.endpoint.env())
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("server certificate for \"wrong.example\" does not match host name \"localhost\""),
                      "\(result)")
        XCTAssertTrue(proxy.isAlive, "proxy died after a refused handshake")
    }

    /// Upstream verify-full: PostgreSQL presenting a certificate for another name must make the
    /// proxy refuse the session — and it must never retry without TLS.
    func testUpstreamWithWrongNameIsRefusedWithoutPlaintextFallback() throws {
        try requireProxyTarget("upstream certificate verification is done by the proxy")
        let harness = try harness
        let wrongUpstream = try harness.startExtraCluster(certName: "upstream-wrong-name")
        let proxy = try ProxyProcess(harness: harness, options: .init(upstream: wrongUpstream))
        defer { proxy.stop() }
        let result = try runPsql(conninfo: proxy.endpoint.conninfo(), sql: "SELECT 1", env: proxy.endpoint.env())
        XCTAssertNotEqual(result.status, 0, "session through an unverifiable upstream must fail: \(result)")
        XCTAssertFalse(result.stdout.contains("1"), "\(result)")
        XCTAssertFalse(result.stderr.isEmpty, "the client must be told why")
        // The client leg itself verified fine; the failure is the upstream leg's.
        XCTAssertFalse(result.stderr.contains("does not match host name \"localhost\""), "\(result)")
        let log = wrongUpstream.logText
        XCTAssertFalse(log.contains("connection authorized: user=app_rw"), "upstream session was established:\n\(log.suffix(3000))")
        XCTAssertFalse(log.contains("no encryption"), "proxy attempted a plaintext upstream connection:\n\(log.suffix(3000))")
        XCTAssertTrue(proxy.isAlive)
    }
}
