import Config
import XCTest

@testable import Access

/// tokenize_auth_file() / next_token() edge cases (src/backend/libpq/hba.c, PostgreSQL 16).
final class TokenizerTests: XCTestCase {
    func lines(_ text: String, files: [String: String] = [:], fileName: String = "/etc/pg/pg_hba.conf") -> [TokenizedLine] {
        var result: [TokenizedLine] = []
        var tokenizer = AuthFileTokenizer(files: InMemoryConfigFiles(files))
        tokenizer.tokenize(text: text, fileName: fileName, depth: 0, into: &result)
        return result
    }

    /// Fields as strings: tokens joined by ",", quoted tokens shown in quotes.
    func fields(_ text: String, files: [String: String] = [:]) -> [[String]] {
        lines(text, files: files).map { line in line.fields.map { $0.map(\.description).joined(separator: ",") } }
    }

    func testWhitespaceCommentsAndBlankLines() {
        XCTAssertEqual(fields("host\tall  all\r\n\n   \n# c\n  local all all trust # t\n"),
                       [["host", "all", "all"], ["local", "all", "all", "trust"]])
        XCTAssertEqual(lines("a b\n\n# x\nc d").map(\.lineNumber), [1, 4])
        XCTAssertEqual(fields("a#b c"), [["a"]], "an unquoted # ends the line even inside a token")
    }

