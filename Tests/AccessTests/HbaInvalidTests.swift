import Config
import XCTest

@testable import Access

/// Lines PostgreSQL refuses, and the methods Portcullis refuses: Fixtures/hba_invalid.conf
/// against Fixtures/hba_invalid.expected (which says which texts were checked on PostgreSQL 15).
final class HbaInvalidTests: XCTestCase {
    func testEveryErrorIsReportedWithFileAndLine() throws {
        let path = Fixtures.path("hba_invalid.conf")
        let result = HbaRules.load(path: path, files: FileSystemConfigFiles())
        let errors = try XCTUnwrap(result.failureValue, "a file with errors must be refused as a whole")
        XCTAssertTrue(errors.errors.allSatisfy { $0.file == path })
        let got = errors.errors.map { "\($0.line)|\($0.message)" }
        let expected = try Fixtures.expectedErrors("hba_invalid.expected")
        XCTAssertEqual(got.count, expected.count)
        for (gotLine, expectedLine) in zip(got, expected) {
            XCTAssertEqual(gotLine, expectedLine)
        }
        XCTAssertEqual(errors.description.split(separator: "\n").first.map(String.init),
                       "\(path):3: invalid connection type \"hosts\"")
    }

    func testOneBadLineRefusesTheFile() {
        let text = "local all all trust\nhost all all 10.0.0.0/8 trust bogus=1\n"
        let result = HbaRules.parse(text: text, fileName: "/etc/pg_hba.conf", files: InMemoryConfigFiles())
        XCTAssertEqual(result.failureValue?.description,
                       "/etc/pg_hba.conf:2: unrecognized authentication option name: \"bogus\"")
    }

    func testErrorsInIncludedFilesNameThoseFiles() {
        let files = InMemoryConfigFiles([
            "/etc/pg/conf.d/a.conf": "local all all trust\nlocal all all nonsense\n",
            "/etc/pg/users": "alice\n",
        ])
        let text = "include_dir conf.d\nlocal all @users trust\nlocal all @missing trust\n"
        let result = HbaRules.parse(text: text, fileName: "/etc/pg/pg_hba.conf", files: files)
        XCTAssertEqual(result.failureValue?.description, """
            /etc/pg/conf.d/a.conf:2: invalid authentication method "nonsense"
            /etc/pg/pg_hba.conf:3: could not open file "/etc/pg/missing": No such file or directory
            """)
    }

    func testCertImpliesVerifyFullAndAcceptsExplicitVerifyFull() throws {
        let text = "hostssl all all all cert\nhostssl all all all cert clientcert=verify-full\n"
        let rules = try XCTUnwrap(HbaRules.parse(text: text, fileName: "f", files: InMemoryConfigFiles()).successValue)
        XCTAssertEqual(rules.rules.map(\.options.clientCert), [.verifyFull, .verifyFull])
    }

    func testErrorLineNumbersCountContinuationLines() {
        let text = "local all \\\n all trust\nlocal all all \\\n  nonsense\n"
        let result = HbaRules.parse(text: text, fileName: "f", files: InMemoryConfigFiles())
        XCTAssertEqual(result.failureValue?.errors, [ConfigError(file: "f", line: 3, message: "invalid authentication method \"nonsense\"")])
    }
}

final class HbaNameComparisonTests: XCTestCase {
    /// PostgreSQL compares names with strcmp; Swift's == would equate canonically equivalent text.
    func testNamesCompareByteForByte() throws {
        let precomposed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        let rules = try XCTUnwrap(HbaRules.parse(text: "local \(precomposed) \(precomposed) trust\n", fileName: "f",
                                                 files: InMemoryConfigFiles()).successValue)
        let same = ConnectionAttempt(kind: .local, clientAddress: nil, database: precomposed, user: precomposed)
        let other = ConnectionAttempt(kind: .local, clientAddress: nil, database: decomposed, user: precomposed)
        XCTAssertEqual(rules.firstMatch(same, environment: HbaEnvironment())?.lineNumber, 1)
        XCTAssertNil(rules.firstMatch(other, environment: HbaEnvironment()))
    }
}
