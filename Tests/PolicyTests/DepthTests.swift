import Testing
@testable import Policy

/// Hostile shapes must not crash the proxy: deep nesting is refused by the parser's own
/// stack-depth check, long flat lists are walked iteratively.
@Suite struct DepthTests {
    @Test func deeplyNestedExpressionIsRefusedNotCrashing() {
        let depth = 100_000
        let sql = "select " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth)
        let result = StatementClassifier().classify(sql: sql)
        #expect(!result.isAllowedForReadOnly)
    }

    @Test func deeplyNestedSubqueriesWithAWriterDeepInside() {
        let depth = 200
        var sql = "select pg_terminate_backend(1)"
        for _ in 0..<depth { sql = "select * from (\(sql)) s" }
        let result = StatementClassifier().classify(sql: sql)
        #expect(result.firstRefusal?.message == "function pg_terminate_backend() is not allowed for a read-only identity")
    }

    @Test func longInListIsAllowed() {
        let list = (0..<20_000).map(String.init).joined(separator: ",")
        let result = StatementClassifier().classify(sql: "select * from t where a in (\(list))")
        #expect(result.isAllowedForReadOnly)
    }
}
