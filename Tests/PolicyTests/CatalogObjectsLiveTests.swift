import Admin
import Foundation
import Testing
@testable import Policy

/// ``CatalogSnapshot/objectsQuery`` through the libpq loader against a throw-away PostgreSQL 15
/// cluster: every kind of object that name resolution or a coercion could pick outside the
/// built-in catalog is found — user functions and aggregates, operators, casts with functions,
/// domains whose constraints call code, and what contains them — and nothing built-in is.
@Suite(.serialized) struct CatalogObjectsLiveTests {
    static let schema = """
        create function evil(int) returns boolean language sql as 'select true';
        create function public.lower(integer) returns text language sql as 'select ''x''';
        create aggregate public.sum(text) (sfunc = textcat, stype = text);
        create function plus_w(int, text) returns boolean language sql as 'select true';
        create operator public.+ (leftarg = int, rightarg = text, function = plus_w);
        create operator === (leftarg = int, rightarg = int, function = int4eq);
        create domain d_evil as int check (evil(value));
        create domain d_fine as int check (value > 0 and char_length(value::text) < 5);
        create domain d_over as d_evil;
        create domain d_op as int check (value === 1);
        create type mood as enum ('a', 'b');
        create function mood_text(mood) returns text language sql as 'select ''m''';
        create cast (mood as text) with function mood_text(mood) as implicit;
        create type plain_enum as enum ('x');
        create cast (plain_enum as text) with inout;
        create type comp as (x d_evil, y int);
        create type r_evil as range (subtype = d_over);
        create table t_dom (a d_evil);
        create table t_fine (a d_fine, b int, e plain_enum);
        create table t_mood (m mood);
        create view v_mood as select m from t_mood;
        create table t_comp (c comp);
        create table t_arr (a d_evil[]);
        create schema other;
        create function other.harmless() returns int language sql as 'select 1';
        -- Two domains whose constraints coerce to each other: the walk must end.
        create domain cyc1 as int check (evil(value));
        create domain cyc2 as cyc1;
        alter domain cyc1 add constraint cyc1_back check ((value::cyc2) > 0) not valid;
        -- What `t.f` reaches with a whole row (takes_row).
        create function tally(integer) returns int language sql as 'select 1';
        create function peek(anyelement) returns int language sql as 'select 1';
        create function of_row(t_fine, int default 1) returns int language sql as 'select 1';
        create function of_record(record) returns int language plpgsql as 'begin return 1; end';
        create function row_second(int, t_fine default null) returns int language sql as 'select 1';
        create function of_rows(variadic t_fine[]) returns int language sql as 'select 1';
        create domain d_row as t_fine check (evil(1));
        """

