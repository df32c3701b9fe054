import Foundation
import XCTest

/// Issue 9, item 3: functions are judged by what PostgreSQL will call, not by their name.
/// Another role (here the superuser, standing in for anyone with CREATE on a schema the reader
/// searches) plants user code where PostgreSQL's name resolution picks it for statements whose
/// every name is allow-listed: overloads, an aggregate, operators, a domain CHECK, a cast, and
/// attribute notation. The code writes on a dblink connection of its own — an effect a
/// read-only transaction does not stop — so each attack is first shown to write against
/// PostgreSQL alone (app_ro, default_transaction_read_only=on), then shown to have no effect
/// through Portcullis, in the simple and the extended protocol. Judged by the rows in `hits`.
final class OverloadAttackTests: IntegrationTestCase {
    static let database = "overload"

    /// Every planted object, as the superuser; `hit(what)` (``DblinkHit``) is the effect. The
    /// database's default search_path puts public before pg_catalog, as a role or database
    /// default the proxy never sees could.
    static let setupSQL = DblinkHit.setupSQL(database: database) + """
        CREATE FUNCTION public.lower(integer) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('lower(integer)')::text $$;
        CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('lower(text)')::text $$;
        CREATE FUNCTION sum_step(text, text) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('sum(text)')::text $$;
        CREATE AGGREGATE public.sum(text) (SFUNC = sum_step, STYPE = text);
        CREATE FUNCTION plus_writer(integer, text) RETURNS integer LANGUAGE sql AS $$ SELECT public.hit('+(integer, text)')::int $$;
        CREATE OPERATOR public.+ (LEFTARG = integer, RIGHTARG = text, FUNCTION = plus_writer);
        CREATE FUNCTION eq3_writer(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT public.hit('===') $$;
        CREATE OPERATOR public.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = eq3_writer);
        CREATE FUNCTION eq_writer(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT public.hit('=(integer, integer)') $$;
        CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = eq_writer);
        CREATE FUNCTION d_check(integer) RETURNS boolean LANGUAGE sql AS $$ SELECT public.hit('domain check') $$;
        CREATE DOMAIN d_writes AS integer CHECK (d_check(VALUE));
        CREATE TYPE mood AS ENUM ('happy', 'sad');
        CREATE FUNCTION mood_text(mood) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('cast mood to text')::text $$;
        CREATE CAST (mood AS text) WITH FUNCTION mood_text(mood) AS IMPLICIT;
        CREATE TABLE moods (m mood);
        INSERT INTO moods VALUES ('happy');
        CREATE TABLE plain (a integer, name text);
        INSERT INTO plain VALUES (1, 'x');
        CREATE FUNCTION public.shout(plain) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('attribute notation')::text $$;
        CREATE FUNCTION rng_diff(integer, integer) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
          BEGIN PERFORM public.hit('range subtype_diff'); RETURN ($1 - $2)::float8; END $$;
        CREATE TYPE evilrange AS RANGE (subtype = integer, subtype_diff = rng_diff);
        CREATE TABLE ranges (r evilrange);
        INSERT INTO ranges SELECT evilrange(g, g + 10) FROM generate_series(1, 1000) g;
        CREATE TYPE feeling AS ENUM ('ok');
        CREATE FUNCTION feelings_text(feeling[]) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('cast feeling[] to text')::text $$;
        CREATE CAST (feeling[] AS text) WITH FUNCTION feelings_text(feeling[]);
        CREATE FUNCTION fold_hit(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
          BEGIN PERFORM public.hit('planner folds ' || $1); RETURN $1; END $$;
        CREATE TYPE dcomp AS (a d_writes);
        CREATE VIEW coldef_view AS SELECT r.a::int AS a FROM jsonb_to_record('{"a":1}') AS r(a d_writes);
        CREATE VIEW typednull_view AS SELECT jsonb_populate_record(NULL::dcomp, '{"a":3}') IS NOT NULL AS ok;
        CREATE TABLE with_default (x integer DEFAULT fold_hit(6), y integer);
        CREATE TYPE hue AS ENUM ('red', 'blue');
        CREATE FUNCTION hue_json(hue) RETURNS json LANGUAGE sql AS $$ SELECT to_json(public.hit('cast hue to json')) $$;
        CREATE CAST (hue AS json) WITH FUNCTION hue_json(hue);
        CREATE TABLE hues (h hue);
        INSERT INTO hues SELECT CASE WHEN g % 3 = 0 THEN 'red'::hue ELSE 'blue'::hue END FROM generate_series(1, 300) g;
        CREATE TABLE late_hue (id integer);
        INSERT INTO late_hue VALUES (1);
        ALTER TABLE late_hue ADD COLUMN h hue DEFAULT 'red';
        CREATE VIEW hue_stats AS SELECT array_to_json(most_common_vals) AS j FROM pg_catalog.pg_stats WHERE tablename = 'hues';
        CREATE FUNCTION public.tally(integer) RETURNS integer LANGUAGE sql AS $$ SELECT 7 FROM (SELECT public.hit('tally(integer)')) s $$;
        CREATE FUNCTION public.peek(anyelement) RETURNS text LANGUAGE sql AS $$ SELECT 'p' FROM (SELECT public.hit('peek(anyelement)')) s $$;
        CREATE FUNCTION row_check(plain) RETURNS boolean LANGUAGE sql AS $$ SELECT public.hit('domain over a row type') $$;
        CREATE DOMAIN plain_d AS plain CHECK (row_check(VALUE));
        CREATE FUNCTION email_check(text) RETURNS boolean LANGUAGE sql AS $$ SELECT public.hit('email check') $$;
        CREATE DOMAIN email AS text CHECK (email_check(VALUE));
        CREATE FUNCTION public.description(integer) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('description(integer)')::text $$;
        CREATE TABLE contacts (email text, tally integer, description text);
        INSERT INTO contacts VALUES ('a@example.com', 1, 'first');
        GRANT SELECT ON plain, moods, ranges, coldef_view, typednull_view, hues, hue_stats, late_hue, contacts TO app_ro;
        GRANT SELECT, INSERT ON with_default TO app_ro;
        ALTER DATABASE overload SET search_path = public, pg_catalog;
        """

