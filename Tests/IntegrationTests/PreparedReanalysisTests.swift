import Foundation
import XCTest

/// A prepared statement is judged again at each Bind (ReadOnlyGate, PreparedTexts). PostgreSQL
/// analyses a prepared statement again when its plan is invalidated (plancache.c
/// RevalidateCachedQuery: `DISCARD PLANS`, a search_path change, DDL on what it uses), and it
/// reads domain constraints at each executor start, so user code planted *after* the Parse runs
/// in the old statement (found in review: the gate judged the text once, at Parse). Each attack is
/// first shown to write against PostgreSQL alone (app_ro, default_transaction_read_only=on), then
/// shown to be refused through Portcullis, in session and in transaction pooling; judged by the
/// rows in `hits` (``DblinkHit``). SQL-level PREPARE and EXECUTE likewise: the PREPARE's text is
/// judged again wherever its name is executed.
final class PreparedReanalysisTests: IntegrationTestCase {
    static let database = "reanalysis"

    static let setupSQL = DblinkHit.setupSQL(database: database) + """
        CREATE TABLE t (a varchar, b integer);
        INSERT INTO t VALUES ('A', 1);
        CREATE DOMAIN dsafe AS integer CHECK (VALUE > 0);
        GRANT SELECT ON t TO app_ro;
        """

    private var cluster: Cluster { get throws { try harness.cluster } }

    private var database: AttackDatabase { get throws { AttackDatabase(cluster: try cluster, name: Self.database) } }

    private func superuser() throws -> LibPQSession { try database.superuser() }

    private func hits(_ session: LibPQSession) throws -> Int { try database.hits(session) }

    private func createDatabase() throws { try database.create(Self.setupSQL) }

    private func directReadOnly() throws -> LibPQSession {
        let direct = Endpoint(port: try cluster.port, caFile: try harness.caFile, proxyPID: nil)
        return try LibPQSession(conninfo: direct.conninfo(user: "app_ro", dbname: Self.database,
                                                          extra: "password=app_ro_pw options='-c default_transaction_read_only=on'"))
    }

    /// What is planted after the statement was prepared, the probe that shows the proxy's
    /// snapshot knows it, and how the attacker makes PostgreSQL analyse the statement again.
    struct Attack {
        let statement: String
        let plant: String
        let knownProbe: String
        let trigger: String?
        let undo: String
    }

    static let attacks = [
        // An overload that wins over the built-in lower(text) for a varchar argument, chosen
        // when DISCARD PLANS makes PostgreSQL parse the statement again.
        Attack(statement: "SELECT lower(a) FROM t",
               plant: "CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('lower(varchar)')::text $$",
               knownProbe: "SELECT lower('A'::varchar)", trigger: "DISCARD PLANS",
               undo: "DROP FUNCTION public.lower(varchar)"),
        // A domain constraint is read at each executor start: nothing needs to trigger it.
        Attack(statement: "SELECT '7'::dsafe",
               plant: "ALTER DOMAIN dsafe ADD CONSTRAINT evil CHECK (public.hit('domain check'))",
               knownProbe: "SELECT '8'::dsafe", trigger: nil,
               undo: "ALTER DOMAIN dsafe DROP CONSTRAINT evil"),
    ]