    @Test func objectsQueryFindsEveryKind() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: "create database objectstest")
        let conninfo = "host=\(cluster.dir) port=\(cluster.port) dbname=objectstest user=postgres"

        // A fresh database holds no user objects at all: nothing built-in is reported.
        let pristine = try CatalogSnapshotLoader.load(conninfo: conninfo)
        #expect(pristine.userObjects.isEmpty, "\(pristine.userObjects)")
        #expect(pristine.isEmpty)

        _ = try cluster.psql(database: "objectstest", sql: Self.schema)
        let clock = ContinuousClock()
        var snapshot = CatalogSnapshot.empty
        let elapsed = try clock.measure { snapshot = try CatalogSnapshotLoader.load(conninfo: conninfo) }
        print("CatalogObjectsLiveTests: snapshot load (both queries, one connection) took \(elapsed)")
        let objects = snapshot.userObjects

        #expect(objects.functions["lower"]?.map(\.detail) == ["public.lower(integer)"])
        #expect(objects.functions["sum"]?.map(\.detail) == ["public.sum(text)"])
        #expect(objects.functions["harmless"]?.map(\.schema) == ["other"])
        #expect(objects.functions["evil"] != nil && objects.functions["mood_text"] != nil)
        #expect(objects.functions["upper"] == nil && objects.functions["count"] == nil, "built-ins are not user objects")
        #expect(objects.operators["+"]?.map(\.detail) == ["public.+(integer, text)"])
        #expect(objects.operators["==="]?.map(\.detail) == ["public.===(integer, integer)"])
        #expect(objects.operators["="] == nil)

        let typeReasons = objects.types.mapValues { $0.map(\.detail) }
        #expect(typeReasons["d_evil"] == ["its constraint d_evil_check calls function public.evil(integer)"])
        #expect(typeReasons["d_over"] == ["it is a domain over public.d_evil; its constraint d_evil_check calls function public.evil(integer)"])
        #expect(typeReasons["d_op"] == ["its constraint d_op_check uses operator public.===(integer,integer)"])
        #expect(typeReasons["mood"] == ["a user-defined cast from public.mood to text calls function public.mood_text(public.mood)"])
        #expect(typeReasons["comp"]?.first?.hasPrefix("its column x has type public.d_evil; ") == true)
        #expect(typeReasons["r_evil"]?.first?.hasPrefix("it is a range over public.d_over; ") == true, "\(typeReasons["r_evil"] ?? [])")
        #expect(typeReasons["_d_evil"] != nil, "the array type")
        #expect(typeReasons["cyc2"] == ["it is a domain over public.cyc1; its constraint cyc1_check calls function public.evil(integer)"])
        #expect(typeReasons["t_dom"] != nil && typeReasons["t_comp"] != nil, "row types of tables with such columns")
        #expect(typeReasons["d_fine"] == nil && typeReasons["plain_enum"] == nil && typeReasons["t_fine"] == nil,
                "built-in checks and I/O casts run no user code")
        #expect(typeReasons["text"] == nil && typeReasons["int4"] == nil, "a cast's built-in end is not flagged")
        #expect(objects.casts.isEmpty)

        // What a whole row reaches: functions taking one row-typed argument, domains over a row type.
        #expect(Set(objects.rowFunctions.keys) == ["peek", "of_row", "of_record", "of_rows"], "\(objects.rowFunctions.keys.sorted())")
        #expect(Set(objects.rowTypes.keys) == ["d_row"], "\(objects.rowTypes.keys.sorted())")

        let relations = Dictionary(uniqueKeysWithValues: snapshot.restrictedRelations.map { ($0.qualifiedName, $0) })
        #expect(Set(relations.keys) == ["public.t_dom", "public.t_mood", "public.v_mood", "public.t_comp", "public.t_arr"])
        #expect(relations["public.t_dom"]?.reason == "its column a has type public.d_evil; its constraint d_evil_check calls function public.evil(integer)")
        #expect(relations["public.v_mood"]?.kindName == "view")

        // The flagged types' OIDs are known for extended-protocol parameter types.
        let moodOID = try cluster.psql(database: "objectstest", sql: "select 'mood'::regtype::oid", extra: ["-A", "-t"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(snapshot.refusal(forParameterTypes: [23, Int32(moodOID) ?? 0]) != nil)
        #expect(snapshot.refusal(forParameterTypes: [23, 25]) == nil)

        // A superuser's cast between two built-in types refuses everything.
        _ = try cluster.psql(database: "objectstest", sql: """
            create function date_int(date) returns integer language sql as 'select 1';
            create cast (date as integer) with function date_int(date) as implicit;
            """)
        let global = try CatalogSnapshotLoader.load(conninfo: conninfo)
        #expect(global.userObjects.casts == ["a user-defined cast from date to integer calls function public.date_int(date)"])
        #expect(!StatementClassifier().classify(sql: "select 1", catalog: global).isAllowedForReadOnly)

        // And the classification of each class with this snapshot.
        let classifier = StatementClassifier()
        for sql in ["select lower(1)", "select sum(x) from (values ('a')) s(x)", "select 1 + 'x'::text", "select 1 === 1",
                    "select 1::d_evil", "select * from t_dom", "select lower(m) from t_mood", "select 'a'::mood::text",
                    "select null::comp", "select other.harmless()", "select g.tally from generate_series(1, 2) g",
                    "select (t).tally from t_fine t", "select t.peek from t_fine t", "select t.d_row from t_fine t"] {
            #expect(!classifier.classify(sql: sql, catalog: snapshot).isAllowedForReadOnly, "allowed: \(sql)")
        }
        for sql in ["select pg_catalog.lower('X')", "select upper('x'), count(*) from t_fine where a = 1 and b between 1 and 2",
                    "select 1::d_fine", "select e from t_fine", "select 1 operator(pg_catalog.+) 2",
                    // A row reaches neither lower(integer) nor tally(integer) nor a domain over int.
                    "select t.lower, t.tally, t.d_evil, s.tally from t_fine t, (select 1 as tally) s"] {
            let result = classifier.classify(sql: sql, catalog: snapshot)
            #expect(result.isAllowedForReadOnly, "refused: \(sql) -> \(String(describing: result.firstRefusal))")
        }

        // A user cast from a row type makes a row reach any function (here tally through integer).
        _ = try cluster.psql(database: "objectstest", sql: """
            drop cast (date as integer);
            create function fine_int(t_fine) returns integer language sql as 'select 1';
            create cast (t_fine as integer) with function fine_int(t_fine) as implicit;
            """)
        let rowCast = try CatalogSnapshotLoader.load(conninfo: conninfo)
        #expect(rowCast.userObjects.casts.isEmpty)
        #expect(rowCast.userObjects.rowFunctions["tally"] != nil && rowCast.userObjects.rowTypes["d_evil"] != nil)
        #expect(!classifier.classify(sql: "select s.tally from (select 1 as a) s", catalog: rowCast).isAllowedForReadOnly)
    }

    /// Load-time figures for docs/BENCHMARKS.md (printed, not asserted): each query's server
    /// time (psql \timing, best of 5) and the whole libpq load, for a catalog of about the size
    /// of a PostGIS database's.
    /// `trusted_extensions`: citext's operators, functions and casts count as built-in — but only
    /// while a superuser owns the extension (its owner could add code of its own to it).
    @Test func trustedExtensionsCountAsBuiltIn() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: "create database exttest; create database ownedtest owner app_rw")
        _ = try cluster.psql(database: "exttest", sql: "create extension citext; create table ct (a citext, b text)")
        // citext is a trusted extension (PostgreSQL 13+): a database owner may create it.
        _ = try cluster.psql(database: "ownedtest", sql: "set role app_rw; create extension citext; create table ct (a citext, b text)")
        let read = "select b from ct where a = 'x' and lower(b) = 'y'"
        func allowed(_ database: String, trusting: [String]) throws -> Bool {
            let snapshot = try CatalogSnapshotLoader.load(
                conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=\(database) user=postgres", trustedExtensions: trusting)
            var classifier = CachingStatementClassifier()
            return classifier.classify(sql: read, catalog: snapshot).isAllowedForReadOnly
        }
        #expect(try !allowed("exttest", trusting: []), "citext's = shadows the built-in one")
        #expect(try allowed("exttest", trusting: ["citext"]))
        #expect(try !allowed("exttest", trusting: ["hstore"]))
        #expect(try !allowed("ownedtest", trusting: ["citext"]), "an extension a non-superuser owns is not trusted")
    }

    @Test func loadTimeOfALargeCatalog() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: "create database bigcatalog")
        _ = try cluster.psql(database: "bigcatalog", sql: """
            do $$
            begin
              for i in 1..1000 loop
                execute format('create function fn_%s(int) returns boolean language sql as ''select true''', i);
              end loop;
              for i in 1..200 loop
                execute format('create function opf_%s(int, numeric) returns boolean language sql as ''select true''', i);
                execute format('create operator public.@%s (leftarg = int, rightarg = numeric, function = opf_%s)',
                               translate(i::text, '0123456789', '#%^&|`?!~*'), i);
              end loop;
              for i in 1..100 loop
                execute format('create domain dom_%s as int check (fn_%s(value))', i, i);
                execute format('create type enum_%s as enum (''a'')', i);
                execute format('create table tab_%s (a dom_%s, b int, c text)', i, i);
                execute format('create table plain_%s (a int, b text, c timestamptz)', i);
                execute format('create view view_%s as select a, b from plain_%s where b is not null', i, i);
              end loop;
            end $$;
            """)
        func serverTime(_ sql: String) throws -> Double {
            var best = Double.infinity
            for _ in 0..<5 {
                let output = try cluster.psql(database: "bigcatalog",
                                              sql: "\\timing on\nset jit = off;\nset search_path = '';\n\\o /dev/null\n\(sql);\n")
                // The last timing is the query's (the SETs come first).
                if let line = output.split(separator: "\n").last(where: { $0.hasPrefix("Time: ") }) {
                    best = min(best, Double(line.dropFirst(6).split(separator: " ").first ?? "") ?? .infinity)
                }
            }
            return best
        }
        let relations = try serverTime(CatalogSnapshot.query)
        let objects = try serverTime(CatalogSnapshot.objectsQuery)
        let conninfo = "host=\(cluster.dir) port=\(cluster.port) dbname=bigcatalog user=postgres"
        let clock = ContinuousClock()
        var loads: [Duration] = []
        var snapshot = CatalogSnapshot.empty
        for _ in 0..<5 { loads.append(try clock.measure { snapshot = try CatalogSnapshotLoader.load(conninfo: conninfo) }) }
        #expect(snapshot.userObjects.functions.count >= 1200)
        #expect(snapshot.userObjects.types.count >= 200)
        print("CatalogObjectsLiveTests: large catalog (\(snapshot.userObjects.functions.count) function names, "
              + "\(snapshot.userObjects.operators.count) operator symbols, \(snapshot.userObjects.types.count) flagged types, "
              + "\(snapshot.restrictedRelations.count) restricted relations): relation query \(relations) ms, objects query "
              + "\(objects) ms (server, best of 5); whole load incl. connection \(loads.min()!) (best of 5)")
    }
}