    /// Objects whose creation already calls their code (an index build sorts, a range
    /// constructor compares its bounds): made once `hits` is committed.
    static let codeRunningSetupSQL = """
        CREATE FUNCTION evil_cmp(a integer, b integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
          BEGIN PERFORM public.hit('btree support of a non-default class'); RETURN btint4cmp(a, b); END $$;
        CREATE OPERATOR CLASS int4_evil_ops FOR TYPE integer USING btree AS
          OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 evil_cmp(integer, integer);
        CREATE TABLE indexed (x integer);
        INSERT INTO indexed SELECT generate_series(1, 1000);
        CREATE INDEX indexed_x ON indexed (x int4_evil_ops);
        CREATE TYPE opcrange AS RANGE (subtype = integer, subtype_opclass = int4_evil_ops);
        CREATE TABLE opcranges (id integer, r opcrange);
        INSERT INTO opcranges SELECT g, opcrange(g, g + 1) FROM generate_series(1, 20) g;
        CREATE VIEW range_filter AS SELECT count(*) AS n FROM ranges WHERE r && '[10,20]';
        CREATE TABLE idx_expr (x integer);
        CREATE INDEX ON idx_expr ((x + fold_hit(1)));
        CREATE TABLE idx_pred (x integer);
        CREATE INDEX ON idx_pred (x) WHERE x > fold_hit(2);
        CREATE TABLE stat_expr (x integer);
        CREATE STATISTICS stat_expr_s ON (x + fold_hit(3)), x FROM stat_expr;
        CREATE TABLE chk_parent (x integer);
        CREATE TABLE chk_child (CHECK (x > fold_hit(4))) INHERITS (chk_parent);
        GRANT SELECT ON indexed, opcranges, range_filter, idx_expr, idx_pred, stat_expr, chk_parent, chk_child TO app_ro;
        ANALYZE ranges;
        ANALYZE indexed;
        ANALYZE hues;
        """

