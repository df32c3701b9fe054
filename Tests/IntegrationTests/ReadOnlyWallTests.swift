import Foundation
import Glibc
import XCTest

/// Settings the client never sent — role and database defaults — and the tripwire behind the
/// gate (docs/READONLY.md, "What the server does with the bytes" and "The tripwire"). Each
/// attack is first shown to write against PostgreSQL alone (app_ro with
/// default_transaction_read_only=on), then shown to have no effect through Portcullis.
final class ReadOnlyWallTests: IntegrationTestCase {
    /// A database of its own, so role-in-database defaults touch no other test.
    private func prepare() throws -> Cluster {
        let cluster = try harness.cluster
        if try cluster.query("SELECT count(*) FROM pg_database WHERE datname = 'wall'") == "0" {
            _ = try cluster.query("CREATE DATABASE wall")
        }
        _ = try cluster.query("""
            CREATE TABLE IF NOT EXISTS wall_t(a int);
            TRUNCATE wall_t;
            GRANT ALL ON wall_t TO app_ro;
            """, dbname: "wall")
        return cluster
    }

    private func rows(_ cluster: Cluster) throws -> String {
        try cluster.query("SELECT count(*) FROM wall_t", dbname: "wall")
    }

    /// app_ro straight to PostgreSQL, read-only by default as the proxy makes its sessions.
    private func direct(_ cluster: Cluster) throws -> String {
        Endpoint(port: cluster.port, caFile: try harness.caFile, proxyPID: nil)
            .conninfo(user: "app_ro", dbname: "wall", extra: "options='-c default_transaction_read_only=on'")
    }

    private func proxy(_ cluster: Cluster, settings: [String] = [], logLevel: String = "info") throws -> ProxyProcess {
        var options = ProxyProcess.Options(upstream: cluster)
        options.extraDatabaseNames = ["wall"]
        options.extraSettings = settings
        options.logLevel = logLevel
        return try ProxyProcess(harness: try harness, options: options)
    }

    /// psql -c sends the whole text as one Query, as an attacking client would.
    private func psql(_ conninfo: String, _ sql: String) throws -> CommandResult {
        try runPsql(conninfo: conninfo, sql: sql, env: ["PGPASSWORD": "app_ro_pw"])
    }

    /// Under a role default `name = value` (in database wall), `attack` writes against
    /// PostgreSQL alone; through the proxy nothing is written. Returns the proxy's psql result.
    private func attackUnderRoleDefault(_ name: String, _ value: String, _ attack: String,
                                        afterwards: (Cluster, String) throws -> Void = { _, _ in }) throws -> CommandResult {
        try requireProxyTarget("compares PostgreSQL alone with the proxy itself")
        let cluster = try prepare()
        _ = try cluster.query("ALTER ROLE app_ro IN DATABASE wall SET \(name) = '\(value)'")
        defer { _ = try? cluster.query("ALTER ROLE app_ro IN DATABASE wall RESET \(name)") }

        let before = try rows(cluster)
        _ = try psql(try direct(cluster), attack)
        XCTAssertNotEqual(try rows(cluster), before, "the attack must write against PostgreSQL alone")

        let proxy = try proxy(cluster)
        defer { proxy.stop() }
        let written = try rows(cluster)
        let conninfo = proxy.endpoint.conninfo(user: "app_ro", dbname: "wall")
        let result = try psql(conninfo, attack)
        XCTAssertEqual(try rows(cluster), written, "nothing written through the proxy: \(result)")
        try afterwards(cluster, conninfo)
        return result
    }

