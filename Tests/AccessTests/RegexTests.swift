import Config
import XCTest

@testable import Access

/// ARE (PostgreSQL) patterns as the POSIX ERE translation understands them.
final class RegexTests: XCTestCase {
    func matches(_ pattern: String, _ subject: String) throws -> Bool {
        switch PosixRegex.compile(pattern) {
        case .success(let regex): return regex.match(subject) != nil
        case .failure(let error): throw error
        }
    }

    func refusal(_ pattern: String) -> String? {
        PosixRegex.compile(pattern).failureValue?.message
    }

    func testTranslatedEscapes() throws {
        XCTAssertTrue(try matches(#"^test_\d+$"#, "test_42"))
        XCTAssertFalse(try matches(#"^test_\d+$"#, "test_dd"), "\\d is a digit class, not the letter d")
        XCTAssertTrue(try matches(#"^\w+\s\S+$"#, "ab_1 x-y"))
        XCTAssertTrue(try matches(#"\Aab\Z"#, "ab"))
        XCTAssertFalse(try matches(#"\Aab\Z"#, "xab"))
        XCTAssertTrue(try matches(#"\mfoo\M"#, "a foo b"))
        XCTAssertFalse(try matches(#"\yfoo\y"#, "afoob"))
        XCTAssertTrue(try matches(#"^(.*)@example\.com$"#, "a@example.com"))
        XCTAssertFalse(try matches(#"^(.*)@example\.com$"#, "a@exampleXcom"))
        XCTAssertTrue(try matches(#"^[]a]+$"#, "]a]"), "a leading ] in brackets is literal")
        XCTAssertTrue(try matches(#"^[[:alpha:]]+$"#, "abc"))
        XCTAssertTrue(try matches(#"^[^@]+$"#, "abc"))
    }

    func testUntranslatableConstructsAreRefused() {
        XCTAssertEqual(refusal("(?:a)b"), "\"(?\" constructs (non-capturing groups, lookaround, options) are not supported by Portcullis")
        XCTAssertEqual(refusal("a(?=b)"), "\"(?\" constructs (non-capturing groups, lookaround, options) are not supported by Portcullis")
        XCTAssertEqual(refusal("a+?"), "non-greedy quantifiers are not supported by Portcullis")
        XCTAssertEqual(refusal("a{1,2}?"), "non-greedy quantifiers are not supported by Portcullis")
        XCTAssertEqual(refusal(#"[\d]"#), "backslashes inside bracket expressions are not supported by Portcullis")
        XCTAssertEqual(refusal("***:abc"), "\"***\" directors are not supported by Portcullis")
        XCTAssertNil(refusal(#"a\?b"#), "an escaped ? is a literal, not a quantifier")
        XCTAssertEqual(refusal(#"\x41"#), #"the escape \x is not supported by Portcullis"#)
        XCTAssertEqual(refusal(#"a\qb"#), #"the escape \q is not supported by Portcullis"#)
    }

    func testEscapesWhoseMeaningDiffersBetweenDialects() throws {
        XCTAssertTrue(try matches(#"^a\<b$"#, "a<b"), "ARE: \\< is a literal <, not glibc's word start")
        XCTAssertTrue(try matches(#"^a\Bb$"#, #"a\b"#), "ARE: \\B is a backslash")
        XCTAssertTrue(try matches(#"^a\bb$"#, "a\u{08}b"), "ARE: \\b is a backspace")
        XCTAssertEqual(refusal(#"^(a)\1$"#), "back-references are not supported by Portcullis")
        XCTAssertTrue(try matches(#"^a\.b$"#, "a.b"))
        XCTAssertFalse(try matches(#"^a\.b$"#, "axb"))
    }

    /// PostgreSQL 15 (`SELECT 'a' ~ pattern`): counts above 255 are "invalid repetition
    /// count(s)", and nested repetitions that expand to 9^6 or 255^3 copies are "regular
    /// expression is too complex". glibc would accept them and take gigabytes to compile (the
    /// fuzzer's out-of-memory). Here nested repetition is refused outright and flat patterns
    /// beyond 1,000 units are too complex; below that, repetition still works.
    func testRepetitionCountsAndExpansionAreBoundedAsPostgreSQLBoundsThem() throws {
        XCTAssertEqual(refusal("a{1,256}"), "invalid repetition count(s)")
        XCTAssertEqual(refusal("a{256}"), "invalid repetition count(s)")
        XCTAssertEqual(refusal("(a{1,32767})"), "invalid repetition count(s)")
        // PostgreSQL's "too complex" examples; here nested repetition is refused before that.
        XCTAssertEqual(refusal("((a{1,255}){1,255}){1,255}"), "nested repetition (as in \"(a+)*\") is not supported by Portcullis")
        XCTAssertEqual(refusal("(((((a{1,9}){1,9}){1,9}){1,9}){1,9}){1,9}"), "nested repetition (as in \"(a+)*\") is not supported by Portcullis")
        XCTAssertEqual(refusal("a{255}b{255}c{255}d{255}"), "regular expression is too complex")
        XCTAssertEqual(refusal("x|" + String(repeating: "(ab)+", count: 2000)), "regular expression is too complex")
        XCTAssertTrue(try matches("^a{1,255}$", String(repeating: "a", count: 255)))
        XCTAssertFalse(try matches("^a{1,255}$", String(repeating: "a", count: 256)))
        XCTAssertTrue(try matches("^(ab|c[]d]){1,20}x{0,}$", "abc]abxx"))
        XCTAssertNil(refusal("((a{,255}){,255}){,255}"), "ARE: a brace before a non-digit is a literal")
        XCTAssertEqual(RegexExpansionBound.refusal("a{,255}b{,255}c{,255}d{,255}"), RegexCompileError(message: "regular expression is too complex"),
                       "glibc's {,n} is {0,n}: bounded too, should a pattern ever reach regcomp that way")
        XCTAssertTrue(try matches("^a{,2}$", "a{,2}"))
        XCTAssertFalse(try matches("^a{,2}$", "aa"))
        XCTAssertTrue(try matches("^a{x}{$", "a{x}{"))
    }

    /// What the fuzzer and an attack review found glibc slow or greedy on, refused before
    /// regcomp; everyday patterns pass. Each refused pattern took (measured with regcomp and
    /// regexec directly): about 1 GB (`((|){64}){63}`), 350 MB (`((a|){32}){63}`), longer
    /// than 20 s to compile (`(x?|){29,}`, doubling per count), seconds to minutes to match
    /// a user name of 24–64 bytes (`^(.*)(.*)(.*)(.*)\4\3\2\1$`, and nested repetition when
    /// groups are extracted for pg_ident.conf's `\1`).
    func testPatternsGlibcCompilesOrMatchesSlowlyAreRefused() throws {
        XCTAssertEqual(refusal("((|){64}){63}"), "a repetition count on what can match the empty string (as in "
                       + "\"(a?){20,}\") is not supported by Portcullis")
        XCTAssertNotNil(refusal("((a|){32}){63}"))
        XCTAssertNotNil(refusal("((){15}){255}"))
        XCTAssertNotNil(refusal("(x?|){29,}"))
        XCTAssertNotNil(refusal("(a{0,3}){5}"))
        XCTAssertEqual(refusal("^(.*)(.*)(.*)(.*)\\4\\3\\2\\1$"), "back-references are not supported by Portcullis")
        XCTAssertEqual(refusal("(a+(||((|[ab]{32}|xx+|.{51}[ab]+)?(a)*))+)?"),
                       "nested repetition (as in \"(a+)*\") is not supported by Portcullis")
        XCTAssertNotNil(refusal("^([a-z]+\\.)+com$"))
        XCTAssertNotNil(refusal("a{2}{3}"), "PostgreSQL refuses stacked bounds too (quantifier operand invalid)")
        XCTAssertEqual(refusal("(|)(|)" + String(repeating: "(|)", count: 300)), "regular expression is too complex")
        // Everyday patterns, and repetition that is neither nested nor of the empty string.
        for pattern in ["^(.*)@example\\.com$", "^(.*)@(.*\\.)?example\\.com$", "^[a-z]{1,32}$", "^(svc_[a-z]+|admin)$",
                        "(a|b)*c", "^(.*)(.*)x$", "((a)?)?", "^(a|aa)*x$", "(|)+"] {
            XCTAssertNil(refusal(pattern), pattern)
        }
        let extracted = try XCTUnwrap(PosixRegex.compile("^(.*)@(.*\\.)?example\\.com$").successValue)
        XCTAssertEqual(extracted.match("alice@db.example.com", groups: 1)?[1], 0..<5)
    }

    func testHbaLineWithRefusedRegexIsALoadError() {
        let result = HbaRules.parse(text: "local /(?i)admin all trust\n", fileName: "f", files: InMemoryConfigFiles())
        XCTAssertEqual(result.failureValue?.description,
                       "f:1: invalid regular expression \"(?i)admin\": \"(?\" constructs (non-capturing groups, lookaround, options) are not supported by Portcullis")
    }
}
