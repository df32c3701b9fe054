import Foundation
import XCTest

/// Found in review (2026-12-07): PostgreSQL reads the field selection `(x).f`, and `t.f` when
/// relation t has no column f, as the call `f(x)` (parse_func.c ParseFuncOrColumn), for any
/// function callable with that one argument, built-ins included. The gate judged built-ins only
/// where they are spelt as calls, so a read-only identity could create large objects, run any
/// SQL text through `ts_stat(text)` (leave read-only mode, write), and terminate other
/// sessions. Each attack is first shown to have its effect against PostgreSQL alone (app_ro,
/// default_transaction_read_only=on), then shown to be refused through Portcullis, in the
/// simple and the extended protocol, judged by the effect.
final class AttributeNotationAttackTests: IntegrationTestCase {
    static let database = "attrnote"

    /// Columns named like built-in functions that are read-safe (or unreachable from SQL).
    static let setupSQL = """
        CREATE TABLE people (name text, length integer, system text);
        INSERT INTO people VALUES ('ann', 3, 'x');
        GRANT SELECT ON people TO app_ro;
        """

    static let attacks: [(sql: String, why: String)] = [
        ("SELECT (0::oid).lo_create", "lo_create(0) creates a large object, which PostgreSQL 15 allows in a read-only transaction"),
        ("SELECT (-1).lo_creat", "lo_creat(-1) likewise"),
        ("SELECT ($$SELECT to_tsvector(lo_from_bytea(0, 'via ts_stat')::text)$$::text).ts_stat",
         "ts_stat(text) runs the SQL text it is given: lo_from_bytea creates a large object"),
    ]

    /// ts_stat runs set_config inside: the session leaves read-only mode for good.
    static let escape = "SELECT ($$SELECT to_tsvector(set_config('default_transaction_read_only', 'off', false))$$::text).ts_stat"

    private var cluster: Cluster { get throws { try harness.cluster } }

    private var database: AttackDatabase { get throws { AttackDatabase(cluster: try cluster, name: Self.database) } }

    /// Large objects app_ro owns in the attack database.
    private func largeObjects(_ owner: LibPQSession) throws -> Int {
        Int(try owner.rows("SELECT count(*) FROM pg_largeobject_metadata WHERE lomowner = 'app_ro'::regrole").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    private func directReadOnly() throws -> LibPQSession {
        let direct = Endpoint(port: try cluster.port, caFile: try harness.caFile, proxyPID: nil)
        return try LibPQSession(conninfo: direct.conninfo(user: "app_ro", dbname: Self.database,
                                                          extra: "password=app_ro_pw options='-c default_transaction_read_only=on'"))
    }

    private func startProxy() throws -> (ProxyProcess, () throws -> LibPQSession) {
        var options = ProxyProcess.Options(upstream: try cluster)
        options.extraDatabaseNames = [Self.database]
        let proxy = try ProxyProcess(harness: try harness, options: options)
        return (proxy, { try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: Self.database,
                                                                            extra: "password=app_ro_pw")) })
    }

    func testBuiltInFunctionsCalledAsFieldsWriteAgainstPostgreSQLButNotThroughPortcullis() throws {
        try database.create(Self.setupSQL)
        let owner = try database.superuser()

        // 1. PostgreSQL alone: each attack writes although the session is read-only.
        for queryProtocol in QueryProtocol.allCases {
            for attack in Self.attacks {
                let session = try directReadOnly()
                let before = try largeObjects(owner)
                let outcome = session.run(attack.sql, protocol: queryProtocol)
                XCTAssertFalse(outcome.contains(where: \.isError), "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertGreaterThan(try largeObjects(owner), before,
                                     "[\(queryProtocol)] \(attack.sql) did not write against PostgreSQL alone (\(attack.why))")
            }
            let session = try directReadOnly()
            XCTAssertFalse(session.run(Self.escape, protocol: queryProtocol).contains(where: \.isError))
            XCTAssertEqual(session.run("SHOW default_transaction_read_only", protocol: .simple).last?.rows, [["off"]],
                           "[\(queryProtocol)] ts_stat did not leave read-only mode against PostgreSQL alone")
        }

        // 2. Through Portcullis: refused, no effect, the session still read-only.
        try requireProxyTarget("the proxy's refusal")
        let (proxy, readOnly) = try startProxy()
        defer { proxy.stop() }
        let before = try largeObjects(owner)
        for queryProtocol in QueryProtocol.allCases {
            for attack in Self.attacks + [(Self.escape, "set_config inside ts_stat")] {
                let session = try readOnly()
                let outcome = session.run(attack.sql, protocol: queryProtocol)
                XCTAssertEqual(outcome.first(where: \.isError)?.sqlState, "25006", "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertTrue(outcome.first(where: \.isError)?.message?.contains("attribute notation") == true,
                              "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertEqual(session.run("SHOW default_transaction_read_only", protocol: .simple).last?.rows, [["on"]])
            }
        }
        XCTAssertEqual(try largeObjects(owner), before, "a large object was written through Portcullis")

        // Field selections of ordinary rows keep working.
        XCTAssertEqual(try readOnly().run("SELECT p.name, p.length, p.system, (p).name FROM people p", protocol: .extended).last?.rows,
                       [["ann", "3", "x", "ann"]])
    }

    /// `(pid).pg_terminate_backend` ends another client's session (a role may signal its own
    /// backends).
    func testAReadOnlyClientCannotTerminateAnotherSessionByAttributeNotation() throws {
        try database.create(Self.setupSQL)
        // 1. PostgreSQL alone: the victim's session ends.
        let victim = try directReadOnly()
        let victimPID = try XCTUnwrap(try victim.rows("SELECT pg_backend_pid()").first?.first.flatMap { $0 })
        let attacker = try directReadOnly()
        XCTAssertEqual(attacker.run("SELECT (\(victimPID)).pg_terminate_backend", protocol: .simple).last?.rows, [["t"]])
        XCTAssertTrue(poll(timeout: 10) { victim.run("SELECT 1", protocol: .simple).contains(where: \.isError) },
                      "the victim's session did not end against PostgreSQL alone")

        // 2. Through Portcullis: refused; the victim's session goes on.
        try requireProxyTarget("the proxy's refusal")
        let (proxy, readOnly) = try startProxy()
        defer { proxy.stop() }
        let protectedVictim = try readOnly()
        let pid = try XCTUnwrap(try protectedVictim.rows("SELECT pg_backend_pid()").first?.first.flatMap { $0 })
        for queryProtocol in QueryProtocol.allCases {
            for sql in ["SELECT (\(pid)).pg_terminate_backend", "SELECT (\(pid)).pg_cancel_backend"] {
                let outcome = try readOnly().run(sql, protocol: queryProtocol)
                XCTAssertEqual(outcome.first(where: \.isError)?.sqlState, "25006", "[\(queryProtocol)] \(sql): \(outcome)")
            }
        }
        XCTAssertEqual(protectedVictim.run("SELECT 'alive'", protocol: .simple).last?.rows, [["alive"]])
    }
}
