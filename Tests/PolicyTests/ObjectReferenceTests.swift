import Testing
@testable import Policy

/// Relations and functions each statement names (``StatementClassification/objects``).
@Suite struct ObjectReferenceTests {
    struct Case: CustomStringConvertible, Sendable {
        let sql: String
        /// ``ObjectReference/description`` of each object, in parse-tree walk order.
        let objects: [String]
        var description: String { sql }
    }

    static let cases: [Case] = [
        Case(sql: "select 1", objects: []),
        Case(sql: "select * from t", objects: ["READ RELATION t"]),
        Case(sql: "SELECT * FROM Public.\"MixedCase\" m JOIN s.u ON true",
             objects: ["READ RELATION public.MixedCase", "READ RELATION s.u"]),
        Case(sql: "select lower(a), pg_catalog.upper(b), count(*) from t, t",
             objects: ["CALL FUNCTION lower", "CALL FUNCTION pg_catalog.upper", "CALL FUNCTION count",
                       "READ RELATION t"]),
        Case(sql: "insert into t select * from u", objects: ["WRITE RELATION t", "READ RELATION u"]),
        Case(sql: "update s.t set a = 1 from u where u.id = t.id", objects: ["WRITE RELATION s.t", "READ RELATION u"]),
        Case(sql: "delete from t using u where f(u.a)", objects: ["WRITE RELATION t", "READ RELATION u", "CALL FUNCTION f"]),
        Case(sql: "merge into t using u on t.a = u.a when matched then delete",
             objects: ["WRITE RELATION t", "READ RELATION u"]),
        Case(sql: "truncate t, s.u", objects: ["WRITE RELATION t", "WRITE RELATION s.u"]),
        Case(sql: "copy t to stdout", objects: ["READ RELATION t"]),
        Case(sql: "copy t from stdin", objects: ["WRITE RELATION t"]),
        Case(sql: "copy (select * from v) to stdout", objects: ["READ RELATION v"]),
        Case(sql: "select * into n from t", objects: ["WRITE RELATION n", "READ RELATION t"]),
        Case(sql: "create table n as select * from t", objects: ["READ RELATION t", "WRITE RELATION n"]),
        Case(sql: "create view w as select * from t", objects: ["WRITE RELATION w", "READ RELATION t"]),
        Case(sql: "alter table t add column b int", objects: ["WRITE RELATION t"]),
        Case(sql: "grant select on t to r", objects: ["WRITE RELATION t"]),
        Case(sql: "lock table t in access share mode", objects: ["READ RELATION t"]),
        Case(sql: "explain select * from v", objects: ["READ RELATION v"]),
        Case(sql: "explain analyze delete from t", objects: ["WRITE RELATION t"]),
        Case(sql: "with x as (delete from t returning *) select * from x",
             objects: ["READ RELATION x", "WRITE RELATION t"]),
        Case(sql: "declare c cursor for select * from v", objects: ["READ RELATION v"]),
        Case(sql: "prepare p as select * from v where a = $1", objects: ["READ RELATION v"]),
        Case(sql: "select * from t where a in (select a from u) and exists (select from w)",
             objects: ["READ RELATION t", "READ RELATION u", "READ RELATION w"]),
        Case(sql: "select * from generate_series(1, 3) g, lateral f(g)",
             objects: ["CALL FUNCTION generate_series", "CALL FUNCTION f"]),
        Case(sql: "table t", objects: ["READ RELATION t"]),
        Case(sql: "set search_path = public", objects: []),
    ]

    @Test(arguments: cases)
    func objects(_ expected: Case) throws {
        let statement = try #require(StatementClassifier().classify(sql: expected.sql).statements.first)
        #expect(statement.objects.map(\.description) == expected.objects)
    }

    @Test func literalsNeverChangeTheObjectsSoCachedEntriesStayValid() {
        var cache = CachingStatementClassifier()
        let first = cache.classify(sql: "select * from t where a = 1 and f('x')")
        let second = cache.classify(sql: "select * from t where a = 2 and f('y')")
        #expect(cache.count == 1)
        #expect(first.statements.first?.objects == second.statements.first?.objects)
        #expect(second.statements.first?.objects.map(\.description) == ["READ RELATION t", "CALL FUNCTION f"])
    }

    @Test func multiStatementObjectsArePerStatement() {
        let result = StatementClassifier().classify(sql: "select * from a; select * from b")
        #expect(result.statements.map { $0.objects.map(\.qualifiedName) } == [["a"], ["b"]])
    }
}
