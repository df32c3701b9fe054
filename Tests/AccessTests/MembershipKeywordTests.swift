import Config
import Foundation
import XCTest

@testable import Access

/// Which files need role membership loaded: every spelling hba.c turns into a membership
/// check, and none of the quoted look-alikes.
final class MembershipKeywordTests: XCTestCase {
    func hba(_ text: String, files: [String: String] = [:]) throws -> HbaRules {
        switch HbaRules.parse(text: text, fileName: "/etc/pg_hba.conf", files: InMemoryConfigFiles(files)) {
        case .success(let rules): return rules
        case .failure(let errors): throw errors
        }
    }

    func testEveryMembershipSpellingNeedsMembership() throws {
        for text in ["host samerole all all trust", "host samegroup all all trust",
                     "host all +staff all trust", "host app,samegroup alice all trust",
                     "host all alice,+staff all trust", "host all @users.txt all trust"] {
            XCTAssertTrue(try hba(text, files: ["/etc/users.txt": "bob\n+staff\n"]).usesRoleMembership, text)
        }
    }

    func testQuotedLookAlikesAndOtherKeywordsDoNot() throws {
        for text in ["host \"samerole\" all all trust", "host \"samegroup\" all all trust",
                     "host all \"+staff\" all trust", "host sameuser all all trust", "host all all all trust",
                     "host all @users.txt all trust"] {
            XCTAssertFalse(try hba(text, files: ["/etc/users.txt": "bob \"+staff\"\n"]).usesRoleMembership, text)
        }
    }

    func testIdentGroupNeedsMembership() throws {
        let files = InMemoryConfigFiles()
        guard case .success(let group) = IdentMaps.parse(text: "m alice +staff\n", fileName: "/i", files: files),
              case .success(let quoted) = IdentMaps.parse(text: "m alice \"+staff\"\n", fileName: "/i", files: files) else {
            return XCTFail("maps must load")
        }
        XCTAssertTrue(group.usesRoleMembership)
        XCTAssertFalse(quoted.usesRoleMembership)
    }
}

/// A `password` line that can match plaintext TCP is reported with its file and line.
final class CleartextPasswordWarningTests: XCTestCase {
    func testWarnsForEveryLineThatCanMatchPlaintextTCP() throws {
        let text = """
            local all all password
            hostssl all all all password
            host all all all password
            hostnossl all all 10.0.0.0/8 password
            hostnogssenc all all all password
            hostgssenc all all all password
            host all all all scram-sha-256
            """
        guard case .success(let rules) = HbaRules.parse(text: text, fileName: "/etc/pg_hba.conf", files: InMemoryConfigFiles()) else {
            return XCTFail("rules must load")
        }
        let warnings = rules.cleartextPasswordWarnings.map(\.description)
        XCTAssertEqual(warnings.map { String($0.prefix(while: { $0 != " " })) },
                       ["/etc/pg_hba.conf:3:", "/etc/pg_hba.conf:4:", "/etc/pg_hba.conf:5:"])
        XCTAssertTrue(warnings[0].contains("sends passwords in clear text over TCP connections without SSL"), warnings[0])
    }
}

/// conf/pg_hba.conf and conf/pg_ident.conf: load without errors and without warnings.
final class SampleFilesTests: XCTestCase {
    func testSampleFilesLoadCleanly() throws {
        let conf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("conf").path
        switch HbaRules.load(path: "\(conf)/pg_hba.conf", files: FileSystemConfigFiles()) {
        case .success(let rules):
            XCTAssertEqual(rules.cleartextPasswordWarnings, [])
            XCTAssertFalse(rules.rules.contains { $0.method == .password || $0.method == .trust }, "no cleartext, no trust")
            XCTAssertTrue(rules.rules.filter { $0.connectionType == .hostNoSSL }.allSatisfy { $0.method == .reject })
        case .failure(let errors):
            XCTFail("\(errors)")
        }
        guard case .success(let maps) = IdentMaps.load(path: "\(conf)/pg_ident.conf", files: FileSystemConfigFiles()) else {
            return XCTFail("pg_ident.conf must load")
        }
        XCTAssertEqual(Set(maps.lines.map(\.mapName)), ["local", "certs"])
    }
}
