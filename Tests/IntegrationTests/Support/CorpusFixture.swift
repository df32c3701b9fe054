import CPgQuery
import Foundation

/// The database the statement corpus (Tests/PolicyTests/Fixtures/*.sql) runs against: every
/// object the statements name, owned by `app_ro`, so that PostgreSQL's privilege checks would
/// let almost every attack through and only the proxy's read-only enforcement can stop it.
/// Built once as a template and cloned, so an attack that got through can be undone by
/// re-cloning. Lives in its own database; the `app` database other tests use is untouched.
struct CorpusFixture: Sendable {
    static let database = "corpus"
    static let template = "corpus_template"

    let cluster: Cluster

    /// Connection string for the superuser over the cluster's Unix socket (trust).
    func superuserConninfo(dbname: String = CorpusFixture.database) -> String {
        "host=\(cluster.dir) port=\(cluster.port) dbname=\(dbname) user=postgres"
    }

    /// Roles the corpus names (cluster-wide, so created only if missing), then the template.
    func createTemplate() throws {
        let admin = try LibPQSession(conninfo: superuserConninfo(dbname: "postgres"))
        for role in ["reader", "admin"] {
            _ = try admin.rows("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(role)') THEN CREATE ROLE \(role) NOLOGIN; END IF; END$$")
        }
        _ = try admin.rows("DROP DATABASE IF EXISTS \(CorpusFixture.database) WITH (FORCE)")
        _ = try admin.rows("DROP DATABASE IF EXISTS \(CorpusFixture.template) WITH (FORCE)")
        _ = try admin.rows("CREATE DATABASE \(CorpusFixture.template) OWNER app_ro")
        let template = try LibPQSession(conninfo: superuserConninfo(dbname: CorpusFixture.template))
        _ = try template.rows(CorpusFixture.objectsSQL)
    }

    /// Drops the working database (ending its sessions, pooled ones included) and clones the template.
    func recreateDatabase() throws {
        let admin = try LibPQSession(conninfo: superuserConninfo(dbname: "postgres"))
        _ = try admin.rows("DROP DATABASE IF EXISTS \(CorpusFixture.database) WITH (FORCE)")
        _ = try admin.rows("CREATE DATABASE \(CorpusFixture.database) TEMPLATE \(CorpusFixture.template) OWNER app_ro")
    }

    /// Superuser parts first (extensions, a foreign server), then everything else as app_ro so
    /// app_ro owns it. Tables have autovacuum off so the fingerprint's statistics stay put.
    static let objectsSQL = """
        CREATE EXTENSION dblink;
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres');
        ALTER SERVER s OWNER TO app_ro;
        CREATE USER MAPPING FOR app_ro SERVER s OPTIONS (user 'app_ro');
        SET ROLE app_ro;
        CREATE TABLE t (a int) WITH (autovacuum_enabled = false);
        INSERT INTO t VALUES (10), (20), (30);
        CREATE INDEX t_pkey ON t (a);
        CREATE TABLE u (a int) WITH (autovacuum_enabled = false);
        INSERT INTO u VALUES (20), (40);
        CREATE TABLE "T" (a int) WITH (autovacuum_enabled = false);
        CREATE TABLE canary (v text) WITH (autovacuum_enabled = false);
        CREATE SEQUENCE s;
        CREATE VIEW v AS SELECT a FROM t;
        CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t;
        CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
        CREATE PROCEDURE p() LANGUAGE sql AS $$INSERT INTO t VALUES (-1)$$;
        -- Functions that write, reachable from a plain SELECT. (Overloads and operators that
        -- shadow built-ins — public.lower(text), public.=, evil.+ — live in OverloadAttackTests'
        -- own database: the catalog snapshot refuses every `lower`, `=` and `+` where they exist,
        -- which would refuse this corpus' reads.)
        CREATE FUNCTION my_writer_function() RETURNS int LANGUAGE sql SECURITY DEFINER
          AS $$INSERT INTO t VALUES (-2) RETURNING a$$;
        CREATE FUNCTION my_writer(int) RETURNS boolean LANGUAGE sql SECURITY DEFINER
          AS $$INSERT INTO t VALUES (-3) RETURNING true$$;
        CREATE FUNCTION "NEXTVAL"(regclass) RETURNS bigint LANGUAGE sql AS $$SELECT nextval($1)$$;
        CREATE SCHEMA myschema;
        CREATE FUNCTION myschema.harmless() RETURNS int LANGUAGE sql AS $$SELECT 1$$;
        CREATE SCHEMA evil;
        SELECT lo_create(1234);
        SELECT lo_put(1234, 0, 'large object contents');
        RESET ROLE;
        """

    /// The statements of one corpus file: entries separated by lines `-- ----`.
    static func statements(file: String, repoRoot: String) throws -> [String] {
        let text = try String(contentsOfFile: "\(repoRoot)/Tests/PolicyTests/Fixtures/\(file)", encoding: .utf8)
        var entries: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "-- ----" {
                entries.append(current.joined(separator: "\n"))
                current = []
            } else {
                current.append(line)
            }
        }
        entries.append(current.joined(separator: "\n"))
        return entries.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Statements in the string by PostgreSQL's own scanner (libpg_query), which copes with
    /// syntax errors; the extended protocol's Parse takes exactly one.
    static func statementCount(_ sql: String) -> Int {
        let result = pg_query_split_with_scanner(sql)
        defer { pg_query_free_split_result(result) }
        guard result.error == nil else { return 1 }
        return Int(result.n_stmts)
    }
}