    func testQuoting() {
        XCTAssertEqual(fields(##"local "all" "x y" "a""b" "#" trust"##),
                       [["local", "\"all\"", "\"x y\"", "\"a\"b\"", "\"#\"", "trust"]])
        let tokens = lines(#"a"b c"d "e"f g"h""#)[0].fields.map { $0[0] }
        XCTAssertEqual(tokens, [AuthToken("ab cd"), AuthToken("ef", quoted: true), AuthToken("gh")],
                       "only a quote before the first character makes the token quoted")
        XCTAssertEqual(fields(#""""#), [["\"\""]], "an empty quoted token is a token")
        XCTAssertEqual(fields(#""unterminated quote"#), [["\"unterminated quote\""]], "a missing closing quote runs to the end of line")
    }

    func testCommaLists() {
        XCTAssertEqual(fields(#"a,b,"c d" e"#), [["a,b,\"c d\"", "e"]])
        XCTAssertEqual(fields(#"a, b"#), [["a,b"]], "blanks after a comma continue the list")
        XCTAssertEqual(fields(#"a ,b"#), [["a", "b"]], "a blank before a comma ends the field")
        XCTAssertEqual(fields(#"a,,b ,c"#), [["a,b", "c"]], "leading and doubled commas are skipped")
        XCTAssertEqual(fields(#""a,b",c"#), [["\"a,b\",c"]])
    }

    func testBackslashContinuation() {
        let result = lines("host all \\\nall 10.0.0.0/8 \\\r\n  trust\nlocal all all trust\n")
        XCTAssertEqual(result.map(\.lineNumber), [1, 4])
        XCTAssertEqual(result[0].fields.count, 5)
        XCTAssertEqual(fields("a\\\\\nb"), [["a\\b"]], "only the last backslash continues; the other stays")
        XCTAssertEqual(lines("a\\\\\n\nb").map(\.lineNumber), [1, 3],
                       "a backslash left by a continuation does not continue again onto the empty line")
        XCTAssertEqual(fields("a\\\n\\\nb"), [["ab"]])
        XCTAssertEqual(fields("a b\\"), [["a", "b"]], "a backslash on the last line is dropped")
        XCTAssertEqual(fields("a\\ \nb"), [["a\\"], ["b"]], "a backslash followed by a blank does not continue")
    }

    func testContinuationIsJoinedBeforeCommentsAreSeen() {
        XCTAssertEqual(fields("# a comment \\\nlocal all all trust\nlocal b b trust\n"), [["local", "b", "b", "trust"]],
                       "a comment ending in a backslash swallows the next line, as in PostgreSQL")
    }

    func testAtFileInclusionRelativeToIncludingFile() {
        let files = ["/etc/pg/users": "alice bob # comment\n\"carol x\",@more\n", "/etc/pg/more": "dave\n"]
        XCTAssertEqual(fields("local all x,@users,y trust", files: files),
                       [["local", "all", "x,alice,bob,\"carol x\",dave,y", "trust"]])
        XCTAssertEqual(fields("local all @/etc/pg/users trust", files: files)[0][2], "alice,bob,\"carol x\",dave")
        XCTAssertEqual(fields(#"local all "@users" @ trust"#, files: files)[0], ["local", "all", "\"@users\"", "@", "trust"],
                       "a quoted @name and a lone @ are names")
        XCTAssertEqual(fields("local all @\"users\" trust", files: files)[0][2], "alice,bob,\"carol x\",dave")
    }

    func testAtFileInSubdirectoryResolvesAgainstItsOwnDirectory() {
        let files = ["/etc/pg/sub/list": "@inner\n", "/etc/pg/sub/inner": "zed\n"]
        XCTAssertEqual(fields("local all @sub/list trust", files: files)[0][2], "zed")
    }

    func testMissingAtFileIsAnErrorOfTheReferencingLine() {
        let result = lines("local all all trust\nlocal all @nope trust\n")
        XCTAssertEqual(result.count, 2)
        XCTAssertEqual(result[1].lineNumber, 2)
        XCTAssertEqual(result[1].error, "could not open file \"/etc/pg/nope\": No such file or directory")
    }

    func testIncludeDirectives() {
        let files = [
            "/etc/pg/a.conf": "local a a trust\n",
            "/etc/pg/conf.d/20-b.conf": "local b b trust\n",
            "/etc/pg/conf.d/10-c.conf": "local c c trust\ninclude ../a.conf\n",
            "/etc/pg/conf.d/B.conf": "local B B trust\n",
            "/etc/pg/conf.d/notes.txt": "junk\n",
            "/etc/pg/conf.d/.hidden.conf": "junk\n",
            "/etc/pg/conf.d/.conf": "junk\n",
            "/etc/pg/conf.d/sub.conf/x": "junk\n",
        ]
        let result = lines("include a.conf\ninclude_if_exists missing.conf\ninclude_dir conf.d\nlocal z z trust\n", files: files)
        XCTAssertEqual(result.map { "\($0.fileName):\($0.lineNumber):\($0.fields[1][0].text)" }, [
            "/etc/pg/a.conf:1:a",
            "/etc/pg/conf.d/10-c.conf:1:c",
            "/etc/pg/a.conf:1:a",
            "/etc/pg/conf.d/20-b.conf:1:b",
            "/etc/pg/conf.d/B.conf:1:B",
            "/etc/pg/pg_hba.conf:4:z",
        ], "include_dir reads *.conf in strcmp order (digits, upper case, then lower case)")
    }

    func testIncludeErrors() {
        let result = lines("include nope.conf\ninclude_dir nodir\ninclude_if_exists nope.conf\n", files: ["/etc/pg/x": ""])
        XCTAssertEqual(result.map(\.lineNumber), [1, 2])
        XCTAssertEqual(result.map(\.error), [
            "could not open file \"/etc/pg/nope.conf\": No such file or directory",
            "could not open configuration directory \"/etc/pg/nodir\": No such file or directory",
        ])
    }

    func testIncludeNestingDepthIsLimited() {
        let result = lines("include pg_hba.conf\n", files: ["/etc/pg/pg_hba.conf": "include pg_hba.conf\n"])
        XCTAssertEqual(result.count, 1)
        XCTAssertEqual(result[0].error, "could not open file \"/etc/pg/pg_hba.conf\": maximum nesting depth exceeded")
        XCTAssertEqual(result[0].lineNumber, 1)
    }

    /// Depth bounds how deep, not how wide: 8 self-includes per file are 8^10 files. The
    /// fuzzer found this as an out-of-memory; PostgreSQL itself would expand them all.
    func testSelfIncludingFileStopsAtTheFileLimit() {
        let text = String(repeating: "include pg_hba.conf\n", count: 8)
        let result = lines(text, files: ["/etc/pg/pg_hba.conf": text])
        let errors = result.compactMap(\.error)
        XCTAssertLessThanOrEqual(result.count, AuthFileTokenizer<InMemoryConfigFiles>.maxFilesOpened)
        XCTAssertEqual(errors.last, "could not open file \"/etc/pg/pg_hba.conf\": the authentication file expands to "
                       + "more than 2000 files opened (does an include or @file reference repeat itself?)")
        XCTAssertEqual(HbaRules.parse(text: text, fileName: "/etc/pg/pg_hba.conf",
                                      files: InMemoryConfigFiles(["/etc/pg/pg_hba.conf": text])).failureValue?.errors.last?.message,
                       errors.last)
    }

    /// The same through `@file`: every token of a line names the file itself.
    func testSelfReferencingAtFileStopsAtALimit() {
        let text = "host " + String(repeating: "@pg_hba.conf,", count: 40) + "x all all trust\n"
        let result = lines(text, files: ["/etc/pg/pg_hba.conf": text])
        XCTAssertEqual(result.count, 1)
        XCTAssertNotNil(result[0].error)
        let big = "host " + String(repeating: "@big.list,", count: 20) + "x all all trust\n"
        let list = String(repeating: "someone,", count: 30_000) + "\n"
        let expanded = lines(big, files: ["/etc/pg/big.list": list])
        XCTAssertEqual(expanded.map(\.error), ["could not open file \"/etc/pg/big.list\": the authentication file expands "
                                               + "to more than 4 MB read (does an include or @file reference repeat itself?)"])
    }

    func testIncludeNeedsExactlyTwoFieldsAndIgnoresQuoting() {
        XCTAssertEqual(fields("include a b\n"), [["include", "a", "b"]])
        XCTAssertEqual(lines("\"include\" a.conf\n", files: ["/etc/pg/a.conf": "x y\n"]).map(\.fileName), ["/etc/pg/a.conf"])
    }

    func testPathCanonicalization() {
        XCTAssertEqual(ConfigPath.absolute("../x//y/./z", relativeTo: "/etc/pg/pg_hba.conf"), "/etc/x/y/z")
        XCTAssertEqual(ConfigPath.absolute("/abs/f", relativeTo: "/etc/pg/pg_hba.conf"), "/abs/f")
        XCTAssertEqual(ConfigPath.absolute("f", relativeTo: "pg_hba.conf"), "f")
    }
}

/// Fixtures/hba_tokens.conf was loaded into PostgreSQL 15; pg_hba_file_rules showed exactly
/// these database and user_name arrays, and the error of line 10.
final class TokenizerOracleTests: XCTestCase {
    func testSameFieldsAsPostgreSQL15() throws {
        let result = HbaRules.load(path: Fixtures.path("hba_tokens.conf"), files: FileSystemConfigFiles())
        let errors = try XCTUnwrap(result.failureValue)
        XCTAssertEqual(errors.errors.map { "\($0.line)|\($0.message)" }, ["10|end-of-line before role specification"])

        var lines: [TokenizedLine] = []
        var tokenizer = AuthFileTokenizer(files: FileSystemConfigFiles())
        tokenizer.tokenize(text: try Fixtures.text("hba_tokens.conf"), fileName: Fixtures.path("hba_tokens.conf"), depth: 0, into: &lines)
        let summary = lines.filter { $0.fields.count >= 3 }.map { line in
            "\(line.lineNumber)|\(line.fields[1].map(\.text))|\(line.fields[2].map(\.text))"
        }
        XCTAssertEqual(summary, [
            #"1|["all"]|["postgres"]"#,
            #"2|["a", "b"]|["c"]"#,
            #"3|["a"]|["b"]"#,
            #"4|["a\"b", "x"]|[""]"#,
            #"5|["all", "all"]|["+g", "+g"]"#,
            #"8|["d"]|["e"]"#,
            #"11|["a", "b"]|["i"]"#,
        ])
        XCTAssertEqual(lines.first { $0.lineNumber == 5 }?.fields[1].map(\.isQuoted), [true, false])
    }
}
