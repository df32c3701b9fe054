import Testing
@testable import Policy

/// The fast cache key must agree with pg_query_normalize wherever it is used.
@Suite struct LiteralMaskTests {
    @Test func masksLiteralsAndRebuildsTheNormalizedText() throws {
        let mask = try #require(LiteralMask("SELECT abalance FROM pgbench_accounts WHERE aid = 12345 AND b = 'it''s' AND c = $2;"))
        #expect(mask.literals.count == 2)
        #expect(mask.highestParameter == 2)
        #expect(mask.normalizedForm() == "SELECT abalance FROM pgbench_accounts WHERE aid = $3 AND b = $4 AND c = $2;")
        #expect(mask.normalizedForm() == CachingStatementClassifier.normalized(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 12345 AND b = 'it''s' AND c = $2;"))
        #expect(LiteralMask("select 1")?.key == LiteralMask("select 99.5")?.key)
        #expect(LiteralMask("select 1")?.key != LiteralMask("select '1'")?.key)
    }

    @Test(arguments: [
        "select \"a\" from t", "select $$x$$", "select E'\\n'", "select 1 -- c", "select /* c */ 1",
        "select B'101'", "select X'ff'", "select N'x'", "select U&'x'", "select 1e5", "select 0x1f",
        "select 1_000", "select a$b from t", "select 'é'", "select 'a\\'", "select 'unterminated",
        "select `x`", "select 1.", "select .5",
    ])
    func givesUpWhereLexingNeedsMoreContext(_ sql: String) {
        #expect(LiteralMask(sql) == nil, "\(sql)")
    }

    @Test func fastPathOnlyForShapesThatMatchNormalize() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "select * from t where a = 1").isAllowedForReadOnly)
        #expect(cache.fastCount == 1)
        // PostgreSQL folds a negative constant into one literal: the fast mask (which keeps
        // the minus) does not equal the normalized text, so the shape stays on the slow path.
        #expect(cache.classify(sql: "select * from t where a = -1").isAllowedForReadOnly)
        #expect(cache.fastCount == 1)
        // Decisions that read literals are never cached, fast or not.
        #expect(!cache.classify(sql: "select set_config('role', 'x', false)").isAllowedForReadOnly)
        #expect(cache.classify(sql: "select set_config('search_path', 'x', false)").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "select set_config('role', 'x', false)").isAllowedForReadOnly)
        #expect(cache.fastCount == 1)
    }

    /// Every corpus statement, classified through a warm cache with other literal values,
    /// gets the decision a fresh classifier gives.
    @Test func warmCacheAgreesWithFreshClassifierOnTheCorpus() {
        var cache = CachingStatementClassifier()
        let fresh = StatementClassifier()
        let statements = Fixtures.statements("refused-attacks") + Fixtures.statements("allowed-reads")
            + Fixtures.statements("allowed-psql-pgdump")
        for sql in statements { _ = cache.classify(sql: sql) }
        #expect(cache.fastCount > 100)
        for sql in statements {
            let variant = sql.replacingOccurrences(of: "1", with: "7")
            #expect(cache.classify(sql: variant) == fresh.classify(sql: variant), "\(variant)")
            #expect(cache.classify(sql: sql) == fresh.classify(sql: sql), "\(sql)")
        }
    }
}
