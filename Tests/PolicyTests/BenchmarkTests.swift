import CPgQuery
import Testing
@testable import Policy

/// Prints ns per classification (cold and cached) and the cost of the libpg_query entry
/// points the design chose between. Timings are printed, never asserted.
@Suite struct BenchmarkTests {
    static let workload = [
        "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3",
        "select id, name, created_at from accounts where id = 42 and status = 'active' order by created_at desc limit 10",
        "with x as (delete from t where a = 1 returning *) select count(*) from x",
        "insert into events (kind, payload) values ('login', '{\"a\":1}')",
    ]

    static func nanosecondsPerCall(iterations: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let elapsed = clock.measure { for _ in 0..<iterations { body() } }
        let (seconds, attoseconds) = elapsed.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
    }

    @Test func printTimings() {
        let classifier = StatementClassifier()
        let iterations = 2000
        for sql in Self.workload {
            var decisions = 0
            let cold = Self.nanosecondsPerCall(iterations: iterations) {
                if classifier.classify(sql: sql).isAllowedForReadOnly { decisions += 1 }
            }
            var cache = CachingStatementClassifier()
            _ = cache.classify(sql: sql)
            let cached = Self.nanosecondsPerCall(iterations: iterations) {
                if cache.classify(sql: sql).isAllowedForReadOnly { decisions += 1 }
            }
            let protobufParse = Self.nanosecondsPerCall(iterations: iterations) {
                let result = pg_query_parse_protobuf(sql)
                pg_query_free_protobuf_parse_result(result)
            }
            let protobufUnpack = Self.nanosecondsPerCall(iterations: iterations) {
                let result = pg_query_parse_protobuf(sql)
                let tree = result.parse_tree.data.withMemoryRebound(to: UInt8.self,
                                                                    capacity: result.parse_tree.len) {
                    pg_query__parse_result__unpack(nil, result.parse_tree.len, $0)
                }
                pg_query__parse_result__free_unpacked(tree, nil)
                pg_query_free_protobuf_parse_result(result)
            }
            let jsonParse = Self.nanosecondsPerCall(iterations: iterations) {
                let result = pg_query_parse(sql)
                pg_query_free_parse_result(result)
            }
            let normalize = Self.nanosecondsPerCall(iterations: iterations) {
                _ = CachingStatementClassifier.normalized(sql)
            }
            let fingerprint = Self.nanosecondsPerCall(iterations: iterations) {
                pg_query_free_fingerprint_result(pg_query_fingerprint(sql))
            }
            print("""
                BENCH \(sql.prefix(40))… cold=\(Int(cold))ns cached=\(Int(cached))ns \
                parse_protobuf=\(Int(protobufParse))ns +unpack=\(Int(protobufUnpack))ns \
                parse_json(no JSON decoding)=\(Int(jsonParse))ns normalize=\(Int(normalize))ns \
                fingerprint=\(Int(fingerprint))ns
                """)
            // The same statement must get the same decision each time, cached or not.
            #expect(decisions == 0 || decisions == 2 * iterations)
        }
    }
}
