import Testing
@testable import Policy

/// Catalog-aware refusal with a fixed snapshot: the rows ``CatalogSnapshot/query`` returns
/// for the schema ``CatalogLiveTests`` creates in PostgreSQL 15.
@Suite struct CatalogSnapshotTests {
    static let rows: [CatalogSnapshot.Row] = [
        .init(schema: "public", name: "v_calls_f", relkind: "v", cause: "function", detail: "public.f()"),
        .init(schema: "public", name: "v_on_v", relkind: "v", cause: "function", detail: "public.f()",
              viaSchema: "public", viaName: "v_calls_f", viaRelkind: "v"),
        .init(schema: "public", name: "Mixed Case", relkind: "v", cause: "function", detail: "public.f()",
              viaSchema: "public", viaName: "v_calls_f", viaRelkind: "v"),
        .init(schema: "other", name: "v_calls_g", relkind: "v", cause: "function", detail: "public.g(x integer)"),
        .init(schema: "public", name: "mv_calls_f", relkind: "m", cause: "function", detail: "public.f()"),
        .init(schema: "public", name: "ft", relkind: "f", cause: "foreign table", detail: "public.ft"),
        .init(schema: "public", name: "v_on_ft", relkind: "v", cause: "foreign table", detail: "public.ft"),
        .init(schema: "public", name: "rls_t", relkind: "r", cause: "function", detail: "public.f()"),
        .init(schema: "public", name: "v_on_rls", relkind: "v", cause: "function", detail: "public.f()",
              viaSchema: "public", viaName: "rls_t", viaRelkind: "r"),
        .init(schema: "public", name: "parent", relkind: "p", cause: "foreign table", detail: "public.child2"),
        .init(schema: "public", name: "child2", relkind: "f", cause: "foreign table", detail: "public.child2"),
        .init(schema: "public", name: "v_op", relkind: "v", cause: "function", detail: "public.h(integer, integer)"),
        .init(schema: "public", name: "v_dom", relkind: "v", cause: "function", detail: "public.g(x integer)"),
        .init(schema: "public", name: "v_setcfg", relkind: "v", cause: "function",
              detail: "pg_catalog.set_config(text, text, boolean)"),
        .init(schema: "public", name: "v_nextval", relkind: "v", cause: "function", detail: "pg_catalog.nextval(regclass)"),
        .init(schema: "public", name: "v_sub", relkind: "v", cause: "function", detail: "public.f()",
              viaSchema: "public", viaName: "v_calls_f", viaRelkind: "v"),
    ]
    static let snapshot = CatalogSnapshot(rows: rows)

    @Test(arguments: Fixtures.statements("catalog-refused"))
    func refusedWithTheCatalog(sql: String) {
        let classifier = StatementClassifier()
        #expect(classifier.classify(sql: sql).isAllowedForReadOnly, "refused even without the catalog: \(sql)")
        let result = classifier.classify(sql: sql, catalog: Self.snapshot)
        #expect(!result.isAllowedForReadOnly, "allowed: \(sql)")
        #expect(result.firstRefusal?.sqlState == "25006")
        #expect(result.firstRefusal?.message.hasPrefix("reading ") == true)
    }

    @Test(arguments: Fixtures.statements("catalog-allowed"))
    func allowedWithTheCatalog(sql: String) {
        let result = StatementClassifier().classify(sql: sql, catalog: Self.snapshot)
        #expect(result.isAllowedForReadOnly, "refused: \(sql) -> \(String(describing: result.firstRefusal))")
    }

    @Test func fixturesAreNotEmpty() {
        #expect(Fixtures.statements("catalog-refused").count >= 20)
        #expect(Fixtures.statements("catalog-allowed").count >= 10)
    }

