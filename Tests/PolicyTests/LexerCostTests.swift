import XCTest
@testable import Policy

/// Texts PostgreSQL's lexer would take quadratic time on never reach libpg_query: refused with
/// 54001 before any scan, parse, normalize or split (found in review: 60 KB of nested comment
/// starts held a classifier thread for 15–30 s).
final class LexerCostTests: XCTestCase {
    func testLongOperatorRunsAreRefusedBeforeTheLexer() {
        let attacks = [
            "SELECT n /*" + String(repeating: "/*", count: 15_000) + String(repeating: "*/", count: 15_000) + "*/",
            "SELECT 1 " + String(repeating: "+-", count: 20_000) + " 1",
            "SELECT 1 " + String(repeating: "<", count: 300),
        ]
        for sql in attacks {
            XCTAssertEqual(StatementClassifier().classify(sql: sql).syntaxError?.sqlState, "54001")
            var cache = CachingStatementClassifier()
            XCTAssertEqual(cache.classify(sql: sql).syntaxError?.sqlState, "54001")
            XCTAssertEqual(CachingStatementClassifier.classifyMiss(sql: sql, keyed: true).result.syntaxError?.sqlState, "54001")
            XCTAssertNil(StatementSplitter.statementOffsets(sql))
            XCTAssertEqual(SecretMasker.mask(sql), "<unparsable statement redacted>")
        }
    }

    /// Runs as long as ordinary SQL has: banner comments, separator lines, the longest operator.
    func testOrdinaryRunsPass() {
        let ordinary = [
            "/" + String(repeating: "*", count: 120) + "/\nSELECT 1",
            "SELECT 1 -- " + String(repeating: "=", count: 200),
            "SELECT 1 " + String(repeating: "~", count: 63) + " 2",
        ]
        for sql in ordinary {
            XCTAssertNotEqual(StatementClassifier().classify(sql: sql).syntaxError?.sqlState, "54001", sql)
        }
        XCTAssertEqual(LexerCost.longestOperatorRun("a <= b AND c <> d"), 2)
        XCTAssertEqual(LexerCost.longestOperatorRun(String(repeating: "-", count: LexerCost.maxOperatorRun)), LexerCost.maxOperatorRun)
        XCTAssertTrue(LexerCost.isBounded(String(repeating: "-", count: LexerCost.maxOperatorRun)))
        XCTAssertFalse(LexerCost.isBounded(String(repeating: "-", count: LexerCost.maxOperatorRun + 1)))
    }
}
