import Glibc
import CPgQuery
import Policy

// `make bench` runs this release binary: nanoseconds per classification of a small workload,
// cold (parse + tree walk every time), cached (normalized-text lookup) and cached plus the
// catalog check against a PostGIS-sized snapshot (CatalogSnapshot), plus the
// libpg_query entry points the classifier chose between. Prints a Markdown table.

let workload: [(String, String)] = [
    ("psql \\dt (catalog query)", "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3"),
    ("app point select", "select id, name, created_at from accounts where id = 42 and status = 'active' order by created_at desc limit 10"),
    ("pgbench -S", "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
    ("CTE hiding DELETE", "with x as (delete from t where a = 1 returning *) select count(*) from x"),
    ("INSERT", "insert into events (kind, payload) values ('login', '{\"a\":1}')"),
]

func nanosecondsPerCall(iterations: Int, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    let elapsed = clock.measure { for _ in 0..<iterations { body() } }
    let (seconds, attoseconds) = elapsed.components
    return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
}

if CommandLine.arguments.dropFirst().first == "depth" {
    runDepthProbe()
    exit(0)
}
let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 20_000
let classifier = StatementClassifier()
// A catalog the size of a PostGIS database's (about 1,000 user functions, 200 operators, 50
// flagged types, 20 restricted relations), none of whose names the workload uses: the cost
// of the catalog check on statements it lets through.
let catalog = CatalogSnapshot(
    rows: (0..<20).map { .init(schema: "public", name: "view_\($0)", relkind: "v", cause: "function", detail: "public.f()") },
    objects: (0..<1000).map { .init(kind: .function, oid: UInt32(20000 + $0), schema: "public", name: "fn_\($0)", detail: "public.fn_\($0)()") }
        + (0..<200).map { .init(kind: .operator, oid: UInt32(30000 + $0), schema: "public", name: "&&\($0 % 10)", detail: "public.op()") }
        + (0..<50).map { .init(kind: .type, oid: UInt32(40000 + $0), schema: "public", name: "type_\($0)", detail: "flagged") })
print("| statement | cold ns | cached ns | cached + catalog ns | parse (protobuf) ns | + unpack ns | parse (JSON text) ns | normalize ns |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
var sink = 0
for (name, sql) in workload {
    // Warm up allocator and caches once.
    _ = classifier.classify(sql: sql)
    let cold = nanosecondsPerCall(iterations: iterations) {
        if classifier.classify(sql: sql).isAllowedForReadOnly { sink += 1 }
    }
    var cache = CachingStatementClassifier()
    _ = cache.classify(sql: sql)
    let cached = nanosecondsPerCall(iterations: iterations) {
        if cache.classify(sql: sql).isAllowedForReadOnly { sink += 1 }
    }
    var catalogCache = CachingStatementClassifier()
    _ = catalogCache.classify(sql: sql, catalog: catalog)
    let withCatalog = nanosecondsPerCall(iterations: iterations) {
        if catalogCache.classify(sql: sql, catalog: catalog).isAllowedForReadOnly { sink += 1 }
    }
    let protobufParse = nanosecondsPerCall(iterations: iterations) {
        pg_query_free_protobuf_parse_result(pg_query_parse_protobuf(sql))
    }
    let protobufUnpack = nanosecondsPerCall(iterations: iterations) {
        let result = pg_query_parse_protobuf(sql)
        let tree = result.parse_tree.data.withMemoryRebound(to: UInt8.self, capacity: result.parse_tree.len) {
            pg_query__parse_result__unpack(nil, result.parse_tree.len, $0)
        }
        pg_query__parse_result__free_unpacked(tree, nil)
        pg_query_free_protobuf_parse_result(result)
    }
    let jsonParse = nanosecondsPerCall(iterations: iterations) {
        pg_query_free_parse_result(pg_query_parse(sql))
    }
    let normalize = nanosecondsPerCall(iterations: iterations) {
        let result = pg_query_normalize(sql)
        pg_query_free_normalize_result(result)
    }
    print("| \(name) | \(Int(cold)) | \(Int(cached)) | \(Int(withCatalog)) | \(Int(protobufParse)) | \(Int(protobufUnpack - protobufParse)) | \(Int(jsonParse)) | \(Int(normalize)) |")
}
// The same statement gets the same decision every time, cached or not.
precondition(sink % iterations == 0, "decisions changed between runs")
