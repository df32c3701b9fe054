import Config
import Foundation
import Logging
import XCTest
@testable import Proxy

/// pg_hba.conf and pg_ident.conf are loaded independently (postmaster.c SIGHUP handler): one
/// with errors keeps its previous version, the other is taken; only at start-up (nothing to
/// keep) is a broken pg_hba.conf fatal, while a broken pg_ident.conf means no maps.
final class AccessFilesReloadTests: XCTestCase {
    var dir = ""
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "access-files-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func config() throws -> PortcullisConfig {
        try ConfigLoader.parse("""
            [portcullis]
            hba_file = \(dir)/pg_hba.conf
            ident_file = \(dir)/pg_ident.conf
            [tls]
            client_tls = disable
            [databases]
            app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
            """, fileName: "test.ini")
    }

    func write(hba: String, ident: String) throws {
        try hba.write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        try ident.write(toFile: "\(dir)/pg_ident.conf", atomically: true, encoding: .utf8)
    }

    func testEachFileIsKeptOrTakenOnItsOwn() throws {
        try write(hba: "local all all peer map=m\n", ident: "m root alice\n")
        let first = try AccessFiles.load(config(), logger: logger, previous: nil)
        XCTAssertEqual(first.refusedFiles, [])
        XCTAssertEqual(first.hba?.rules.count, 1)

        // Broken pg_ident.conf, good new pg_hba.conf.
        try write(hba: "local all all peer map=m\nlocal all all reject\n", ident: "m root\n")
        let second = try AccessFiles.load(config(), logger: logger, previous: first)
        XCTAssertEqual(second.refusedFiles.map(\.kind), [.ident])
        XCTAssertEqual(second.refusedFiles.first?.errors, ["\(dir)/pg_ident.conf:1: missing entry at end of line"])
        XCTAssertEqual(second.hba?.rules.count, 2, "the new pg_hba.conf is taken")
        XCTAssertEqual(second.ident, first.ident, "the old maps stay")

        // Broken pg_hba.conf, good new pg_ident.conf.
        try write(hba: "local all all bogus\n", ident: "m root bob\n")
        let third = try AccessFiles.load(config(), logger: logger, previous: second)
        XCTAssertEqual(third.refusedFiles.map(\.kind), [.hba])
        XCTAssertEqual(third.refusedFiles.first?.errors, ["\(dir)/pg_hba.conf:1: invalid authentication method \"bogus\""])
        XCTAssertEqual(third.hba, second.hba, "the old pg_hba.conf stays")
        XCTAssertEqual(third.ident?.lines.map(\.databaseUser.token.text), ["bob"], "the new maps are taken")
    }

    func testStartUp() throws {
        try write(hba: "local all all bogus\n", ident: "m root\n")
        XCTAssertThrowsError(try AccessFiles.load(config(), logger: logger, previous: nil)) { error in
            XCTAssertEqual("\(error)", "\(self.dir)/pg_hba.conf:1: invalid authentication method \"bogus\"\n"
                + "\(self.dir)/pg_ident.conf:1: missing entry at end of line", "every error of both files")
        }
        try write(hba: "local all all peer map=m\n", ident: "m\n")
        let started = try AccessFiles.load(config(), logger: logger, previous: nil)
        XCTAssertEqual(started.refusedFiles.map(\.kind), [.ident])
        XCTAssertNil(started.ident, "no maps, as PostgreSQL starts")
        XCTAssertEqual(started.warnings, [])
    }

    func testPartialOutcomeRoundTrips() {
        let status = ReloadStatus(pid: 7, generation: 2, startedAt: 9, outcome: .partial,
                                  errors: ["pg_ident.conf \"/x\" was not reloaded", "/x:1: missing entry at end of line"])
        XCTAssertEqual(ReloadStatus(text: status.text), status)
    }
}
