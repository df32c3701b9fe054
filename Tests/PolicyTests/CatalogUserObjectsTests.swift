import Testing
@testable import Policy

/// "Functions are judged by what PostgreSQL will call": with a snapshot that knows user
/// functions, aggregates, operators and flagged types, every name that resolution could send
/// to one is refused — written or implied — and the same statements pass without them.
@Suite struct CatalogUserObjectsTests {
    static let objects: [CatalogSnapshot.ObjectRow] = [
        .init(kind: .function, oid: 16400, schema: "public", name: "lower", detail: "public.lower(integer)"),
        .init(kind: .function, oid: 16401, schema: "public", name: "sum", detail: "public.sum(text)"),
        .init(kind: .function, oid: 16402, schema: "other", name: "fullname", detail: "other.fullname(people)"),
        // A superuser's (or an extension's) function in pg_catalog itself.
        .init(kind: .function, oid: 16403, schema: "pg_catalog", name: "initcap", detail: "pg_catalog.initcap(integer)"),
        // Reached by no whole row (takes_row false): a row does not coerce to integer or text.
        .init(kind: .function, oid: 16404, schema: "public", name: "tally", detail: "public.tally(integer)", takesRow: false),
        .init(kind: .type, oid: 16424, schema: "public", name: "email", detail: "its constraint email_check calls function public.evil(text)",
              takesRow: false),
        .init(kind: .operator, oid: 16410, schema: "public", name: "+", detail: "public.+(integer, text)"),
        .init(kind: .operator, oid: 16411, schema: "public", name: "===", detail: "public.===(integer, integer)"),
        .init(kind: .operator, oid: 16412, schema: "evil", name: "=", detail: "evil.=(integer, integer)"),
        .init(kind: .operator, oid: 16413, schema: "evil", name: "~~", detail: "evil.~~(text, text)"),
        .init(kind: .operator, oid: 16414, schema: "evil", name: "<=", detail: "evil.<=(integer, integer)"),
        .init(kind: .type, oid: 16420, schema: "public", name: "d", detail: "its constraint d_check calls function public.evil(integer)"),
        .init(kind: .type, oid: 16421, schema: "public", name: "_d", detail: "it is an array of public.d; ..."),
        .init(kind: .type, oid: 16422, schema: "public", name: "mood", detail: "a user-defined cast from public.mood to text calls function public.mood_text(public.mood)"),
        // A domain named like a built-in type, for a search path with its schema first.
        .init(kind: .type, oid: 16423, schema: "shadow", name: "json", detail: "its constraint json_check calls function shadow.evil(json)"),
        .init(kind: .relation, oid: 16430, schema: "public", name: "moods", detail: "its column m has type public.mood; a user-defined cast ...", relkind: "r"),
    ]
    static let snapshot = CatalogSnapshot(rows: [], objects: objects)
    /// The same objects minus the operators, for statements that only use operators.
    static let withoutOperators = CatalogSnapshot(rows: [], objects: objects.filter { $0.kind != .operator })

