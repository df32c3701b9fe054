import Foundation
import Glibc
import XCTest

/// Read-only identities through the proxy, judged against PostgreSQL itself: where a
/// read-only transaction makes PostgreSQL refuse a statement, the client must see the same
/// messages, results and transaction behaviour from Portcullis (which refuses it before it
/// reaches the server) as from PostgreSQL with `default_transaction_read_only=on`.
final class ReadOnlyEnforcementTests: IntegrationTestCase {
    /// Objects the scripts use, created once as superuser in the `app` database.
    private func prepareObjects() throws {
        _ = try harness.cluster.query("""
            CREATE TABLE IF NOT EXISTS ro_gate(a int);
            TRUNCATE ro_gate;
            INSERT INTO ro_gate VALUES (1), (2), (3);
            GRANT SELECT ON ro_gate TO app_ro;
            """, dbname: "app")
    }

    /// app_ro directly on PostgreSQL, read-only by default as the proxy makes its sessions.
    private func directReadOnly() throws -> String {
        let h = try harness
        return Endpoint(port: h.cluster.port, caFile: h.caFile, proxyPID: nil)
            .conninfo(user: "app_ro", extra: "options='-c default_transaction_read_only=on'")
    }

    private func writeScript(_ sql: String, name: String) throws -> String {
        let dir = try harness.makeDir("ro-script")
        let path = "\(dir)/\(name).sql"
        try sql.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func runScript(_ sql: String, conninfo: String, name: String) throws -> CommandResult {
        try runScript(path: try writeScript(sql, name: name), conninfo: conninfo)
    }

    /// psql prints `psql:FILE:LINE: ERROR: ...`, so compared runs use the same file.
    private func runScript(path: String, conninfo: String) throws -> CommandResult {
        try runCommand("psql", ["-X", "-A", "-t", "-f", path, "-d", conninfo], environment: try endpoint.env(user: "app_ro"))
    }

    /// The hint is Portcullis's addition; everything else must match.
    private func withoutPortcullisHints(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("HINT:  Portcullis identity") }
            .joined(separator: "\n")
    }

    func testRefusalsLookAndBehaveLikePostgreSQLsOwn() throws {
        try prepareObjects()
        let scripts: [(String, String)] = [
            ("multi-statement", "select 1 as a; insert into ro_gate values (4); select 2 as b;\nselect count(*) from ro_gate;"),
            ("literal-with-semicolon", "select 'x;y' as s; delete from ro_gate where a = 1; select 'never';\nselect count(*) from ro_gate;"),
            ("transaction-block", """
                begin;
                select count(*) from ro_gate;
                insert into ro_gate values (5);
                select 1;
                commit;
                select count(*) from ro_gate;
                """),
            ("savepoint", """
                begin;
                savepoint s;
                update ro_gate set a = a + 1;
                rollback to savepoint s;
                select sum(a) from ro_gate;
                commit;
                """),
            ("ddl", "create table ro_gate_new(a int);\ndrop table ro_gate;\nalter table ro_gate add column b int;\nselect count(*) from ro_gate;"),
            ("cte-write", "with w as (delete from ro_gate returning a) select count(*) from w;\nselect count(*) from ro_gate;"),
            ("locking-select", "select * from ro_gate for update;\nselect * from ro_gate for share;\nselect count(*) from ro_gate;"),
            ("select-into", "select * into ro_gate_copy from ro_gate;\nselect 1;"),
            ("explain-analyze", "explain analyze insert into ro_gate values (9);\nselect count(*) from ro_gate;"),
            ("implicit-transaction", "select 1; begin; insert into ro_gate values (6); commit;\nselect count(*) from ro_gate;"),
        ]
        let proxy = try endpoint.conninfo(user: "app_ro")
        let direct = try directReadOnly()
        for (name, sql) in scripts {
            let path = try writeScript(sql, name: name)
            let viaProxy = try runScript(path: path, conninfo: proxy)
            let fromPostgreSQL = try runScript(path: path, conninfo: direct)
            XCTAssertEqual(viaProxy.stdout, fromPostgreSQL.stdout, "\(name): results differ")
            XCTAssertEqual(withoutPortcullisHints(viaProxy.stderr), fromPostgreSQL.stderr, "\(name): errors differ")
            XCTAssertTrue(fromPostgreSQL.stderr.contains("ERROR:"), "\(name): PostgreSQL refused nothing: \(fromPostgreSQL)")
            if Target.current == .proxy {
                XCTAssertTrue(viaProxy.stderr.contains("HINT:  Portcullis identity \"app_ro\" is read-only."), "\(name): \(viaProxy)")
            }
        }
        XCTAssertEqual(try harness.cluster.query("SELECT string_agg(a::text, ',' ORDER BY a) FROM ro_gate", dbname: "app"), "1,2,3")
    }

