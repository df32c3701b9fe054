import Testing
@testable import Policy

@Suite struct CacheTests {
    @Test func literalsShareOneEntry() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "select * from t where a = 1").isAllowedForReadOnly)
        #expect(cache.classify(sql: "select * from t where a = 2").isAllowedForReadOnly)
        #expect(cache.classify(sql: "select * from t where a = 'x'").isAllowedForReadOnly)
        #expect(cache.count == 1)
        #expect(!cache.classify(sql: "delete from t where a = 1").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "delete from t where a = 7").isAllowedForReadOnly)
        #expect(cache.count == 2)
    }

    @Test func setConfigNameIsNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "select set_config('search_path', 'x', false)").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "select set_config('role', 'x', false)").isAllowedForReadOnly)
        #expect(cache.classify(sql: "select set_config('search_path', 'y', false)").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "select set_config('default_transaction_read_only', 'off', false)")
            .isAllowedForReadOnly)
        #expect(cache.count == 0)
    }

    /// Safe values of the read-only flags and lo_open's mode are literals (issue 9.4).
    @Test func readOnlyFlagValuesAndLargeObjectModesAreNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        for (sql, allowed) in [("SET default_transaction_read_only = 'on'", true),
                               ("SET default_transaction_read_only = 'off'", false),
                               ("SET transaction_read_only = 1", true), ("SET transaction_read_only = 0", false),
                               ("select set_config('transaction_read_only', 'yes', true)", true),
                               ("select set_config('transaction_read_only', 'no', true)", false),
                               ("select lo_open(1234, 262144)", true), ("select lo_open(1234, 131072)", false),
                               ("select lo_open(1234, 393216)", false), ("select lo_open(1234, 262144)", true)] {
            #expect(cache.classify(sql: sql).isAllowedForReadOnly == allowed, "\(sql)")
        }
    }

    @Test func explainAnalyzeValueIsNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        // (A plain EXPLAIN of INSERT/UPDATE/DELETE/MERGE is refused too: planning folds defaults.)
        #expect(cache.classify(sql: "explain (analyze 0) create table x as select 1").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "explain (analyze 1) create table x as select 1").isAllowedForReadOnly)
    }

    @Test func setNamesAreKeptInTheKey() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "set search_path = 'a'").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "set role = 'a'").isAllowedForReadOnly)
        #expect(cache.classify(sql: "set search_path = 'b'").isAllowedForReadOnly)
    }

    @Test func searchPathOrderIsNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "set search_path = pg_catalog, evil").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "set search_path = evil, pg_catalog").isAllowedForReadOnly)
        #expect(cache.classify(sql: "set search_path = pg_catalog, evil").isAllowedForReadOnly)
    }

    @Test func transactionModesAreNotConfused() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "begin read only").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "begin read write").isAllowedForReadOnly)
        #expect(cache.classify(sql: "begin read only").isAllowedForReadOnly)
    }

    @Test func pinnedSettingNameIsNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        let pinned = "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = "
        #expect(cache.classify(sql: pinned + "'work_mem'").isAllowedForReadOnly)
        #expect(!cache.classify(sql: pinned + "'default_transaction_read_only'").isAllowedForReadOnly)
        #expect(cache.classify(sql: pinned + "'restrict_nonsystem_relation_kind'").isAllowedForReadOnly)
    }

    @Test func clientEncodingIsNeverHiddenByTheCache() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "set client_encoding = 'UTF8'").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "set client_encoding = 'SJIS'").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "set names 'LATIN1'").isAllowedForReadOnly, "UTF8 only: names are matched as UTF-8")
        #expect(cache.classify(sql: "set names 'utf-8'").isAllowedForReadOnly)
        #expect(!cache.classify(sql: "set names 'GBK'").isAllowedForReadOnly)
    }

    @Test func syntaxErrorsAreNotCached() {
        var cache = CachingStatementClassifier()
        #expect(cache.classify(sql: "selec 1").syntaxError != nil)
        #expect(cache.count == 0)
    }

    @Test func capacityBoundsTheEntries() {
        var cache = CachingStatementClassifier(capacity: 3)
        for column in ["a", "b", "c", "d", "e"] {
            #expect(cache.classify(sql: "select \(column) from t").isAllowedForReadOnly)
        }
        #expect(cache.count <= 3)
        #expect(cache.count >= 1)
    }
}
