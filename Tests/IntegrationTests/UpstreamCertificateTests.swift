import Foundation
import XCTest

/// An identity's upstream role may authenticate with its own client certificate
/// (`server_sslcert`/`server_sslkey`) against a server whose pg_hba.conf says `cert`.
final class UpstreamCertificateTests: IntegrationTestCase {
    func testIdentityConnectsUpstreamWithItsOwnCertificate() throws {
        try requireProxyTarget("identities are the proxy's")
        let h = try harness
        let upstream = try h.startExtraCluster(certName: "upstream")
        _ = try upstream.query("CREATE ROLE agent LOGIN; GRANT CONNECT ON DATABASE app TO agent")
        let hba = try String(contentsOfFile: "\(upstream.dir)/pg_hba.conf", encoding: .utf8)
        try ("hostssl all agent 127.0.0.1/32 cert\n" + hba).write(toFile: "\(upstream.dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        XCTAssertEqual(try upstream.query("SELECT pg_reload_conf()"), "t")
        let verifier = try upstream.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_ro'")

        var options = ProxyProcess.Options(upstream: upstream)
        options.extraIdentities = [
            "agent_cert = mode=read-only password='\(verifier)' server_user=agent "
                + "server_sslcert=\(h.certDir)/agent.crt server_sslkey=\(h.certDir)/agent.key",
            "agent_nocert = mode=read-only password='\(verifier)' server_user=agent",
        ]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let env = ["PGPASSWORD": "app_ro_pw"]

        let withCertificate = try runPsql(conninfo: proxy.endpoint.conninfo(user: "agent_cert"),
                                          sql: "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", env: env)
        assertSucceeded(withCertificate, "upstream cert authentication")
        XCTAssertEqual(withCertificate.stdout, "agent|t\n")

        // The same upstream role without the certificate: PostgreSQL's own refusal comes back.
        // Right after the client above left, its pool still holds a warm spare logged in with
        // agent_cert's certificate (pool_min_idle = 1 by default): it must not serve this
        // identity (pools are keyed by the server credentials, UpstreamSpec.credentials).
        let without = try runPsql(conninfo: proxy.endpoint.conninfo(user: "agent_nocert"), sql: "SELECT 1", env: env)
        XCTAssertNotEqual(without.status, 0)
        XCTAssertTrue(without.stderr.contains("connection requires a valid client certificate"), "\(without)")
    }
}
