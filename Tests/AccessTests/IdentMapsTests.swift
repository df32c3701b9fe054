import Config
import XCTest

@testable import Access

/// check_usermap() semantics: Fixtures/ident.cases against Fixtures/ident.conf, and load errors
/// of Fixtures/ident_invalid.conf (checked on PostgreSQL 15, see ident_invalid.expected).
final class IdentMapsTests: XCTestCase {
    func loadMaps() throws -> IdentMaps {
        switch IdentMaps.load(path: Fixtures.path("ident.conf"), files: FileSystemConfigFiles()) {
        case .success(let maps): return maps
        case .failure(let errors): throw errors
        }
    }

    func testCaseTable() throws {
        let maps = try loadMaps()
        let rows = try Fixtures.table("ident.cases")
        XCTAssertGreaterThan(rows.count, 20)
        for row in rows {
            XCTAssertEqual(row.count, 5, "\(row)")
            let result = maps.evaluate(map: row[0] == "-" ? "" : row[0], systemUser: row[1], databaseUser: row[2],
                                       caseInsensitive: row[3] == "yes",
                                       isMember: { user, role in user == "jim" && role == "operators" })
            let got = switch result {
            case .matched: "yes"
            case .notMatched: "no"
            case .error: "error"
            }
            XCTAssertEqual(got, row[4], "case \(row.joined(separator: " | "))")
            XCTAssertEqual(maps.check(map: row[0] == "-" ? "" : row[0], systemUser: row[1], databaseUser: row[2],
                                      caseInsensitive: row[3] == "yes",
                                      isMember: { user, role in user == "jim" && role == "operators" }),
                           row[4] == "yes")
        }
    }

    func testMatchedLineAndErrorText() throws {
        let maps = try loadMaps()
        guard case .matched(let line?) = maps.evaluate(map: "certmap", systemUser: "svc-x", databaseUser: "svc_x_role") else {
            return XCTFail("svc-x should map through the included file")
        }
        XCTAssertTrue(line.fileName.hasSuffix("ident.d/extra.conf"))
        XCTAssertEqual(line.lineNumber, 1)
        XCTAssertEqual(maps.evaluate(map: "nogroup", systemUser: "abc", databaseUser: "abc"),
                       .error(#"regular expression "^[a-z]+$" has no subexpressions as requested by backreference in "\1""#))
    }

    func testInvalidLines() throws {
        let path = Fixtures.path("ident_invalid.conf")
        let errors = try XCTUnwrap(IdentMaps.load(path: path, files: FileSystemConfigFiles()).failureValue)
        XCTAssertEqual(errors.errors.map { "\($0.line)|\($0.message)" }, try Fixtures.expectedErrors("ident_invalid.expected"))
        XCTAssertTrue(errors.errors.allSatisfy { $0.file == path })
    }

    func testEmptyFileIsValid() throws {
        let maps = try XCTUnwrap(IdentMaps.parse(text: "# none\n", fileName: "/x/pg_ident.conf", files: InMemoryConfigFiles()).successValue)
        XCTAssertEqual(maps.lines, [])
        XCTAssertFalse(maps.check(map: "m", systemUser: "a", databaseUser: "a"))
    }
}
