import Testing
@testable import Policy

/// What each statement leaves on its server session (transaction pooling's pins), read from
/// PostgreSQL 15's raw parse tree.
@Suite struct SessionStateEffectsTests {
    private func effects(_ sql: String) -> SessionStateEffects {
        StatementClassifier().classify(sql: sql).statements.reduce(into: []) { $0.formUnion($1.sessionEffects) }
    }

    static let cases: [(String, SessionStateEffects)] = [
        ("SELECT 1", []),
        ("CREATE TEMP TABLE t (x int)", .temporaryObject),
        ("CREATE TEMPORARY SEQUENCE s", .temporaryObject),
        ("CREATE TABLE pg_temp.t (x int)", .temporaryObject),
        ("CREATE TEMP TABLE t AS SELECT 1", .temporaryObject),
        ("SELECT 1 INTO TEMPORARY t", .temporaryObject),
        ("CREATE TABLE t (x int)", .unqualifiedCreate),
        ("CREATE TABLE app.t (x int)", []),
        ("SELECT 1 INTO t", .unqualifiedCreate),
        ("CREATE TABLE t AS SELECT 1", .unqualifiedCreate),
        ("CREATE VIEW v AS SELECT 1", .unqualifiedCreate),
        ("CREATE SEQUENCE s", .unqualifiedCreate),
        ("CREATE TYPE c AS (x int)", .unqualifiedCreate),
        ("CREATE TYPE e AS ENUM ('a')", .unqualifiedCreate),
        ("CREATE DOMAIN d AS int", .unqualifiedCreate),
        ("CREATE OPERATOR === (function = int4eq, leftarg = int, rightarg = int)", .unqualifiedCreate),
        ("CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", []),
        ("CREATE INDEX ON t (x)", []),
        ("LISTEN c", .listen),
        ("UNLISTEN *", .unlistenAll),
        ("UNLISTEN c", []),
        ("SELECT pg_advisory_lock(1)", .advisoryLock),
        ("SELECT pg_catalog.pg_try_advisory_lock(1, 2)", .advisoryLock),
        ("SELECT (1::bigint).pg_advisory_lock", .advisoryLock),
        ("SELECT t.pg_advisory_lock_shared FROM t", .advisoryLock),
        ("SELECT ('host=x').dblink_connect", .externalConnection),
        ("SELECT pg_advisory_xact_lock(1)", []),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", .holdCursor),
        ("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", []),
        ("PREPARE p AS SELECT 1", .preparedStatement),
        ("DEALLOCATE ALL", .deallocateAll),
        ("DEALLOCATE p", []),
        ("LOAD 'auto_explain'", .load),
        ("SET ROLE r", .role),
        ("SET SESSION AUTHORIZATION r", .role),
        ("SET work_mem = '8MB'", .sessionSetting),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", .sessionSetting),
        ("SET LOCAL work_mem = '8MB'", []),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", []),
        ("RESET work_mem", .settingReset),
        ("RESET ALL", .settingReset),
        ("SET myapp.tenant = 'x'", .customSetting),
        ("SELECT set_config('work_mem', '8MB', false)", .sessionSetting),
        ("SELECT set_config('work_mem', '8MB', true)", []),
        ("SELECT set_config('myapp.tenant', 'x', false)", .customSetting),
        ("SELECT set_config($1, 'x', false)", .customSetting),
        ("DISCARD ALL", .discardAll),
        ("DISCARD TEMP", .discardTemp),
        ("SELECT 1; LISTEN c; CREATE TEMP TABLE t ()", [.listen, .temporaryObject]),
        // Found in review: spellings that left state unpinned for the next client.
        ("SELECT set_config('role', 'r', false)", .role),
        ("SELECT pg_catalog.set_config('ROLE', 'r', false)", .role),
        ("SELECT set_config('session_authorization', 'r', false)", .role),
        ("SELECT set_config('role', 'r', true)", []),
        // A cast can change the value: only bare literals are read (found in review: the
        // first is_local is false, the second name is `role`).
        ("SELECT set_config('role', 'r', '1'::numeric(1,-1)::int::boolean)", .role),
        ("SELECT set_config('rolex'::char(4), 'r', false)", .customSetting),
        ("SELECT set_config('work_mem', '8MB', 'true'::text::boolean)", .sessionSetting),
        ("SELECT set_config('search_path', 'pg_temp, x'::varchar(7), false)", [.sessionSetting, .temporarySearchPath]),
        // UPDATE pg_settings is SET by another name (its rule calls set_config(…, false)).
        ("UPDATE pg_settings SET setting = 'evil, public' WHERE name = 'search_path'", [.sessionSetting, .temporarySearchPath]),
        ("WITH u AS (UPDATE pg_catalog.pg_settings SET setting = '5' WHERE name = 'statement_timeout' RETURNING 1) SELECT 1",
         [.sessionSetting, .temporarySearchPath]),
        ("UPDATE other.pg_settings SET setting = '5'", []),
        ("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", .temporaryObject),
        ("CREATE DOMAIN pg_temp.d AS int", .temporaryObject),
        ("CREATE TYPE pg_temp.e AS ENUM ('a')", .temporaryObject),
        ("CREATE OPERATOR pg_temp.=== (function = int4eq, leftarg = int, rightarg = int)", .temporaryObject),
        ("SELECT 'pg_temp.x'", []),
        ("SET search_path = pg_temp, public", [.sessionSetting, .temporarySearchPath]),
        ("SET search_path TO public, PG_TEMP", [.sessionSetting, .temporarySearchPath]),
        ("SET search_path = 'pg_temp_3'", [.sessionSetting, .temporarySearchPath]),
        ("SET search_path = public", .sessionSetting),
        ("SET LOCAL search_path = pg_temp", []),
        ("SELECT set_config('search_path', 'pg_temp, public', false)", [.sessionSetting, .temporarySearchPath]),
        ("SELECT set_config('search_path', $1, false)", [.sessionSetting, .temporarySearchPath]),
        ("SELECT set_config('search_path', 'public', false)", .sessionSetting),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = pg_temp AS 'SELECT 1'", .unqualifiedCreate),
        ("DO $$BEGIN SET ROLE r; END$$", .anonymousCode),
        ("SELECT dblink_connect('c', 'dbname=app')", .externalConnection),
        ("SELECT public.dblink_connect_u('dbname=app')", .externalConnection),
        ("SELECT * FROM dblink('dbname=app', 'SELECT 1') AS t(x int)", []),
    ]

    @Test(arguments: cases)
    func statementEffects(_ sql: String, _ expected: SessionStateEffects) {
        #expect(effects(sql) == expected, "\(sql)")
    }

    /// set_config's name and is_local are literals: two texts differing only there must not
    /// share one cached classification.
    @Test func setConfigEffectsAreNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        let local = cache.classify(sql: "select set_config('work_mem', '1MB', true)")
        let custom = cache.classify(sql: "select set_config('app.tenant', '1MB', false)")
        #expect(local.statements.first?.sessionEffects == [])
        #expect(custom.statements.first?.sessionEffects == .customSetting)
        let plain = cache.classify(sql: "SET search_path = public")
        let temp = cache.classify(sql: "SET search_path = pg_temp")
        #expect(plain.statements.first?.sessionEffects == .sessionSetting)
        #expect(temp.statements.first?.sessionEffects == [.sessionSetting, .temporarySearchPath])
    }
}