    @Test(arguments: [
        // Overloads: the name exists as a user function in some schema.
        ("select lower(1)", "function lower() is not allowed for a read-only identity: PostgreSQL may resolve it to user-defined function public.lower(integer)"),
        ("select lower(relname) from pg_class", "function lower()"),
        ("select sum(x) from (values ('1')) s(x)", "function sum()"),
        ("select 1 where exists (select sum(a) from t)", "function sum()"),
        ("select pg_catalog.initcap(1)", "function pg_catalog.initcap()"),
        // Attribute notation: people.fullname is fullname(people).
        ("select p.fullname from people p", "field selection .fullname is not allowed for a read-only identity: PostgreSQL may resolve it to user-defined function other.fullname(people) (attribute notation)"),
        ("select (p).fullname from people p", "field selection .fullname"),
        ("select public.people.fullname from people", "field selection .fullname"),
        // Attribute notation naming a flagged type is a coercion to it (found in review).
        ("select (1).d", "field selection .d is not allowed for a read-only identity: PostgreSQL may resolve it to a coercion to type public.d: its constraint d_check calls function public.evil(integer) (attribute notation)"),
        ("select p.d from people p", "field selection .d"),
        // What no row reaches is still reached by `(x).f` and by a function's whole row in FROM,
        // which is that function's scalar result (found in review: `g.tally` ran tally(integer)).
        ("select (c).tally from contacts c", "field selection .tally is not allowed for a read-only identity: PostgreSQL may resolve it to user-defined function public.tally(integer)"),
        ("select (1).email", "field selection .email is not allowed for a read-only identity: PostgreSQL may resolve it to a coercion to type public.email"),
        ("select g.tally from generate_series(1, 2) g", "field selection .tally"),
        ("select generate_series.tally from pg_catalog.generate_series(1, 2)", "field selection .tally"),
        ("select x.tally from rows from (generate_series(1, 2), unnest(array[1])) x", "field selection .tally"),
        ("select c.tally from contacts c, lateral (select * from unnest(array[1]) c) s", "field selection .tally"),
        ("select \"coalesce\".tally from coalesce(1, 2)", "field selection .tally"),
        ("select \"greatest\".tally from greatest(1, 2)", "field selection .tally"),
        ("select \"int4\".tally from cast(1 as int)", "field selection .tally"),
        // A function returning text to PostgreSQL 16 and later (found in review).
        ("select s.tally from system_user s", "field selection .tally"),
        ("select system_user.tally from system_user", "field selection .tally"),
        ("select u.tally from unnest(array[1]) as u(other)", "field selection .tally"),
        // Operators, written.
        ("select 1 + 'x'::text", "operator + is not allowed for a read-only identity: PostgreSQL may resolve it to user-defined operator public.+(integer, text)"),
        ("select 1 === 2", "operator ==="),
        ("select - 1 + 2", "operator +"),
        ("select * from t where a = any(array[1])", "operator ="),
        ("select * from t where a = 1", "operator ="),
        ("select * from t order by a using <=", "operator <="),
        // Operators, implied by the syntax.
        ("select * from t where a in (1, 2)", "operator ="),
        ("select * from t where a in (select a from u)", "operator ="),
        ("select * from t where a between 1 and 2", "operator <="),
        ("select * from t where a like 'x%'", "operator ~~"),
        ("select nullif(a, 1) from t", "operator ="),
        ("select a is distinct from 1 from t", "operator ="),
        ("select case a when 1 then 'one' end from t", "operator ="),
        ("select * from t join u using (a)", "operator ="),
        ("select * from t natural join u", "operator ="),
        // Types.
        ("select 1::d", "type \"d\" is not allowed for a read-only identity: type public.d: its constraint d_check calls function public.evil(integer)"),
        ("select cast(1 as public.d)", "type \"public.d\""),
        ("select array[1]::d[]", "type \"d\""),
        ("select * from jsonb_to_record('{}') as r(a d)", "type \"d\""),
        ("select 'a'::mood::text", "type \"mood\""),
        ("select '{1}'::_d", "type \"_d\""),
        // A one-argument call named like a type is a coercion to it when no function matches.
        ("select json('{}')", "function json() is not allowed for a read-only identity: PostgreSQL may resolve it to a coercion to type shadow.json"),
        ("select '{}'::json", "type \"json\" is not allowed for a read-only identity: type shadow.json"),
        // Statements whose inner query is decided on its own carry its lookups.
        ("explain select 1::d", "type \"d\""),
        ("prepare q as select 1 === 2", "operator ==="),
        ("declare c cursor for select * from t where a in (1)", "operator ="),
        ("copy (select lower(1)) to stdout", "function lower()"),
        ("with x as (select p.fullname from people p) select * from x", "field selection .fullname"),
        // Relations with a column of a flagged type.
        ("select m from moods", "reading table \"public.moods\" is not allowed for a read-only identity: its column m has type public.mood"),
        ("select * from public.moods", "reading table \"public.moods\""),
        ("copy (select m::text from moods) to stdout", "reading table \"public.moods\""),
    ])
    func refused(sql: String, message: String) {
        let classifier = StatementClassifier()
        #expect(classifier.classify(sql: sql).isAllowedForReadOnly, "refused even without the catalog: \(sql)")
        let refusal = classifier.classify(sql: sql, catalog: Self.snapshot).firstRefusal
        #expect(refusal?.message.hasPrefix(message) == true, "\(sql): \(String(describing: refusal?.message))")
        #expect(refusal?.sqlState == "25006")
        #expect(refusal?.isPostgreSQLText == false)
    }

