import Foundation
import XCTest

/// The gate matches names against the catalog as UTF-8. Two ways the server could read another
/// name from the same bytes, each first shown to write against PostgreSQL alone (a read-only
/// session, `default_transaction_read_only=on`), then shown to have no effect through
/// Portcullis. The effect is a row in `hits`, written on a loopback dblink connection by a view
/// the catalog snapshot flags (it calls a function that is not read-safe).
///
/// 1. `client_encoding=LATIN1` in a UTF8 database: the server converts from LATIN1 before it
///    parses (pg_client_to_server), so the bytes of `"évil"` in UTF-8 are the view `"Ã©vil"`.
/// 2. A LATIN1 database with a UTF8 client: the server truncates identifiers to 63 bytes of
///    LATIN1 (truncate_identifier), libpg_query to 63 bytes of UTF-8, so a 40-letter `é…`
///    name is whole for the server and cut short for the gate.
final class EncodingAttackTests: IntegrationTestCase {
    static let utf8Database = "encattack"
    static let latin1Database = "encattack_l1"

    static let latin1Name = String(repeating: "é", count: 40)

    private var cluster: Cluster { get throws { try harness.cluster } }

    private func superuser(_ database: String) throws -> LibPQSession {
        let cluster = try cluster
        return try LibPQSession(conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=\(database) user=postgres client_encoding=UTF8")
    }

    private func hits(_ database: String) throws -> Int {
        Int(try superuser(database).rows("SELECT count(*) FROM hits").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    private func createDatabases() throws {
        let admin = try superuser("postgres")
        for (database, encoding) in [(Self.utf8Database, "UTF8"), (Self.latin1Database, "LATIN1")] {
            _ = try admin.rows("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
            _ = try admin.rows("CREATE DATABASE \(database) TEMPLATE template0 ENCODING '\(encoding)' LC_COLLATE 'C' LC_CTYPE 'C'")
            _ = try superuser(database).rows(DblinkHit.setupSQL(database: database))
        }
        _ = try superuser(Self.utf8Database).rows("""
            CREATE VIEW "Ã©vil" AS SELECT public.hit('latin1 client') AS x;
            GRANT SELECT ON "Ã©vil" TO app_ro;
            """)
        _ = try superuser(Self.latin1Database).rows("""
            CREATE VIEW "\(Self.latin1Name)" AS SELECT public.hit('latin1 database') AS x;
            GRANT SELECT ON "\(Self.latin1Name)" TO app_ro;
            """)
    }

    private func direct(_ database: String, extra: String = "") throws -> LibPQSession {
        let endpoint = Endpoint(port: try cluster.port, caFile: try harness.caFile, proxyPID: nil)
        return try LibPQSession(conninfo: endpoint.conninfo(user: "app_ro", dbname: database,
                                                            extra: "password=app_ro_pw options='-c default_transaction_read_only=on' \(extra)"))
    }

    func testNamesReadInAnotherEncodingCannotReachUserCode() throws {
        try createDatabases()
        let latin1Client = "SELECT * FROM \"évil\""  // UTF-8 bytes C3 A9: "Ã©" in LATIN1
        let longName = "SELECT * FROM \"\(Self.latin1Name)\""

        // 1. PostgreSQL alone: both write although the sessions are read-only.
        var before = try hits(Self.utf8Database)
        XCTAssertFalse(try direct(Self.utf8Database, extra: "client_encoding=LATIN1").run(latin1Client, protocol: .simple)
                        .contains(where: \.isError))
        XCTAssertGreaterThan(try hits(Self.utf8Database), before, "LATIN1 bytes did not reach the view against PostgreSQL alone")
        before = try hits(Self.latin1Database)
        XCTAssertFalse(try direct(Self.latin1Database, extra: "client_encoding=UTF8").run(longName, protocol: .simple)
                        .contains(where: \.isError))
        XCTAssertGreaterThan(try hits(Self.latin1Database), before, "the 40-letter name did not reach the view against PostgreSQL alone")

        // 2. Through Portcullis: no effect.
        try requireProxyTarget("the proxy's refusal")
        var options = ProxyProcess.Options(upstream: try cluster)
        options.extraDatabaseNames = [Self.utf8Database, Self.latin1Database]
        let proxy = try ProxyProcess(harness: try harness, options: options)
        defer { proxy.stop() }
        let readOnly = { (database: String, extra: String) in
            try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: database, extra: "password=app_ro_pw \(extra)"))
        }
        // The snapshots are loaded at start-up: wait until both views are known.
        XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
            try readOnly(Self.utf8Database, "").run("SELECT * FROM \"Ã©vil\"", protocol: .simple).first?.sqlState == "25006"
                && readOnly(Self.latin1Database, "").run("SELECT * FROM \"ü\"", protocol: .simple).first?.sqlState == "25006"
        }, "the catalog snapshots were not loaded:\n\(proxy.stderrText.suffix(3000))")
        let utf8Before = try hits(Self.utf8Database), latin1Before = try hits(Self.latin1Database)

        // LATIN1 asked for at start-up, in options, or later: refused.
        for extra in ["client_encoding=LATIN1", "options='-c client_encoding=LATIN1'"] {
            XCTAssertThrowsError(try readOnly(Self.utf8Database, extra), extra) { error in
                XCTAssertTrue("\(error)".contains("permission denied to set parameter \"client_encoding\""), "\(error)")
            }
        }
        let session = try readOnly(Self.utf8Database, "")
        for change in ["SET client_encoding = 'LATIN1'", "SET NAMES 'LATIN1'", "SELECT set_config('client_encoding', 'LATIN1', false)"] {
            XCTAssertEqual(session.run(change, protocol: .simple).first?.sqlState, "25006", change)
        }
        XCTAssertEqual(session.run("SHOW client_encoding", protocol: .simple).last?.rows, [["UTF8"]])
        // The same bytes as UTF-8 name another relation, which does not exist.
        XCTAssertEqual(session.run(latin1Client, protocol: .simple).first?.sqlState, "42P01")

        // The LATIN1 database: a client that names no encoding reads in UTF8, and a non-ASCII
        // name is refused.
        let latin1 = try readOnly(Self.latin1Database, "")
        XCTAssertEqual(latin1.run("SHOW client_encoding", protocol: .simple).last?.rows, [["UTF8"]])
        for queryProtocol in QueryProtocol.allCases {
            let outcome = latin1.run(longName, protocol: queryProtocol)
            XCTAssertEqual(outcome.first?.sqlState, "25006", "[\(queryProtocol)] \(outcome)")
            XCTAssertTrue(outcome.first?.message?.contains("this database's encoding is LATIN1") == true, "\(outcome)")
        }
        XCTAssertFalse(latin1.run("SELECT count(*) FROM pg_class", protocol: .simple).contains(where: \.isError), "ASCII names still read")
        XCTAssertEqual(try hits(Self.utf8Database), utf8Before)
        XCTAssertEqual(try hits(Self.latin1Database), latin1Before)
    }
}