    /// (attack, why PostgreSQL picks user code).
    static let attacks: [(sql: String, why: String)] = [
        ("SELECT lower(1)", "public.lower(integer) is the only exact match, whatever the search path"),
        ("SELECT lower('x')", "public.lower(text) hides pg_catalog.lower(text): public is first on the search path"),
        ("SELECT sum(name) FROM plain", "public.sum(text) is the only sum for text"),
        ("SELECT 1 + 'x'::text", "the built-in symbol + defined for (integer, text)"),
        ("SELECT 1 === 1", "a user-defined operator"),
        ("SELECT a FROM plain WHERE a = 1", "public.=(integer, integer) hides pg_catalog's: public is first on the search path"),
        ("SELECT a FROM plain WHERE a IN (1, 2)", "IN compares with the = the search path finds"),
        ("SELECT CASE a WHEN 1 THEN 'one' END FROM plain", "CASE x WHEN compares with the = the search path finds"),
        ("SELECT 1 FROM plain p JOIN plain q USING (a)", "JOIN USING compares with the = the search path finds"),
        ("SELECT 1::d_writes", "the domain's CHECK calls a function"),
        ("SELECT m::text FROM moods", "a user-defined cast from a column's type"),
        ("SELECT 'happy'::mood::text", "a user-defined cast named by its type"),
        ("SELECT p.shout FROM plain p", "attribute notation: p.shout is shout(p)"),
        // Found in review, 2026-12-07: a field name that is a type is a coercion to it.
        ("SELECT (1).d_writes", "attribute notation: (1).d_writes is d_writes(1), a coercion to the domain, whose CHECK runs"),
        // Found in review, 2026-12-08, while mending false positives of the rule above: what a
        // whole row reaches, and a function's whole row in FROM, which is its scalar result.
        ("SELECT p.plain_d FROM plain p", "attribute notation: p.plain_d is a coercion of p's row to a domain over plain, whose CHECK runs"),
        ("SELECT public.plain.plain_d FROM public.plain", "the same with the relation's qualified name"),
        ("SELECT s.peek FROM (SELECT 1 AS a) s", "a subquery's whole row is a record, which peek(anyelement) takes"),
        ("SELECT g.tally FROM generate_series(1, 2) g", "g's whole row is generate_series's integer: g.tally is tally(g)"),
        ("SELECT \"coalesce\".tally FROM coalesce(1, 2)", "a function in FROM without an alias is named after itself"),
        ("SELECT u.tally FROM unnest(ARRAY[1]) AS u(other)", "u's only column is other: u.tally is tally(u), u an integer"),
        ("SELECT count(*) FROM ranges WHERE r && '[10,20]'",
         "the planner estimates && with the range type's subtype_diff (the column has statistics); nothing names it"),
        ("SELECT ARRAY['ok'::feeling]::text", "a user-defined cast from feeling[], an array type the text never spells"),
        ("SELECT x FROM indexed WHERE x = 5", "an index scan compares with the index's operator class support function"),
        ("SELECT id FROM opcranges ORDER BY r", "sorting ranges compares their bounds with the subtype operator class"),
        ("SELECT n FROM range_filter", "the view filters on a range column: planning it calls subtype_diff; the view names neither"),
        // Found in review, round 3.
        ("SELECT domain_in('2', 'd_writes'::regtype, -1) IS NULL", "domain_in builds a value of a domain named only in a literal: its CHECK runs"),
        ("SELECT count(*) FROM idx_expr", "the planner folds the table's index expression, calling fold_hit(1)"),
        ("SELECT count(*) FROM idx_pred", "the planner folds the table's partial-index predicate"),
        ("SELECT count(*) FROM stat_expr", "the planner folds the table's extended-statistics expression"),
        ("SELECT x FROM chk_parent WHERE x = 1", "constraint exclusion folds the inheritance child's CHECK constraint"),
        ("EXPLAIN INSERT INTO with_default (y) VALUES (1)", "planning the INSERT folds the column default fold_hit(6)"),
        ("SELECT a FROM coldef_view", "the view builds a d_writes value from jsonb_to_record's column definition list"),
        ("SELECT ok FROM typednull_view", "the view builds a dcomp, whose column is a d_writes, from NULL::dcomp"),
        // Found in review, round 4: pg_stats hands out analysed values as anyarray.
        ("SELECT array_to_json(most_common_vals) FROM pg_stats WHERE tablename LIKE 'hues'",
         "array_to_json looks up a cast to json for each element's type at run time: hue's"),
        ("SELECT json_agg(s) FROM pg_stats s WHERE tablename LIKE 'hues'", "the row's anyarray columns go through hue's cast to json"),
        // Found in review, 2026-12-07: the builder called by attribute notation.
        ("SELECT (most_common_vals).array_to_json FROM pg_stats WHERE tablename LIKE 'hues'",
         "(x).array_to_json is array_to_json(x): the same cast lookup at run time"),
        ("SELECT j FROM hue_stats", "a view over pg_catalog.pg_stats: the same, naming no user object but the view"),
        ("SELECT to_jsonb(attmissingval) FROM pg_attribute WHERE atthasmissing",
         "pg_attribute.attmissingval holds late_hue.h's default for its older rows: a hue"),
    ]