    /// What PostgreSQL's read-only mode lets through is refused, and the session stays usable
    /// and read-only afterwards.
    func testStatementsPostgreSQLWouldRunAreRefused() throws {
        try requireProxyTarget("PostgreSQL runs these in a read-only transaction")
        try prepareObjects()
        let conninfo = try endpoint.conninfo(user: "app_ro")
        let refused: [(String, String)] = [
            ("SET default_transaction_read_only = off", "SET default_transaction_read_only is not allowed"),
            ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "is not allowed for a read-only identity"),
            ("BEGIN READ WRITE", "is not allowed for a read-only identity"),
            ("RESET ALL", "is not allowed for a read-only identity"),
            ("SELECT set_config('default_transaction_read_only', 'off', false)", "is not allowed for a read-only identity"),
            ("SET ROLE postgres", "is not allowed for a read-only identity"),
            ("VACUUM ro_gate", "VACUUM is not allowed for a read-only identity"),
            ("LOCK TABLE ro_gate IN EXCLUSIVE MODE", "is not allowed for a read-only identity"),
            ("SELECT pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend() is not allowed"),
            ("SELECT lo_from_bytea(0, 'x')", "is not allowed for a read-only identity"),
            ("NOTIFY ro_gate_channel", "is not allowed for a read-only identity"),
            ("DO $$ BEGIN PERFORM 1; END $$", "is not allowed for a read-only identity"),
        ]
        for (sql, expected) in refused {
            let script = "\(sql);\nshow transaction_read_only;\nselect count(*) from ro_gate;"
            let result = try runScript(script, conninfo: conninfo, name: "refused")
            XCTAssertTrue(result.stderr.contains("ERROR:  ") && result.stderr.contains(expected), "\(sql): \(result)")
            XCTAssertTrue(result.stderr.contains("HINT:  Portcullis identity \"app_ro\" is read-only."), "\(sql): \(result)")
            XCTAssertEqual(result.stdout, "on\n3\n", "\(sql): the session must stay usable and read-only: \(result)")
        }
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM pg_largeobject_metadata", dbname: "app"), "0")
    }

    /// Extended protocol: a refused Parse fails at Parse; a Bind of it then fails as a Bind of
    /// any statement whose Parse failed (26000) — pgbench's prepared mode shows both.
    func testExtendedProtocolRefusesAtParse() throws {
        try requireProxyTarget("PostgreSQL refuses at Execute, Portcullis at Parse")
        try prepareObjects()
        let dir = try harness.makeDir("ro-ext")
        try "insert into ro_gate values (7);\n".write(toFile: "\(dir)/w.sql", atomically: true, encoding: .utf8)
        try "select count(*) from ro_gate;\n".write(toFile: "\(dir)/r.sql", atomically: true, encoding: .utf8)
        let conninfo = try endpoint.conninfo(user: "app_ro")
        let env = try endpoint.env(user: "app_ro")
        let extended = try runPgbench(conninfo: conninfo, arguments: ["-n", "-t", "1", "-M", "extended", "-f", "\(dir)/w.sql"], env: env)
        XCTAssertTrue(extended.stderr.contains("ERROR:  cannot execute INSERT in a read-only transaction"), "\(extended)")
        let prepared = try runPgbench(conninfo: conninfo, arguments: ["-n", "-t", "1", "-M", "prepared", "-f", "\(dir)/w.sql"], env: env)
        XCTAssertTrue(prepared.stderr.contains("cannot execute INSERT in a read-only transaction"), "\(prepared)")
        XCTAssertTrue(prepared.stderr.contains("prepared statement \"P_0\" does not exist"), "\(prepared)")
        for mode in ["simple", "extended", "prepared"] {
            let reads = try runPgbench(conninfo: conninfo, arguments: ["-n", "-t", "20", "-c", "2", "-M", mode, "-f", "\(dir)/r.sql"], env: env)
            assertSucceeded(reads, "pgbench -M \(mode) reads")
        }
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM ro_gate", dbname: "app"), "3")
    }

    /// libpq's large-object API uses fast-path FunctionCall messages: reads pass, writes are
    /// refused.
    func testFastPathLargeObjectReadsPassWritesAreRefused() throws {
        try requireProxyTarget("PostgreSQL lets lo_creat through in a read-only transaction")
        let oid = try harness.cluster.query("SELECT lo_from_bytea(0, 'large object body')", dbname: "app")
        defer { _ = try? harness.cluster.query("SELECT lo_unlink(\(oid))", dbname: "app") }
        _ = try harness.cluster.query("GRANT SELECT ON LARGE OBJECT \(oid) TO app_ro", dbname: "app")
        let dir = try harness.makeDir("ro-lo")
        let conninfo = try endpoint.conninfo(user: "app_ro")
        let exported = try runPsql(conninfo: conninfo, sql: "\\lo_export \(oid) \(dir)/out", env: try endpoint.env(user: "app_ro"))
        assertSucceeded(exported, "lo_export")
        XCTAssertEqual(try String(contentsOfFile: "\(dir)/out", encoding: .utf8), "large object body")

        try "new".write(toFile: "\(dir)/in", atomically: true, encoding: .utf8)
        let before = try harness.cluster.query("SELECT count(*) FROM pg_largeobject_metadata", dbname: "app")
        let imported = try runPsql(conninfo: conninfo, sql: "\\lo_import \(dir)/in", env: try endpoint.env(user: "app_ro"))
        XCTAssertNotEqual(imported.status, 0)
        XCTAssertTrue(imported.stderr.contains("cannot execute lo_creat() in a read-only transaction"), "\(imported)")
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM pg_largeobject_metadata", dbname: "app"), before)
    }

    /// pg_dump (plain and `-j 2 -Fd`, which uses exported snapshots and fast-path large-object
    /// reads) works through a read-only identity and dumps what it dumps directly.
    func testPgDumpThroughReadOnlyIdentityMatchesDirectDump() throws {
        _ = try harness.cluster.query("""
            CREATE SCHEMA IF NOT EXISTS dumped;
            CREATE TABLE IF NOT EXISTS dumped.items(id serial PRIMARY KEY, name text DEFAULT 'x');
            INSERT INTO dumped.items(name) SELECT 'item ' || g FROM generate_series(1, 50) g WHERE NOT EXISTS (SELECT FROM dumped.items);
            CREATE OR REPLACE VIEW dumped.item_names AS SELECT name FROM dumped.items;
            CREATE OR REPLACE FUNCTION dumped.double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
            COMMENT ON TABLE dumped.items IS 'dumped through the proxy';
            GRANT USAGE ON SCHEMA dumped TO app_ro;
            GRANT SELECT ON ALL TABLES IN SCHEMA dumped TO app_ro;
            GRANT SELECT ON ALL SEQUENCES IN SCHEMA dumped TO app_ro;
            """, dbname: "app")
        let dir = try harness.makeDir("ro-dump")
        let env = try endpoint.env(user: "app_ro")
        let proxy = try endpoint.conninfo(user: "app_ro")
        let direct = try directReadOnly()
        let viaProxy = try runCommand("pg_dump", ["-n", "dumped", "--restrict-key=portcullis", "-f", "\(dir)/proxy.sql", proxy], environment: env)
        assertSucceeded(viaProxy, "pg_dump through the proxy")
        let fromPostgreSQL = try runCommand("pg_dump", ["-n", "dumped", "--restrict-key=portcullis", "-f", "\(dir)/direct.sql", direct], environment: env)
        assertSucceeded(fromPostgreSQL, "pg_dump directly")
        let proxyDump = try String(contentsOfFile: "\(dir)/proxy.sql", encoding: .utf8)
        XCTAssertEqual(proxyDump, try String(contentsOfFile: "\(dir)/direct.sql", encoding: .utf8))
        XCTAssertTrue(proxyDump.contains("item 50"), "data is in the dump")

        let parallel = try runCommand("pg_dump", ["-n", "dumped", "-j", "2", "-Fd", "-f", "\(dir)/parallel", proxy], environment: env)
        assertSucceeded(parallel, "pg_dump -j 2 -Fd through the proxy")
        let listing = try runCommand("pg_restore", ["-l", "\(dir)/parallel"])
        assertSucceeded(listing, "pg_restore -l")
        XCTAssertTrue(listing.stdout.contains("TABLE DATA dumped items"), "\(listing)")
    }

    /// Writes hide behind names: a view whose definition calls a function with effects is
    /// refused once the catalog snapshot knows it (SIGHUP refreshes it at once); a plain
    /// view stays readable.
    func testViewsThatRunUnsafeFunctionsAreRefused() throws {
        try requireProxyTarget("PostgreSQL runs the view")
        _ = try harness.cluster.query("""
            CREATE OR REPLACE FUNCTION public.ro_side_effect() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
            CREATE OR REPLACE VIEW public.ro_view_side AS SELECT public.ro_side_effect() AS x;
            CREATE OR REPLACE VIEW public.ro_view_on_view AS SELECT x FROM public.ro_view_side;
            CREATE OR REPLACE VIEW public.ro_view_plain AS SELECT 1 AS x;
            GRANT SELECT ON public.ro_view_side, public.ro_view_on_view, public.ro_view_plain TO app_ro;
            """, dbname: "app")
        let endpoint = try endpoint
        kill(endpoint.proxyPID!, SIGHUP)
        let conninfo = endpoint.conninfo(user: "app_ro")
        let env = endpoint.env(user: "app_ro")
        let refused = try poll(timeout: 20, every: 0.2) {
            try runPsql(conninfo: conninfo, sql: "SELECT x FROM ro_view_side", env: env).stderr
                .contains("reading view \"public.ro_view_side\" is not allowed for a read-only identity")
        }
        let last = try runPsql(conninfo: conninfo, sql: "SELECT x FROM ro_view_side", env: env)
        XCTAssertTrue(refused, "\(last)")
        let nested = try runPsql(conninfo: conninfo, sql: "SELECT x FROM public.ro_view_on_view", env: env)
        XCTAssertTrue(nested.stderr.contains("ERROR:  reading view \"public.ro_view_on_view\" is not allowed"), "\(nested)")
        XCTAssertTrue(nested.stderr.contains("HINT:  Portcullis identity \"app_ro\" is read-only."), "\(nested)")
        let plain = try runPsql(conninfo: conninfo, sql: "SELECT x FROM ro_view_plain", env: env)
        assertSucceeded(plain, "a plain view")
        XCTAssertEqual(plain.stdout, "1\n")
    }

    /// DDL run through the proxy by a read-write identity refreshes the catalog snapshots when
    /// its transaction ends, without waiting for catalog_refresh_interval.
    func testDDLThroughTheProxyRefreshesTheCatalogSnapshot() throws {
        try requireProxyTarget("catalog snapshots are the proxy's")
        var options = ProxyProcess.Options(upstream: try harness.cluster)
        options.extraSettings = ["catalog_refresh_interval = 1h"]
        let proxy = try ProxyProcess(harness: try harness, options: options)
        defer { proxy.stop() }
        let endpoint = proxy.endpoint
        let view = marker("ddl_view")
        let ddl = try runPsql(conninfo: endpoint.conninfo(user: "app_rw"), sql: """
            BEGIN;
            CREATE OR REPLACE FUNCTION public.\(view)_f() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
            CREATE VIEW public.\(view) AS SELECT public.\(view)_f() AS x;
            GRANT SELECT ON public.\(view) TO app_ro;
            COMMIT;
            """, env: endpoint.env(user: "app_rw"))
        assertSucceeded(ddl, "DDL through the proxy")
        let conninfo = endpoint.conninfo(user: "app_ro")
        let env = endpoint.env(user: "app_ro")
        let refused = try poll(timeout: 10, every: 0.1) {
            try runPsql(conninfo: conninfo, sql: "SELECT x FROM \(view)", env: env).stderr
                .contains("reading view \"public.\(view)\" is not allowed for a read-only identity")
        }
        XCTAssertTrue(refused, "the view created through the proxy is known without waiting an hour")
    }

    /// Databases reached through the wildcard entry `*` get catalog snapshots too, learnt from
    /// the first read-only session that uses them.
    func testWildcardDatabasesGetCatalogChecks() throws {
        try requireProxyTarget("catalog snapshots are the proxy's")
        let h = try harness
        if try h.cluster.query("SELECT count(*) FROM pg_database WHERE datname = 'wild'") == "0" {
            _ = try h.cluster.query("CREATE DATABASE wild")
        }
        _ = try h.cluster.query("""
            CREATE OR REPLACE FUNCTION public.wild_f() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
            CREATE OR REPLACE VIEW public.wild_view AS SELECT public.wild_f() AS x;
            GRANT SELECT ON public.wild_view TO app_ro;
            """, dbname: "wild")
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraDatabases = ["* = \(ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir))"]
        options.extraSettings = ["catalog_refresh_interval = 1h"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let conninfo = proxy.endpoint.conninfo(user: "app_ro", dbname: "wild")
        let env = proxy.endpoint.env(user: "app_ro")
        // The first statement of the first session already waits for the snapshot (it is not
        // judged without one).
        let first = try runPsql(conninfo: conninfo, sql: "SELECT x FROM wild_view", env: env)
        XCTAssertTrue(first.stderr.contains("reading view \"public.wild_view\" is not allowed for a read-only identity"), "\(first)")
    }

    /// A catalog that could not be read refuses every statement of a read-only identity (it
    /// could hold anything); read-write identities are not judged and keep working.
    func testAnUnreadableCatalogRefusesReadOnlyStatements() throws {
        try requireProxyTarget("catalog snapshots are the proxy's")
        let h = try harness
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["service_user = app_ro", "service_password = not_the_password", "catalog_refresh_interval = 1h"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }
        let readOnly = try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_ro"), sql: "SELECT 1", env: proxy.endpoint.env(user: "app_ro"))
        XCTAssertTrue(readOnly.stderr.contains("statements are not allowed for a read-only identity until Portcullis has read this database's catalog: reading it failed"),
                      "\(readOnly)")
        XCTAssertFalse(readOnly.stderr.contains("not_the_password"))
        assertSucceeded(try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_rw"), sql: "SELECT 1", env: proxy.endpoint.env(user: "app_rw")),
                        "read-write")
    }

    /// Read-write identities are not judged: their statements reach the server unchanged.
    func testReadWriteIdentitiesAreNotRestricted() throws {
        try prepareObjects()
        let result = try runPsql(conninfo: try endpoint.conninfo(user: "app_rw"),
                                 sql: "CREATE TEMP TABLE rw_check(a int); INSERT INTO rw_check VALUES (1); SELECT count(*) FROM rw_check",
                                 env: try endpoint.env(user: "app_rw"))
        assertSucceeded(result, "read-write statements")
        XCTAssertTrue(result.stdout.hasSuffix("INSERT 0 1\n1\n"), "\(result)")
    }
}
