import Testing
@testable import Policy

/// Expected tag, pgAudit class and refusal text per statement kind.
@Suite struct DecisionTests {
    struct Case: CustomStringConvertible, Sendable {
        let sql: String
        let tag: String
        let auditClass: AuditClass
        /// nil = allowed.
        let refusal: String?
        var description: String { sql }
    }

    static let cases: [Case] = [
        Case(sql: "select 1", tag: "SELECT", auditClass: .read, refusal: nil),
        Case(sql: "insert into t values (1)", tag: "INSERT", auditClass: .write,
             refusal: "cannot execute INSERT in a read-only transaction"),
        Case(sql: "update t set a = 1", tag: "UPDATE", auditClass: .write,
             refusal: "cannot execute UPDATE in a read-only transaction"),
        Case(sql: "delete from t", tag: "DELETE", auditClass: .write,
             refusal: "cannot execute DELETE in a read-only transaction"),
        Case(sql: "merge into t using u on true when matched then delete", tag: "MERGE", auditClass: .write,
             refusal: "cannot execute MERGE in a read-only transaction"),
        Case(sql: "truncate t", tag: "TRUNCATE TABLE", auditClass: .write,
             refusal: "cannot execute TRUNCATE TABLE in a read-only transaction"),
        // "cannot execute ..." texts here were checked against PostgreSQL 15.1 in BEGIN READ ONLY.
        // A data-modifying WITH writes: WRITE (pgAudit: READ,SELECT; docs/AUDIT.md).
        Case(sql: "with x as (insert into t values (1) returning *) select * from x", tag: "SELECT",
             auditClass: .write, refusal: "cannot execute SELECT in a read-only transaction"),
        Case(sql: "select * from t for update", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute SELECT FOR UPDATE in a read-only transaction"),
        Case(sql: "select * from t for share", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute SELECT FOR SHARE in a read-only transaction"),
        Case(sql: "select * into t2 from t", tag: "SELECT INTO", auditClass: .ddl,
             refusal: "cannot execute SELECT INTO in a read-only transaction"),
        Case(sql: "create table q as select 1", tag: "CREATE TABLE AS", auditClass: .ddl,
             refusal: "cannot execute CREATE TABLE AS in a read-only transaction"),
        Case(sql: "select nextval('s')", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute nextval() in a read-only transaction"),
        Case(sql: "copy t from stdin", tag: "COPY", auditClass: .write,
             refusal: "cannot execute COPY FROM in a read-only transaction"),
        Case(sql: "copy t to stdout", tag: "COPY", auditClass: .read, refusal: nil),
        Case(sql: "copy t to '/tmp/x'", tag: "COPY", auditClass: .read,
             refusal: "COPY TO a file or program is not allowed for a read-only identity"),
        Case(sql: "create table z ()", tag: "CREATE TABLE", auditClass: .ddl,
             refusal: "cannot execute CREATE TABLE in a read-only transaction"),
        Case(sql: "drop materialized view m", tag: "DROP MATERIALIZED VIEW", auditClass: .ddl,
             refusal: "cannot execute DROP MATERIALIZED VIEW in a read-only transaction"),
        Case(sql: "alter table t add b int", tag: "ALTER TABLE", auditClass: .ddl,
             refusal: "cannot execute ALTER TABLE in a read-only transaction"),
        Case(sql: "refresh materialized view m", tag: "REFRESH MATERIALIZED VIEW", auditClass: .ddl,
             refusal: "cannot execute REFRESH MATERIALIZED VIEW in a read-only transaction"),
        Case(sql: "comment on table t is 'x'", tag: "COMMENT", auditClass: .ddl,
             refusal: "cannot execute COMMENT in a read-only transaction"),
        Case(sql: "grant select on t to public", tag: "GRANT", auditClass: .role,
             refusal: "cannot execute GRANT in a read-only transaction"),
        Case(sql: "create role r", tag: "CREATE ROLE", auditClass: .role,
             refusal: "cannot execute CREATE ROLE in a read-only transaction"),
        Case(sql: "create function f() returns int language sql as 'select 1'", tag: "CREATE FUNCTION",
             auditClass: .ddl, refusal: "cannot execute CREATE FUNCTION in a read-only transaction"),
        Case(sql: "explain analyze insert into t values (1)", tag: "EXPLAIN", auditClass: .write,
             refusal: "cannot execute INSERT in a read-only transaction"),
        // Planning the INSERT folds the table's column defaults (user code the text never names).
        Case(sql: "explain insert into t values (1)", tag: "EXPLAIN", auditClass: .read,
             refusal: "cannot execute INSERT in a read-only transaction"),
        Case(sql: "explain select * from t", tag: "EXPLAIN", auditClass: .read, refusal: nil),
        Case(sql: "prepare p as delete from t", tag: "PREPARE", auditClass: .write,
             refusal: "cannot execute DELETE in a read-only transaction"),
        Case(sql: "declare c cursor for select 1", tag: "DECLARE CURSOR", auditClass: .read, refusal: nil),
        Case(sql: "fetch 1 from c", tag: "FETCH", auditClass: .misc, refusal: nil),
        Case(sql: "vacuum t", tag: "VACUUM", auditClass: .misc,
             refusal: "VACUUM is not allowed for a read-only identity"),
        Case(sql: "analyze", tag: "ANALYZE", auditClass: .misc,
             refusal: "ANALYZE is not allowed for a read-only identity"),
        Case(sql: "lock table t in share mode", tag: "LOCK TABLE", auditClass: .misc,
             refusal: "LOCK TABLE in a mode stronger than ACCESS SHARE is not allowed for a read-only identity"),
        Case(sql: "lock table t in access share mode", tag: "LOCK TABLE", auditClass: .misc, refusal: nil),
        Case(sql: "do 'begin end'", tag: "DO", auditClass: .function,
             refusal: "DO is not allowed for a read-only identity"),
        Case(sql: "call p()", tag: "CALL", auditClass: .function,
             refusal: "CALL is not allowed for a read-only identity"),
        Case(sql: "set role admin", tag: "SET", auditClass: .miscSet,
             refusal: "SET role is not allowed for a read-only identity"),
        Case(sql: "set session authorization admin", tag: "SET", auditClass: .miscSet,
             refusal: "SET session_authorization is not allowed for a read-only identity"),
        Case(sql: "set search_path = public", tag: "SET", auditClass: .miscSet, refusal: nil),
        Case(sql: "set search_path = ''", tag: "SET", auditClass: .miscSet, refusal: nil),
        // A number is a schema name: schema "1" would come before pg_catalog.
        Case(sql: "set search_path = 1, pg_catalog", tag: "SET", auditClass: .miscSet,
             refusal: "SET search_path with pg_catalog after another schema is not allowed for a read-only identity"),
        Case(sql: "set search_path = 1.5, pg_catalog", tag: "SET", auditClass: .miscSet,
             refusal: "SET search_path with a value that is not a plain name is not allowed for a read-only identity"),
        Case(sql: "reset all", tag: "RESET", auditClass: .miscSet,
             refusal: "RESET ALL is not allowed for a read-only identity"),
        Case(sql: "set session characteristics as transaction read write", tag: "SET", auditClass: .miscSet,
             refusal: "SET SESSION CHARACTERISTICS READ WRITE is not allowed for a read-only identity"),
        Case(sql: "begin read write", tag: "BEGIN", auditClass: .misc,
             refusal: "BEGIN READ WRITE is not allowed for a read-only identity"),
        Case(sql: "start transaction read write", tag: "START TRANSACTION", auditClass: .misc,
             refusal: "START TRANSACTION READ WRITE is not allowed for a read-only identity"),
        Case(sql: "begin read only", tag: "BEGIN", auditClass: .misc, refusal: nil),
        Case(sql: "select pg_terminate_backend(1)", tag: "SELECT", auditClass: .read,
             refusal: "function pg_terminate_backend() is not allowed for a read-only identity"),
        Case(sql: "select set_config('role', 'x', false)", tag: "SELECT", auditClass: .read,
             refusal: "set_config('role') is not allowed for a read-only identity"),
        Case(sql: "select set_config('search_path', 'x', false)", tag: "SELECT", auditClass: .read, refusal: nil),
        Case(sql: "show search_path", tag: "SHOW", auditClass: .misc, refusal: nil),
        Case(sql: "checkpoint", tag: "CHECKPOINT", auditClass: .misc,
             refusal: "CHECKPOINT is not allowed for a read-only identity"),
        Case(sql: "create statistics s on a, b from t", tag: "CREATE STATISTICS", auditClass: .ddl,
             refusal: "cannot execute CREATE STATISTICS in a read-only transaction"),
        Case(sql: "select * from t for no key update", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute SELECT FOR NO KEY UPDATE in a read-only transaction"),
        Case(sql: "select * from t for key share", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute SELECT FOR KEY SHARE in a read-only transaction"),
        Case(sql: "with x as (select * from t for update) select * from x", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute SELECT FOR UPDATE in a read-only transaction"),
        Case(sql: "select setval('s', 1)", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute setval() in a read-only transaction"),
        Case(sql: "create index on t (a)", tag: "CREATE INDEX", auditClass: .ddl,
             refusal: "cannot execute CREATE INDEX in a read-only transaction"),
        Case(sql: "create view vv as select 1", tag: "CREATE VIEW", auditClass: .ddl,
             refusal: "cannot execute CREATE VIEW in a read-only transaction"),
        Case(sql: "grant r0 to postgres", tag: "GRANT ROLE", auditClass: .role,
             refusal: "cannot execute GRANT ROLE in a read-only transaction"),
        Case(sql: "security label on table t is 'x'", tag: "SECURITY LABEL", auditClass: .ddl,
             refusal: "cannot execute SECURITY LABEL in a read-only transaction"),
        Case(sql: "alter materialized view m rename to n", tag: "ALTER MATERIALIZED VIEW", auditClass: .ddl,
             refusal: "cannot execute ALTER MATERIALIZED VIEW in a read-only transaction"),
        // Tags and classes as pgAudit logs them (PgAuditAgreementTests compares with real pgAudit).
        Case(sql: "alter table t rename column a to b", tag: "ALTER TABLE", auditClass: .ddl,
             refusal: "cannot execute ALTER TABLE in a read-only transaction"),
        Case(sql: "alter table t rename constraint c to d", tag: "ALTER TABLE", auditClass: .ddl,
             refusal: "cannot execute ALTER TABLE in a read-only transaction"),
        Case(sql: "alter view v rename column a to b", tag: "ALTER VIEW", auditClass: .ddl,
             refusal: "cannot execute ALTER VIEW in a read-only transaction"),
        Case(sql: "alter role r rename to s", tag: "ALTER ROLE", auditClass: .role,
             refusal: "cannot execute ALTER ROLE in a read-only transaction"),
        Case(sql: "alter default privileges grant select on tables to r", tag: "ALTER DEFAULT PRIVILEGES", auditClass: .role,
             refusal: "cannot execute ALTER DEFAULT PRIVILEGES in a read-only transaction"),
        Case(sql: "cluster t using i", tag: "CLUSTER", auditClass: .ddl,
             refusal: "CLUSTER is not allowed for a read-only identity"),
        Case(sql: "alter system set work_mem = '4MB'", tag: "ALTER SYSTEM", auditClass: .ddl,
             refusal: "ALTER SYSTEM is not allowed for a read-only identity"),
        Case(sql: "deallocate all", tag: "DEALLOCATE ALL", auditClass: .misc, refusal: nil),
        Case(sql: "deallocate q", tag: "DEALLOCATE", auditClass: .misc, refusal: nil),
        Case(sql: "explain analyze select * from t for update", tag: "EXPLAIN", auditClass: .read,
             refusal: "cannot execute SELECT FOR UPDATE in a read-only transaction"),
        Case(sql: "copy (select nextval('s')) to stdout", tag: "COPY", auditClass: .read,
             refusal: "cannot execute nextval() in a read-only transaction"),
        // COPY of a data-modifying statement writes (pgAudit: WRITE,DELETE) and stays refused.
        Case(sql: "copy (delete from t returning *) to stdout", tag: "COPY", auditClass: .write,
             refusal: "cannot execute DELETE in a read-only transaction"),
        Case(sql: "copy (insert into t values (1) returning a) to stdout", tag: "COPY", auditClass: .write,
             refusal: "cannot execute INSERT in a read-only transaction"),
        Case(sql: "copy (update t set a = 1 returning a) to stdout", tag: "COPY", auditClass: .write,
             refusal: "cannot execute UPDATE in a read-only transaction"),
        // A data-modifying WITH writes: class WRITE (pgAudit: READ,SELECT), refusal as before.
        Case(sql: "with d as (delete from t returning *) select * from d", tag: "SELECT", auditClass: .write,
             refusal: "cannot execute SELECT in a read-only transaction"),
        Case(sql: "copy (with d as (delete from t returning *) select * from d) to stdout", tag: "COPY", auditClass: .write,
             refusal: "cannot execute SELECT in a read-only transaction"),
        Case(sql: "explain (analyze) with d as (delete from t returning *) select 1", tag: "EXPLAIN", auditClass: .write,
             refusal: "cannot execute SELECT in a read-only transaction"),
        Case(sql: "explain with d as (delete from t returning *) select 1", tag: "EXPLAIN", auditClass: .read,
             refusal: "cannot execute DELETE in a read-only transaction"),
        Case(sql: "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
             tag: "SELECT", auditClass: .read, refusal: nil),
        Case(sql: "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'default_transaction_read_only'",
             tag: "SELECT", auditClass: .read,
             refusal: "set_config('default_transaction_read_only') is not allowed for a read-only identity"),
        Case(sql: "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'work_mem' OR true",
             tag: "SELECT", auditClass: .read,
             refusal: "set_config() with a non-constant setting name is not allowed for a read-only identity"),
        Case(sql: "SET client_encoding = 'SJIS'", tag: "SET", auditClass: .miscSet,
             refusal: "client encoding \"SJIS\" is not allowed for a read-only identity"),
        Case(sql: "SET NAMES 'big5'", tag: "SET", auditClass: .miscSet,
             refusal: "client encoding \"big5\" is not allowed for a read-only identity"),
        Case(sql: "select set_config('client_encoding', 'GBK', false)", tag: "SELECT", auditClass: .read,
             refusal: "client encoding \"GBK\" is not allowed for a read-only identity"),
        Case(sql: "SET client_encoding = 'UTF8'", tag: "SET", auditClass: .miscSet, refusal: nil),
        // Attribute notation: `(x).f` and `t.f` call f(x) when no field f exists (found in review:
        // each of these ran against PostgreSQL 15 as a read-only role through the gate).
        Case(sql: "SELECT (0::oid).lo_create", tag: "SELECT", auditClass: .read,
             refusal: "function lo_create() (attribute notation .lo_create) is not allowed for a read-only identity"),
        Case(sql: "SELECT (42::bigint).pg_advisory_lock", tag: "SELECT", auditClass: .read,
             refusal: "function pg_advisory_lock() (attribute notation .pg_advisory_lock) is not allowed for a read-only identity"),
        Case(sql: "SELECT ($$select to_tsvector(lo_from_bytea(0, 'x')::text)$$::text).ts_stat", tag: "SELECT", auditClass: .read,
             refusal: "function ts_stat() (attribute notation .ts_stat) is not allowed for a read-only identity"),
        Case(sql: "SELECT (p).\"PG_TERMINATE_BACKEND\", (p).pg_terminate_backend FROM (SELECT 1 AS p) s", tag: "SELECT", auditClass: .read,
             refusal: "function pg_terminate_backend() (attribute notation .pg_terminate_backend) is not allowed for a read-only identity"),
        Case(sql: "SELECT s.nextval FROM s", tag: "SELECT", auditClass: .read,
             refusal: "cannot execute nextval() in a read-only transaction"),
        Case(sql: "SELECT public.t.pg_sleep FROM public.t", tag: "SELECT", auditClass: .read,
             refusal: "function pg_sleep() (attribute notation .pg_sleep) is not allowed for a read-only identity"),
        // Column names that are read-safe or unreachable built-ins stay readable.
        Case(sql: "SELECT c.name, c.system, c.length, (c.point).x, (c.r).lower FROM c", tag: "SELECT", auditClass: .read, refusal: nil),
    ]

    @Test(arguments: cases)
    func decision(_ expected: Case) throws {
        let result = StatementClassifier().classify(sql: expected.sql)
        #expect(result.syntaxError == nil)
        let statement = try #require(result.statements.first)
        #expect(result.statements.count == 1)
        #expect(statement.commandTag == expected.tag)
        #expect(statement.auditClass == expected.auditClass)
        #expect(statement.refusal?.message == expected.refusal)
        if let refusal = statement.refusal {
            #expect(refusal.sqlState == "25006")
            #expect(refusal.isPostgreSQLText == refusal.message.hasPrefix("cannot execute"))
        }
    }

    @Test func multiStatementIsClassifiedPerStatement() {
        let result = StatementClassifier().classify(sql: "select 'a;b'; delete from t; show x")
        #expect(result.statements.map(\.commandTag) == ["SELECT", "DELETE", "SHOW"])
        #expect(result.statements.map(\.isAllowedForReadOnly) == [true, false, true])
        #expect(result.firstRefusal?.message == "cannot execute DELETE in a read-only transaction")
        #expect(!result.isAllowedForReadOnly)
    }

    /// A new transaction in the same Query string could start read-write before the tripwire
    /// sees a default_transaction_read_only turned off: each starts in its own Query.
    @Test func statementsAfterATransactionEndInOneStringAreRefused() {
        for sql in ["SELECT 1; COMMIT; SELECT 2", "BEGIN; SELECT 1; END; SELECT 2", "SELECT 1; ABORT; BEGIN",
                    "BEGIN; SELECT 1; ROLLBACK; SELECT 2"] {
            let result = StatementClassifier().classify(sql: sql)
            #expect(result.statements.last?.refusal?.message.contains("in the same query string") == true, "\(sql)")
            #expect(result.statements.dropLast().allSatisfy { $0.refusal == nil }, "\(sql)")
        }
        #expect(StatementClassifier().classify(sql: "BEGIN; SELECT 1; COMMIT").isAllowedForReadOnly)
    }

    @Test func syntaxErrorIsRefusedWithTheParsersTextAndCursor() {
        let result = StatementClassifier().classify(sql: "SELECT * FORM t")
        #expect(result.statements.isEmpty)
        #expect(!result.isAllowedForReadOnly)
        #expect(result.syntaxError?.sqlState == "42601")
        #expect(result.syntaxError?.message == "syntax error at or near \"FORM\"")
        #expect(result.syntaxError?.cursorPosition == 10)
        #expect(result.firstRefusal == result.syntaxError)
    }

    @Test func syntaxErrorInALaterStatementRefusesTheWholeString() {
        let result = StatementClassifier().classify(sql: "select 1; delet from t")
        #expect(result.syntaxError?.message == "syntax error at or near \"delet\"")
        #expect(result.syntaxError?.cursorPosition == 11)
    }

    @Test func emptyQueryHasNoStatementsAndIsAllowed() {
        let result = StatementClassifier().classify(sql: "  ; -- nothing")
        #expect(result.statements.isEmpty)
        #expect(result.syntaxError == nil)
        #expect(result.isAllowedForReadOnly)
    }
}