    private var cluster: Cluster { get throws { try harness.cluster } }

    private var database: AttackDatabase { get throws { AttackDatabase(cluster: try cluster, name: Self.database) } }

    private func superuser() throws -> LibPQSession { try database.superuser() }

    private func hits(_ session: LibPQSession) throws -> Int { try database.hits(session) }

    /// After the setup committed `hits` (ANALYZE calls subtype_diff; autovacuum has nothing
    /// left to analyze afterwards).
    private func createDatabase() throws { try database.create(Self.setupSQL, Self.codeRunningSetupSQL) }

    /// A proxy in front of the attack database, and a way to open its read-only sessions.
    private func startProxy(_ settings: [String] = []) throws -> (ProxyProcess, () throws -> LibPQSession) {
        var options = ProxyProcess.Options(upstream: try cluster)
        options.extraDatabaseNames = [Self.database]
        options.extraSettings = settings
        let proxy = try ProxyProcess(harness: try harness, options: options)
        return (proxy, { try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: Self.database,
                                                                            extra: "password=app_ro_pw")) })
    }

    /// app_ro straight to PostgreSQL in read-only mode: what the proxy adds to the startup packet.
    private func directReadOnly() throws -> LibPQSession {
        let direct = Endpoint(port: try cluster.port, caFile: try harness.caFile, proxyPID: nil)
        return try LibPQSession(conninfo: direct.conninfo(user: "app_ro", dbname: Self.database,
                                                          extra: "password=app_ro_pw options='-c default_transaction_read_only=on'"))
    }

    func testUserCodeChosenByResolutionWritesAgainstPostgreSQLButNotThroughPortcullis() throws {
        try createDatabase()
        let owner = try superuser()

        // 1. PostgreSQL alone: every attack writes although the session is read-only.
        for queryProtocol in QueryProtocol.allCases {
            for attack in Self.attacks {
                let session = try directReadOnly()
                XCTAssertEqual(session.run("SHOW transaction_read_only", protocol: .simple).last?.rows, [["on"]])
                let before = try hits(owner)
                let outcome = session.run(attack.sql, protocol: queryProtocol)
                XCTAssertFalse(outcome.contains(where: \.isError), "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertGreaterThan(try hits(owner), before,
                                     "[\(queryProtocol)] \(attack.sql) did not write against PostgreSQL alone (\(attack.why))")
            }
        }

        // 2. Through Portcullis: refused, no effect.
        try requireProxyTarget("the proxy's refusal")
        let (proxy, readOnly) = try startProxy()
        defer { proxy.stop() }
        // The snapshot is loaded at start-up; wait for it with a probe that runs no user code
        // (enum input calls no cast).
        let known = try poll(timeout: 20, every: 0.2) {
            try readOnly().run("SELECT 'happy'::mood", protocol: .simple).first?.message?.contains("type \"mood\" is not allowed") == true
        }
        XCTAssertTrue(known, "the catalog snapshot of \(Self.database) was not loaded:\n\(proxy.stderrText.suffix(3000))")

        let before = try hits(owner)
        for queryProtocol in QueryProtocol.allCases {
            for attack in Self.attacks {
                let session = try readOnly()
                let outcome = session.run(attack.sql, protocol: queryProtocol)
                XCTAssertEqual(outcome.first(where: \.isError)?.sqlState, "25006", "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertTrue(outcome.first(where: \.isError)?.message?.contains("read-only") == true,
                              "[\(queryProtocol)] \(attack.sql): \(outcome)")
                XCTAssertEqual(try hits(owner), before, "[\(queryProtocol)] \(attack.sql) wrote through Portcullis (\(attack.why))")
                // The session stays usable and read-only.
                XCTAssertEqual(session.run("SHOW transaction_read_only", protocol: .simple).last?.rows, [["on"]])
            }
        }

        // Extended protocol: a parameter declared with the type's OID, the text names none.
        let moodOID = UInt32(try owner.rows("SELECT 'mood'::regtype::oid").first?.first.flatMap { $0 } ?? "") ?? 0
        let typedAttack = "SELECT $1::text"
        let direct = try directReadOnly().run(typedAttack, parameterTypes: [moodOID], values: ["happy"])
        XCTAssertFalse(direct.contains(where: \.isError), "\(direct)")
        XCTAssertGreaterThan(try hits(owner), before, "a parameter of type mood did not write against PostgreSQL alone")
        let afterDirect = try hits(owner)
        let typed = try readOnly().run(typedAttack, parameterTypes: [moodOID], values: ["happy"])
        XCTAssertEqual(typed.first(where: \.isError)?.message?.hasPrefix("a parameter of type OID \(moodOID) is not allowed"), true, "\(typed)")
        XCTAssertEqual(try hits(owner), afterDirect, "a parameter of type mood wrote through Portcullis")
        XCTAssertFalse(try readOnly().run(typedAttack, parameterTypes: [25], values: ["x"]).contains(where: \.isError))

        // Reads that reach no user code keep working in the same database.
        let session = try readOnly()
        for read in ["SELECT a, name FROM plain WHERE a OPERATOR(pg_catalog.=) 1", "SELECT pg_catalog.lower(name) FROM plain",
                     "SELECT pg_catalog.sum(a) FROM plain", "SELECT 1 OPERATOR(pg_catalog.+) 2",
                     // pg_dump's data: stored rows through output functions, no cast runs.
                     "COPY public.moods (m) TO STDOUT",
                     // The catalog's anyarray columns without a json function (psql's \d reads
                     // pg_attribute), and json over other relations.
                     "SELECT attname, attmissingval FROM pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) 'public.late_hue'::regclass",
                     "SELECT most_common_vals FROM pg_stats WHERE tablename LIKE 'hues'",
                     "SELECT json_agg(name) FROM plain",
                     // A row's own field is never a call (false positives found in review: a
                     // domain email refused SQLAlchemy's select of an email column; functions
                     // name(integer) and description(integer) refused asyncpg's and psql's
                     // catalog queries). No row reaches tally(integer) or a domain over text.
                     "SELECT c.email, c.tally, c.description, contacts.email FROM contacts c, contacts",
                     "SELECT s.tally FROM (SELECT tally FROM contacts) s",
                     "SELECT x.tally, u.tally FROM jsonb_to_recordset('[{\"tally\": 1}]') AS x(tally int), unnest(ARRAY[2]) AS u(tally)",
                     "SELECT d.description FROM pg_catalog.pg_description d LIMIT 1"] {
            let outcome = session.run(read, protocol: .extended)
            XCTAssertFalse(outcome.contains(where: \.isError), "\(read): \(outcome)")
        }
        XCTAssertEqual(try hits(owner), afterDirect)
    }

    /// A superuser adds a default btree operator class for a built-in type whose comparison
    /// runs user code: sorting, DISTINCT and grouping of any value of that type call it, with
    /// no name in the statement. The snapshot then refuses every statement in that database.
    func testAUserOperatorClassForABuiltInTypeRefusesEverything() throws {
        try createDatabase()
        let owner = try superuser()
        _ = try owner.rows("""
            CREATE FUNCTION pt_cmp(a point, b point) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
              BEGIN PERFORM public.hit('btree support of point'); RETURN CASE WHEN a[0] < b[0] THEN -1 WHEN a[0] > b[0] THEN 1 ELSE 0 END; END $$;
            CREATE FUNCTION pt_lt(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT public.pt_cmp($1, $2) < 0';
            CREATE FUNCTION pt_le(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT public.pt_cmp($1, $2) <= 0';
            CREATE FUNCTION pt_eq(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT public.pt_cmp($1, $2) = 0';
            CREATE FUNCTION pt_ge(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT public.pt_cmp($1, $2) >= 0';
            CREATE FUNCTION pt_gt(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT public.pt_cmp($1, $2) > 0';
            CREATE OPERATOR #<# (LEFTARG = point, RIGHTARG = point, FUNCTION = pt_lt);
            CREATE OPERATOR #<=# (LEFTARG = point, RIGHTARG = point, FUNCTION = pt_le);
            CREATE OPERATOR #=# (LEFTARG = point, RIGHTARG = point, FUNCTION = pt_eq);
            CREATE OPERATOR #>=# (LEFTARG = point, RIGHTARG = point, FUNCTION = pt_ge);
            CREATE OPERATOR #># (LEFTARG = point, RIGHTARG = point, FUNCTION = pt_gt);
            CREATE OPERATOR CLASS point_ops DEFAULT FOR TYPE point USING btree AS
              OPERATOR 1 #<#, OPERATOR 2 #<=#, OPERATOR 3 #=#, OPERATOR 4 #>=#, OPERATOR 5 #>#, FUNCTION 1 pt_cmp(point, point);
            CREATE TABLE pts (p point);
            INSERT INTO pts VALUES (point(2, 2)), (point(1, 1));
            GRANT SELECT ON pts TO app_ro;
            """)
        let attacks = ["SELECT p FROM pts ORDER BY p", "SELECT DISTINCT p FROM pts", "SELECT 1 FROM generate_series(1, 3) g ORDER BY point(g, -g)"]
        for attack in attacks {
            let before = try hits(owner)
            XCTAssertFalse(try directReadOnly().run(attack, protocol: .simple).contains(where: \.isError), attack)
            XCTAssertGreaterThan(try hits(owner), before, "\(attack) did not write against PostgreSQL alone")
        }

        try requireProxyTarget("the proxy's refusal")
        let (proxy, readOnly) = try startProxy()
        defer { proxy.stop() }
        XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
            try readOnly().run("SELECT 'happy'::mood", protocol: .simple).first?.isError == true
        }, "the snapshot was not loaded")
        let before = try hits(owner)
        for queryProtocol in QueryProtocol.allCases {
            for attack in attacks {
                let outcome = try readOnly().run(attack, protocol: queryProtocol)
                XCTAssertTrue(outcome.first(where: \.isError)?.message?.contains("operator family point_ops of access method btree") == true,
                              "[\(queryProtocol)] \(attack): \(outcome)")
            }
        }
        XCTAssertEqual(try hits(owner), before, "the operator class's code ran through Portcullis")
    }

    /// A superuser gives a base type a send or typmod_in function written in PL/pgSQL: binary
    /// output of its values runs the one (also values no statement shows: anyarray columns such
    /// as pg_attribute.attmissingval), and a type name inside any string the other
    /// (to_regtype('bt(3)')). The snapshot then refuses every statement in that database
    /// (found in review).
    func testAUserTypeWithPLSendOrTypmodInRefusesEverything() throws {
        try createDatabase()
        let owner = try superuser()
        _ = try owner.rows("""
            CREATE TYPE bt;
            CREATE FUNCTION bt_in(cstring) RETURNS bt LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
            CREATE FUNCTION bt_out(bt) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
            CREATE TYPE bt (INPUT = bt_in, OUTPUT = bt_out, INTERNALLENGTH = 4, PASSEDBYVALUE, ALIGNMENT = int4);
            CREATE FUNCTION bt_send(bt) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
              BEGIN PERFORM public.hit('send function of bt'); RETURN decode('00000001', 'hex'); END $$;
            CREATE FUNCTION bt_typmodin(cstring[]) RETURNS integer LANGUAGE plpgsql IMMUTABLE STRICT AS $$
              BEGIN PERFORM public.hit('typmod_in of bt'); RETURN 3; END $$;
            ALTER TYPE bt SET (SEND = bt_send, TYPMOD_IN = bt_typmodin);
            CREATE TABLE btt (v bt);
            INSERT INTO btt VALUES ('5');
            GRANT SELECT ON btt TO app_ro;
            """)
        let attacks = ["COPY btt TO STDOUT (FORMAT binary)", "SELECT to_regtype('bt(3)') IS NOT NULL"]
        for attack in attacks {
            let before = try hits(owner)
            XCTAssertFalse(try directReadOnly().run(attack, protocol: .simple).contains(where: \.isError), attack)
            XCTAssertGreaterThan(try hits(owner), before, "\(attack) did not write against PostgreSQL alone")
        }

        try requireProxyTarget("the proxy's refusal")
        let (proxy, readOnly) = try startProxy()
        defer { proxy.stop() }
        XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
            try readOnly().run("SELECT 1", protocol: .simple).first?.message?.contains("bt_send") == true
        }, "the snapshot was not loaded, or does not refuse")
        let before = try hits(owner)
        for queryProtocol in QueryProtocol.allCases {
            for attack in attacks + ["SELECT 1"] {
                let outcome = try readOnly().run(attack, protocol: queryProtocol)
                XCTAssertEqual(outcome.first(where: \.isError)?.sqlState, "25006", "[\(queryProtocol)] \(attack): \(outcome)")
                XCTAssertTrue(outcome.first(where: \.isError)?.message?.contains("type public.bt: its ") == true,
                              "[\(queryProtocol)] \(attack): \(outcome)")
            }
        }
        XCTAssertEqual(try hits(owner), before, "the type's PL/pgSQL code ran through Portcullis")
    }

    /// Objects planted after start-up are known once DDL through the proxy refreshes the
    /// snapshot (the same path views take), without waiting for catalog_refresh_interval.
    func testOverloadsCreatedThroughTheProxyAreKnownAtOnce() throws {
        try requireProxyTarget("catalog snapshots are the proxy's")
        try createDatabase()
        _ = try superuser().rows("GRANT CREATE ON SCHEMA public TO app_rw; GRANT EXECUTE ON FUNCTION public.hit(text) TO app_rw")
        let (proxy, readOnly) = try startProxy(["catalog_refresh_interval = 1h"])
        defer { proxy.stop() }
        XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
            try readOnly().run("SELECT 'happy'::mood", protocol: .simple).first?.isError == true
        }, "the snapshot was not loaded")
        XCTAssertFalse(try readOnly().run("SELECT upper('x')", protocol: .simple).contains(where: \.isError))

        let writer = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: Self.database,
                                                                         extra: "password=app_rw_pw"))
        let ddl = writer.run("CREATE FUNCTION public.upper(integer) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('upper(integer)')::text $$",
                             protocol: .simple)
        XCTAssertFalse(ddl.contains(where: \.isError), "\(ddl)")
        let owner = try superuser()
        let before = try hits(owner)
        let refused = try poll(timeout: 10, every: 0.1) {
            try readOnly().run("SELECT upper('x')", protocol: .simple).first?.message?
                .contains("may resolve it to user-defined function public.upper(integer)") == true
        }
        XCTAssertTrue(refused, "the overload created through the proxy is known without waiting an hour")
        XCTAssertFalse(try readOnly().run("SELECT upper(1)", protocol: .extended).contains(where: { !$0.isError }))
        XCTAssertEqual(try hits(owner), before)
    }

    /// Objects planted directly on the server (not through the proxy) are known after a reload
    /// (SIGHUP) and after catalog_refresh_interval, like views.
    func testOverloadsCreatedOnTheServerAreKnownAfterReloadAndInterval() throws {
        try requireProxyTarget("catalog snapshots are the proxy's")
        try createDatabase()
        let owner = try superuser()
        for (interval, refresh) in [("1h", "SIGHUP"), ("1s", "interval")] {
            let (proxy, readOnly) = try startProxy(["catalog_refresh_interval = \(interval)"])
            defer { proxy.stop() }
            XCTAssertTrue(try poll(timeout: 20, every: 0.2) {
                try readOnly().run("SELECT 'happy'::mood", protocol: .simple).first?.isError == true
            }, "the snapshot was not loaded")
            let name = "initcap"
            XCTAssertFalse(try readOnly().run("SELECT \(name)('x')", protocol: .simple).contains(where: \.isError), refresh)
            _ = try owner.rows("CREATE FUNCTION public.\(name)(integer) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('\(name)(integer)')::text $$")
            if refresh == "SIGHUP" { kill(proxy.pid, SIGHUP) }
            let before = try hits(owner)
            let refused = try poll(timeout: 15, every: 0.2) {
                try readOnly().run("SELECT \(name)('x')", protocol: .simple).first?.message?
                    .contains("user-defined function public.\(name)(integer)") == true
            }
            XCTAssertTrue(refused, "an overload created on the server is known after the \(refresh)")
            XCTAssertEqual(try hits(owner), before)
            _ = try owner.rows("DROP FUNCTION public.\(name)(integer)")
        }
    }
}
