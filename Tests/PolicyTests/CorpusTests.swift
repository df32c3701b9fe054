import Testing
@testable import Policy

/// Fixture corpora: statements that must be refused for a read-only identity, and reads
/// (psql -E \d-family and pg_dump queries captured from PostgreSQL 15, plus hand-written
/// reads) that must be allowed.
@Suite struct CorpusTests {
    let classifier = StatementClassifier()

    @Test func attackCorpusIsLargeEnough() {
        #expect(Fixtures.statements("refused-attacks").count >= 100)
        #expect(Fixtures.statements("allowed-reads").count + Fixtures.statements("allowed-psql-pgdump").count >= 60)
    }

    /// Obfuscations must be refused for what they do, not because they fail to parse:
    /// only the four deliberately malformed statements may be syntax errors.
    @Test func onlyTheDeliberateSyntaxErrorsFailToParse() {
        let unparsed = Fixtures.statements("refused-attacks").filter {
            classifier.classify(sql: $0).syntaxError != nil
        }
        #expect(unparsed == ["selec 1", "SELECT * FORM t", "select 'unterminated", "select 1; delet from t"])
    }

    @Test(arguments: Fixtures.statements("refused-attacks"))
    func attackIsRefused(sql: String) {
        let result = classifier.classify(sql: sql)
        #expect(!result.isAllowedForReadOnly, "allowed: \(sql)")
        #expect(result.firstRefusal != nil)
    }

    @Test(arguments: Fixtures.statements("allowed-reads") + Fixtures.statements("allowed-psql-pgdump")
                     + Fixtures.statements("allowed-psql-describe"))
    func readIsAllowed(sql: String) {
        let result = classifier.classify(sql: sql)
        #expect(result.isAllowedForReadOnly, "refused: \(sql) -> \(String(describing: result.firstRefusal))")
        #expect(!result.statements.isEmpty)
    }

    @Test(arguments: Fixtures.statements("refused-attacks") + Fixtures.statements("allowed-reads"))
    func cachedDecisionEqualsUncached(sql: String) {
        var cache = CachingStatementClassifier()
        let expected = classifier.classify(sql: sql)
        #expect(cache.classify(sql: sql) == expected)
        #expect(cache.classify(sql: sql) == expected)
    }
}