    /// In SJIS, 0x81 0x5C is one character: the backslash after `Á` (UTF-8 C3 81) belongs to it
    /// for the server, while a UTF-8 reading sees `\'` inside an E'' string. Through the proxy
    /// the session starts in UTF8 whatever the role's default, so the server reads the text as
    /// the gate does: one string literal.
    func testRoleDefaultClientEncodingCannotHideAStatement() throws {
        let result = try attackUnderRoleDefault("client_encoding", "SJIS",
            "SELECT E'Á\\'; COMMIT; BEGIN READ WRITE; INSERT INTO wall_t VALUES (1); COMMIT; --'") { _, conninfo in
            XCTAssertEqual(try self.psql(conninfo, "SHOW client_encoding").stdout, "UTF8\n")
        }
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("COMMIT; BEGIN READ WRITE;"), "one literal: \(result)")
    }

    /// With standard_conforming_strings off, `\'` does not end a literal; libpg_query lexes it on.
    func testRoleDefaultStandardConformingStringsOffIsOverridden() throws {
        _ = try attackUnderRoleDefault("standard_conforming_strings", "off",
            "SELECT 'a\\' , ' ; COMMIT; BEGIN READ WRITE; INSERT INTO wall_t VALUES (2); COMMIT; SELECT 1 --'") { _, conninfo in
            XCTAssertEqual(try self.psql(conninfo, "SHOW standard_conforming_strings").stdout, "on\n")
        }
    }

    /// The wall broken on purpose: a view created behind the proxy's back (its catalog snapshot is
    /// an hour old) turns default_transaction_read_only off. PostgreSQL alone stays writable
    /// afterwards; through the proxy the session ends at the server's ParameterStatus.
    func testTripwireEndsASessionThatLeftReadOnlyMode() throws {
        try requireProxyTarget("the tripwire is the proxy's")
        let cluster = try prepare()
        let view = marker("wall_breach")
        let proxy = try proxy(cluster, settings: ["catalog_refresh_interval = 1h"], logLevel: "debug")
        defer { proxy.stop() }
        // The start-up snapshot must be taken before the view exists, or it would know the view.
        let loaded = poll(timeout: 20) {
            proxy.stderrText.split(separator: "\n").contains { $0.contains("catalog snapshot loaded") && $0.contains("database=wall") }
        }
        XCTAssertTrue(loaded, "the catalog snapshot of wall was loaded: \(proxy.stderrText)")
        _ = try cluster.query("""
            CREATE VIEW public.\(view) AS SELECT pg_catalog.set_config('default_transaction_read_only', 'off', false) AS x;
            GRANT SELECT ON public.\(view) TO app_ro;
            """, dbname: "wall")
        let afterwards = "INSERT INTO wall_t VALUES (3)"

        let directRun = try runCommand("psql", psqlFlags + ["-d", try direct(cluster), "-c", "SELECT x FROM \(view)", "-c", afterwards],
                                       environment: ["PGPASSWORD": "app_ro_pw"])
        assertSucceeded(directRun, "PostgreSQL alone leaves read-only mode")
        let written = try rows(cluster)

        let conninfo = proxy.endpoint.conninfo(user: "app_ro", dbname: "wall")
        let sentinel = try LibPQSession(conninfo: conninfo + " password=app_ro_pw")
        let result = try runCommand("psql", psqlFlags + ["-d", conninfo, "-c", "SELECT x FROM \(view)", "-c", afterwards],
                                    environment: ["PGPASSWORD": "app_ro_pw"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("left read-only mode"), "\(result)")
        XCTAssertTrue(result.stderr.contains("default_transaction_read_only = off"), "\(result)")
        XCTAssertEqual(try rows(cluster), written)

        // The extended protocol: the same view read through Parse/Bind/Execute ends the session too.
        let extended = try LibPQSession(conninfo: conninfo + " password=app_ro_pw")
        let outcomes = extended.run("SELECT x FROM \(view)", protocol: .extended)
        XCTAssertTrue(outcomes.contains { $0.sqlState == "25006" && ($0.message ?? "").contains("left read-only mode") }, "\(outcomes)")
        XCTAssertFalse(extended.isConnected, "the session ended")
        XCTAssertEqual(try rows(cluster), written)
        XCTAssertEqual(try sentinel.rows("SELECT 1"), [["1"]], "another session is untouched")
    }
}