    @Test(arguments: [
        "select pg_catalog.lower('X'), pg_catalog.sum(a) from t",
        "select upper('x'), count(*), max(a) from t",
        "select 1 operator(pg_catalog.+) 2",
        "select a::int, 'x'::text, null::pg_catalog.int4, '1'::other.d from t",
        "select t.a, t.* from t",
        "select (p).name from people p",
        "select * from mood_history",
        "select 1 - 2 * 3 / 4",
        "select * from t where a is null and a > 1 or a < 3",
        "select pg_catalog.initcap_not from t",
        // A row's field: the whole row reaches neither tally(integer) nor a domain over text
        // (false positives found in review: SQLAlchemy's select of an `email` column, asyncpg's
        // introspection beside a function name(integer)).
        "select c.tally, c.email, public.contacts.email, s.tally from contacts c, public.contacts, (select 1 as tally) s",
        "select c.tally from generate_series(1, 2) g, contacts c",
        "select c.email from contacts c join lateral unnest(array[1]) as u on true",
        // Columns the statement gives a function in FROM are columns (found in review 18), and
        // FROM items named like current_schema do not name c.
        "select u.tally from unnest(array[1]) as u(tally)",
        "select x.tally from jsonb_to_recordset('[]') as x(tally int)",
        "select r.tally from rows from (jsonb_to_recordset('[]') as (tally int)) r",
        "select c.tally from contacts c, current_schema, coalesce(1, 2) k",
        "lock table moods in access share mode",
        // pg_dump's data: output functions only, no cast or domain check runs.
        "copy public.moods (m) to stdout",
    ])
    func allowed(sql: String) {
        let result = StatementClassifier().classify(sql: sql, catalog: Self.snapshot)
        #expect(result.isAllowedForReadOnly, "\(sql): \(String(describing: result.firstRefusal))")
    }

    /// Implied operators without user operators of those symbols.
    @Test(arguments: [
        "select * from t where a in (1, 2) and a between 1 and 2 and b like 'x%'",
        "select case a when 1 then 'one' end, nullif(a, 1), a is distinct from 2 from t join u using (a)",
        "select * from t where a = 1 order by a using <",
    ])
    func impliedOperatorsAllowedWithoutUserOperators(sql: String) {
        let result = StatementClassifier().classify(sql: sql, catalog: Self.withoutOperators)
        #expect(result.isAllowedForReadOnly, "\(sql): \(String(describing: result.firstRefusal))")
        #expect(!StatementClassifier().classify(sql: sql, catalog: Self.snapshot).isAllowedForReadOnly)
    }

    @Test func lookupsAreRecordedOnceInWalkOrder() {
        let statement = StatementClassifier().classify(sql: "select a::d, b::d, 1 + 2 + 3 from t where a in (1) and c.f = 1").statements[0]
        #expect(statement.lookups.map(\.description) == ["TYPE d", "OPERATOR +", "OPERATOR =", "ROW ATTRIBUTE f"])
    }

    @Test func parameterTypesOfFlaggedTypesAreRefused() {
        #expect(Self.snapshot.refusal(forParameterTypes: [23, 16420])?.message
                == "a parameter of type OID 16420 is not allowed for a read-only identity: its constraint d_check calls function public.evil(integer)")
        #expect(Self.snapshot.refusal(forParameterTypes: [0, 23, 25]) == nil)
        #expect(CatalogSnapshot.empty.refusal(forParameterTypes: [16420]) == nil)
    }

    @Test func aCastBetweenBuiltInTypesRefusesEverything() {
        let snapshot = CatalogSnapshot(rows: [], objects: [
            .init(kind: .cast, oid: 16500, schema: "", name: "",
                  detail: "a user-defined cast from date to integer calls function public.date_int(date)"),
        ])
        let refusal = StatementClassifier().classify(sql: "select 1", catalog: snapshot).firstRefusal
        #expect(refusal?.message == "statements are not allowed for a read-only identity in this database: a user-defined cast from date to integer calls function public.date_int(date), and PostgreSQL may apply it to any expression of that type")
        // Statements refused for their own reasons keep them.
        #expect(StatementClassifier().classify(sql: "delete from t", catalog: snapshot).firstRefusal?.message
                == "cannot execute DELETE in a read-only transaction")
    }

    /// Lookups depend on identifiers and operators only, so a cached result stays right when
    /// the snapshot changes.
    @Test func cachedResultsFollowTheCurrentSnapshot() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "select lower(1)", catalog: .empty).isAllowedForReadOnly)
        #expect(!cache.classify(sql: "select lower(2)", catalog: Self.snapshot).isAllowedForReadOnly)
        #expect(!cache.classify(sql: "select 2::d", catalog: Self.snapshot).isAllowedForReadOnly)
        #expect(cache.classify(sql: "select 3::d", catalog: .empty).isAllowedForReadOnly)
    }

    /// A relation flagged for its definition keeps that reason when its columns are flagged too.
    @Test func relationReasonsDoNotDuplicate() {
        let snapshot = CatalogSnapshot(rows: [.init(schema: "public", name: "moods", relkind: "v", cause: "function", detail: "public.f()")],
                                       objects: Self.objects)
        #expect(snapshot.restrictedRelations.filter { $0.name == "moods" }.map(\.reason) == ["it calls function public.f()"])
        #expect(snapshot != Self.snapshot)
        #expect(CatalogSnapshot(rows: [], objects: Self.objects) == Self.snapshot)
    }
}