    @Test(arguments: [
        ("select * from v_calls_f",
         "reading view \"public.v_calls_f\" is not allowed for a read-only identity: it calls function public.f()"),
        ("select * from v_on_v",
         "reading view \"public.v_on_v\" is not allowed for a read-only identity: it reads view public.v_calls_f, which calls function public.f()"),
        ("select * from ft",
         "reading foreign table \"public.ft\" is not allowed for a read-only identity: it is a foreign table; reading it runs a query on another server (its server is not listed in readable_foreign_servers)"),
        ("select * from v_on_ft",
         "reading view \"public.v_on_ft\" is not allowed for a read-only identity: it reads foreign table public.ft"),
        ("select * from rls_t",
         "reading table \"public.rls_t\" is not allowed for a read-only identity: its row-level security policy, an index, extended statistics or a CHECK constraint on it calls function public.f()"),
        ("select * from v_on_rls",
         "reading view \"public.v_on_rls\" is not allowed for a read-only identity: it reads table public.rls_t, whose row-level security policy, an index, extended statistics or a CHECK constraint calls function public.f()"),
        ("select * from parent",
         "reading partitioned table \"public.parent\" is not allowed for a read-only identity: it reads foreign table public.child2"),
        ("select * from mv_calls_f",
         "reading materialized view \"public.mv_calls_f\" is not allowed for a read-only identity: it calls function public.f()"),
    ])
    func refusalText(sql: String, message: String) {
        let refusal = StatementClassifier().classify(sql: sql, catalog: Self.snapshot).firstRefusal
        #expect(refusal?.message == message)
        #expect(refusal?.sqlState == "25006")
        #expect(refusal?.isPostgreSQLText == false)
    }

    @Test func unqualifiedNamesMatchEverySchemaQualifiedOnlyTheirOwn() {
        let snapshot = Self.snapshot
        #expect(snapshot.restriction(for: ObjectReference(kind: .relation, schema: nil, name: "v_calls_g", access: .read))?
            .qualifiedName == "other.v_calls_g")
        #expect(snapshot.restriction(for: ObjectReference(kind: .relation, schema: "other", name: "v_calls_g", access: .read)) != nil)
        #expect(snapshot.restriction(for: ObjectReference(kind: .relation, schema: "public", name: "v_calls_g", access: .read)) == nil)
        #expect(snapshot.restriction(for: ObjectReference(kind: .function, schema: nil, name: "v_calls_f", access: .call)) == nil)
        let temporary = CatalogSnapshot(rows: [.init(schema: "pg_temp_3", name: "tv", relkind: "v", cause: "function",
                                                     detail: "public.f()")])
        #expect(temporary.restriction(for: ObjectReference(kind: .relation, schema: "pg_temp", name: "tv", access: .read)) != nil)
        #expect(temporary.restriction(for: ObjectReference(kind: .relation, schema: "public", name: "tv", access: .read)) == nil)
    }

    /// The cache holds literal-free results; the catalog check runs after it, so a new
    /// snapshot applies to texts cached before it existed, and an emptied one stops refusing.
    @Test func cachedResultsFollowTheCurrentSnapshot() {
        var cache = CachingStatementClassifier()
        let sql = "select * from v_calls_f where id = 1"
        #expect(cache.classify(sql: sql, catalog: .empty).isAllowedForReadOnly)
        #expect(cache.count == 1)
        #expect(!cache.classify(sql: "select * from v_calls_f where id = 2", catalog: Self.snapshot).isAllowedForReadOnly)
        #expect(cache.count == 1)
        #expect(cache.classify(sql: sql, catalog: CatalogSnapshot(rows: [])).isAllowedForReadOnly)
        #expect(cache.classify(sql: sql).isAllowedForReadOnly)
    }

    @Test func existingRefusalsAreKept() {
        let result = StatementClassifier().classify(sql: "delete from v_calls_f", catalog: Self.snapshot)
        #expect(result.firstRefusal?.message == "cannot execute DELETE in a read-only transaction")
    }

    @Test func queryListsTheAllowListWithoutSetConfigOrSequenceWriters() {
        let query = CatalogSnapshot.query
        #expect(query.contains("'lower'"))
        #expect(query.contains("'pg_get_viewdef'"))
        #expect(!query.contains("'set_config'"))
        #expect(!query.contains("'nextval'"))
        #expect(!query.contains("'setval'"))
    }
}
