import XCTest

@testable import Config

/// Keyword/value syntax per PostgreSQL 34.1.1.1, matching libpq's conninfo_parse.
final class ConnectionStringTests: XCTestCase {
    func pairs(_ text: String) throws -> [String] {
        try ConnectionString.parse(text).map { "\($0.key)=\($0.value)" }
    }

    func testPlainPairs() throws {
        XCTAssertEqual(try pairs("host=localhost port=5432 dbname=mydb"), ["host=localhost", "port=5432", "dbname=mydb"])
        XCTAssertEqual(try pairs("  \thost = db  \n port=1 "), ["host=db", "port=1"])
        XCTAssertEqual(try pairs(""), [])
        XCTAssertEqual(try pairs("   "), [])
    }

    func testQuotedValuesKeepWhitespaceAndEscapes() throws {
        XCTAssertEqual(try pairs("password='a b'"), ["password=a b"])
        XCTAssertEqual(try pairs(#"password='it\'s'"#), ["password=it's"])
        XCTAssertEqual(try pairs(#"password='back\\slash'"#), [#"password=back\slash"#])
        XCTAssertEqual(try pairs("password=''"), ["password="])
        XCTAssertEqual(try pairs("a='x'b=y"), ["a=x", "b=y"], "libpq needs no space after a closing quote")
        XCTAssertEqual(try pairs("a='#;x' b=1"), ["a=#;x", "b=1"])
    }

    func testBackslashEscapesOutsideQuotes() throws {
        XCTAssertEqual(try pairs(#"password=a\ b user=u"#), ["password=a b", "user=u"])
        XCTAssertEqual(try pairs(#"password=it\'s"#), ["password=it's"])
        XCTAssertEqual(try pairs("password=o'brien"), ["password=o'brien"], "a quote inside a value is literal")
    }

    func testWhitespaceAfterEqualsIsSkippedAsInLibpq() throws {
        XCTAssertEqual(try pairs("host= db"), ["host=db"])
        XCTAssertEqual(try pairs("host="), ["host="])
    }

    func testRepeatedKeywordsAreAllReturned() throws {
        XCTAssertEqual(try pairs("port=1 port=2"), ["port=1", "port=2"])
    }

    func testSyntaxErrors() {
        let cases: [(String, String)] = [
            ("host", "missing \"=\" after \"host\" in connection string"),
            ("host db", "missing \"=\" after \"host\" in connection string"),
            // The rest of a secret with white space is not repeated (found in review).
            ("host=h server_password=Tr0ub4dor &3", "missing \"=\" after the value of \"server_password\" or a later one in connection string (a value with white space must be quoted)"),
            ("password='abc'def ghi", "missing \"=\" after the value of \"password\" or a later one in connection string (a value with white space must be quoted)"),
            ("password=abc def=ghi jkl", "missing \"=\" after the value of \"password\" or a later one in connection string (a value with white space must be quoted)"),
            ("=x", "missing keyword before \"=\" in connection string"),
            ("password='abc", "unterminated quoted value for \"password\" in connection string"),
            (#"password='abc\'"#, "unterminated quoted value for \"password\" in connection string"),
            (#"password=abc\"#, "value for \"password\" ends with a lone backslash in connection string"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try ConnectionString.parse(text), text) { error in
                XCTAssertEqual((error as? ConnectionStringError)?.message, message)
            }
        }
    }

    func testErrorsNeverEchoValues() {
        XCTAssertThrowsError(try ConnectionString.parse("password='hunter2")) { error in
            XCTAssertFalse(String(describing: error).contains("hunter2"))
        }
    }

    func testCommentsOnlyWhereAKeywordWouldStart() throws {
        let parsed = try ConnectionString.parse("a=1 ; b=2", allowingComments: true).map { "\($0.key)=\($0.value)" }
        XCTAssertEqual(parsed, ["a=1"])
        let hash = try ConnectionString.parse("a=x#y # note", allowingComments: true).map { "\($0.key)=\($0.value)" }
        XCTAssertEqual(hash, ["a=x#y"])
        XCTAssertThrowsError(try ConnectionString.parse("a=1 ; b=2"), "without comments ';' is a keyword")
    }
}
