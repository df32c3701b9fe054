import Foundation
import XCTest

@testable import Config

/// Runs every file in Fixtures: `invalid-*.ini` must fail with exactly the errors named by its
/// leading `; expect: <line>: <message substring>` comments; `valid-*.ini` must load and is
/// checked against the expectations in `ValidFixtureTests`.
final class FixtureTests: XCTestCase {
    static func fixtureDirectory() throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    }

    static func fixtures(prefix: String) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: fixtureDirectory(), includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasPrefix(prefix) && $0.pathExtension == "ini" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    struct Expectation {
        var line: Int
        var message: String
    }

    static func expectations(in text: String) -> [Expectation] {
        text.split(separator: "\n").prefix { $0.hasPrefix("; expect: ") }.compactMap { line in
            let rest = line.dropFirst("; expect: ".count)
            guard let colon = rest.firstIndex(of: ":"), let number = Int(rest[..<colon]) else { return nil }
            return Expectation(line: number, message: String(rest[rest.index(after: colon)...].dropFirst()))
        }
    }

    func testInvalidFixturesReportEveryExpectedErrorAtItsLine() throws {
        let files = try Self.fixtures(prefix: "invalid-")
        XCTAssertGreaterThan(files.count, 50)
        for file in files {
            let name = file.lastPathComponent
            let text = try String(contentsOf: file, encoding: .utf8)
            let expected = Self.expectations(in: text)
            XCTAssertFalse(expected.isEmpty, "\(name) has no '; expect:' line")
            do {
                _ = try ConfigLoader.parse(text, fileName: name)
                XCTFail("\(name) loaded without errors")
            } catch {
                XCTAssertEqual(error.errors.count, expected.count, "\(name):\n\(error)")
                for expectation in expected {
                    XCTAssertTrue(
                        error.errors.contains { $0.line == expectation.line && $0.message.contains(expectation.message) },
                        "\(name): no error at line \(expectation.line) containing \"\(expectation.message)\"; got:\n\(error)")
                }
                for reported in error.errors {
                    XCTAssertEqual(reported.file, name)
                }
            }
        }
    }

    func testEveryValidFixtureHasExpectations() throws {
        let names = try Self.fixtures(prefix: "valid-").map(\.lastPathComponent)
        XCTAssertEqual(Set(names), Set(ValidFixtureTests.checkedFixtures))
    }

    func testLoadReadsFileFromDisk() throws {
        let url = try Self.fixtureDirectory().appendingPathComponent("valid-minimal.ini")
        let config = try ConfigLoader.load(path: url.path)
        XCTAssertEqual(config.sourcePath, url.path)
        XCTAssertEqual(config.databases["app"]?.host, "db.internal")
    }

    func testLoadReportsPathOfFileWithErrors() throws {
        let url = try Self.fixtureDirectory().appendingPathComponent("invalid-unknown-key.ini")
        XCTAssertThrowsError(try ConfigLoader.load(path: url.path)) { error in
            let errors = error as? ConfigErrors
            XCTAssertEqual(errors?.errors.first?.file, url.path)
            XCTAssertEqual(errors?.errors.first?.line, 3)
            XCTAssertTrue(errors?.description.hasPrefix("\(url.path):3: unknown key") ?? false, "\(error)")
        }
    }

    func testLoadOfMissingFileIsAWholeFileError() {
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent/portcullis.ini")) { error in
            let errors = (error as? ConfigErrors)?.errors ?? []
            XCTAssertEqual(errors.count, 1)
            XCTAssertEqual(errors.first?.line, 0)
            XCTAssertEqual(
                errors.first?.description,
                "/nonexistent/portcullis.ini: could not open configuration file: No such file or directory")
        }
    }

    func testLoadRejectsInvalidUTF8() throws {
        let path = NSTemporaryDirectory() + "portcullis-config-test-\(getpid()).ini"
        try Data([0x5B, 0xFF, 0x5D, 0x0A]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try ConfigLoader.load(path: path)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.errors.map(\.message), ["file is not valid UTF-8"])
        }
    }
}