    func testCodePlantedAfterTheParseWritesAgainstPostgreSQLButNotThroughPortcullis() throws {
        try createDatabase()
        let owner = try superuser()

        // 1. PostgreSQL alone: the statement prepared before the plant runs the planted code.
        for attack in Self.attacks {
            let session = try directReadOnly()
            XCTAssertFalse(session.prepare("s1", attack.statement).contains(where: \.isError))
            XCTAssertFalse(session.execute(prepared: "s1", values: []).contains(where: \.isError))
            _ = try owner.rows(attack.plant)
            if let trigger = attack.trigger { _ = session.run(trigger, protocol: .simple) }
            let before = try hits(owner)
            let outcome = session.execute(prepared: "s1", values: [])
            XCTAssertFalse(outcome.contains(where: \.isError), "\(attack.statement): \(outcome)")
            XCTAssertGreaterThan(try hits(owner), before, "\(attack.statement) did not write against PostgreSQL alone")
            _ = try owner.rows(attack.undo)
        }
        // SQL-level PREPARE and EXECUTE, likewise.
        let sql = try directReadOnly()
        XCTAssertFalse(sql.run("PREPARE p2 AS SELECT lower(a) FROM t", protocol: .simple).contains(where: \.isError))
        _ = try owner.rows(Self.attacks[0].plant)
        _ = sql.run("DISCARD PLANS", protocol: .simple)
        let beforeSQL = try hits(owner)
        XCTAssertFalse(sql.run("EXECUTE p2", protocol: .simple).contains(where: \.isError))
        XCTAssertGreaterThan(try hits(owner), beforeSQL, "EXECUTE did not write against PostgreSQL alone")
        _ = try owner.rows(Self.attacks[0].undo)

        // 2. Through Portcullis, in session and in transaction pooling: refused at the Bind.
        try requireProxyTarget("the proxy's judgment at Bind")
        for poolMode in ["session", "transaction"] {
            var options = ProxyProcess.Options(upstream: try cluster)
            options.extraDatabaseNames = [Self.database]
            options.extraSettings = ["catalog_refresh_interval = 1s", "pool_mode = \(poolMode)"]
            let proxy = try ProxyProcess(harness: try harness, options: options)
            defer { proxy.stop() }
            let readOnly = { try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: Self.database,
                                                                                extra: "password=app_ro_pw")) }
            for attack in Self.attacks {
                let session = try readOnly()
                XCTAssertFalse(session.prepare("s1", attack.statement).contains(where: \.isError), "[\(poolMode)]")
                XCTAssertFalse(session.execute(prepared: "s1", values: []).contains(where: \.isError), "[\(poolMode)]")
                _ = try owner.rows(attack.plant)
                // Wait until the proxy's snapshot knows the planted code (a fresh statement is refused).
                XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
                    try readOnly().run(attack.knownProbe, protocol: .simple).first(where: \.isError)?.sqlState == "25006"
                }, "[\(poolMode)] the snapshot did not learn of: \(attack.plant)")
                if let trigger = attack.trigger {
                    XCTAssertFalse(session.run(trigger, protocol: .simple).contains(where: \.isError), "[\(poolMode)] \(trigger)")
                }
                let before = try hits(owner)
                let outcome = session.execute(prepared: "s1", values: [])
                XCTAssertEqual(outcome.first(where: \.isError)?.sqlState, "25006", "[\(poolMode)] \(attack.statement): \(outcome)")
                XCTAssertEqual(try hits(owner), before, "[\(poolMode)] \(attack.statement) wrote through Portcullis")
                // The session goes on, read-only; the statement runs again once the code is gone.
                XCTAssertEqual(session.run("SHOW transaction_read_only", protocol: .simple).last?.rows, [["on"]])
                _ = try owner.rows(attack.undo)
                XCTAssertTrue(poll(timeout: 20, every: 0.2) {
                    !session.execute(prepared: "s1", values: []).contains(where: \.isError)
                }, "[\(poolMode)] \(attack.statement) stays refused after the planted code is gone")
                XCTAssertEqual(try hits(owner), before)
            }
            // SQL-level PREPARE, then EXECUTE: the PREPARE's text is judged again at EXECUTE
            // (and at a protocol Bind of the same name: one namespace).
            let session = try readOnly()
            XCTAssertFalse(session.run("PREPARE p2 AS SELECT lower(a) FROM t", protocol: .simple).contains(where: \.isError))
            XCTAssertFalse(session.run("EXECUTE p2", protocol: .simple).contains(where: \.isError), "[\(poolMode)]")
            _ = try owner.rows(Self.attacks[0].plant)
            XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
                try readOnly().run(Self.attacks[0].knownProbe, protocol: .simple).first(where: \.isError)?.sqlState == "25006"
            })
            _ = session.run("DISCARD PLANS", protocol: .simple)
            let before = try hits(owner)
            for attempt in [session.run("EXECUTE p2", protocol: .simple), session.run("SELECT 1; EXECUTE p2", protocol: .simple),
                            session.run("EXPLAIN ANALYZE EXECUTE p2", protocol: .simple),
                            session.run("EXECUTE p2", protocol: .extended), session.execute(prepared: "p2", values: [])] {
                XCTAssertEqual(attempt.first(where: \.isError)?.sqlState, "25006", "[\(poolMode)] \(attempt)")
            }
            XCTAssertEqual(try hits(owner), before, "[\(poolMode)] EXECUTE wrote through Portcullis")
            _ = try owner.rows(Self.attacks[0].undo)
        }
    }

    /// A utility statement's portal runs its query at Execute, not at Bind (pquery.c
    /// PortalStart: only a plain SELECT starts its executor at Bind; COPY (query) even analyses
    /// its query then): a domain constraint planted between the Bind and the Execute runs. Such a
    /// portal is judged again at each Execute.
    func testAPortalBoundBeforeThePlantIsJudgedAgainAtExecute() throws {
        try createDatabase()
        let owner = try superuser()
        let plant = "ALTER DOMAIN dsafe ADD CONSTRAINT evil CHECK (public.hit('domain check'))"
        let undo = "ALTER DOMAIN dsafe DROP CONSTRAINT evil"
        let statements = ["COPY (SELECT '7'::dsafe) TO STDOUT", "EXPLAIN ANALYZE SELECT '7'::dsafe"]
        // Parse + Bind of a named portal in an open transaction, then (later) Execute.
        func bound(_ client: WireClient, _ sql: String) throws {
            XCTAssertTrue(client.socket.send(WireClient.query("BEGIN") + WireClient.parse(sql, name: "s1")
                + WireClient.frame("B", Array("p1".utf8) + [0] + Array("s1".utf8) + [0, 0, 0, 0, 0, 0, 0]) + WireClient.sync))
            let replies = try client.collect(readyForQuery: 2, timeout: 20)
            XCTAssertFalse(replies.contains { $0.type == UInt8(ascii: "E") }, "\(sql): \(replies.map { $0.fields })")
        }
        func executed(_ client: WireClient) throws -> [WireClient.Message] {
            XCTAssertTrue(client.socket.send(WireClient.frame("E", Array("p1".utf8) + [0, 0, 0, 0, 0]) + WireClient.sync))
            return try client.collect(readyForQuery: 1, timeout: 20)
        }

        // 1. PostgreSQL alone (app_ro in a read-only transaction): the planted check runs.
        let cluster = try cluster
        for sql in statements {
            let client = try WireClient(cluster: cluster, user: "app_ro", database: Self.database)
            _ = client.socket.send(WireClient.query("SET default_transaction_read_only = on"))
            _ = try client.collect(readyForQuery: 1, timeout: 20)
            try bound(client, sql)
            _ = try owner.rows(plant)
            let before = try hits(owner)
            let replies = try executed(client)
            XCTAssertFalse(replies.contains { $0.type == UInt8(ascii: "E") }, "\(sql): \(replies.map { $0.fields })")
            XCTAssertGreaterThan(try hits(owner), before, "\(sql) did not write against PostgreSQL alone")
            _ = try owner.rows(undo)
        }

        // 2. Through Portcullis: refused at the Execute.
        try requireProxyTarget("the proxy's judgment at Execute")
        let h = try harness
        let dir = try h.makeDir("reanalysis-hba")
        try "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: cluster)
        options.clientTLS = "allow"
        options.extraDatabaseNames = [Self.database]
        options.extraSettings = ["catalog_refresh_interval = 1s", "hba_file = \(dir)/pg_hba.conf"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let readOnly = { try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: Self.database, extra: "password=app_ro_pw")) }
        for sql in statements {
            let client = try WireClient(port: proxy.port, user: "app_ro", database: Self.database)
            try bound(client, sql)
            _ = try owner.rows(plant)
            XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
                try readOnly().run("SELECT '8'::dsafe", protocol: .simple).first(where: \.isError)?.sqlState == "25006"
            }, "the snapshot did not learn of the constraint")
            let before = try hits(owner)
            let replies = try executed(client)
            XCTAssertEqual(replies.first { $0.type == UInt8(ascii: "E") }?.fields["C"], "25006", "\(sql): \(replies.map { $0.fields })")
            XCTAssertEqual(try hits(owner), before, "\(sql) wrote through Portcullis")
            _ = try owner.rows(undo)
            XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
                try !readOnly().run("SELECT '8'::dsafe", protocol: .simple).contains(where: \.isError)
            }, "the snapshot did not learn the constraint is gone")
        }
    }
}
