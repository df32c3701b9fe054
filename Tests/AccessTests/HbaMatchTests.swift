import Config
import XCTest

@testable import Access

/// check_hba() semantics: the table Fixtures/hba_match.attempts against Fixtures/hba_match.conf.
final class HbaMatchTests: XCTestCase {
    static let membership: Set<String> = ["alice∈admins", "gina∈admins", "bob∈app", "erin∈certusers", "zed∈certusers"]

    static var environment: HbaEnvironment {
        HbaEnvironment(
            localInterfaces: [
                LocalInterface(address: ip("127.0.0.1"), netmask: ip("255.0.0.0")),
                LocalInterface(address: ip("192.168.1.10"), netmask: ip("255.255.255.0")),
                LocalInterface(address: ip("::1"), netmask: IPAddress.mask(bits: 128, family: .v6)!),
            ],
            isMember: { user, role in membership.contains("\(user)∈\(role)") },
            hostnameResolver: HostnameResolver(
                reverseLookup: { address in
                    ["10.9.9.9": "db1.example.com", "10.9.9.8": "evil.example.com",
                     "10.9.9.7": "DB1.EXAMPLE.ORG"][address.description]
                },
                forwardLookup: { name in
                    ["db1.example.com": [ip("10.9.9.9")], "evil.example.com": [ip("1.1.1.1")],
                     "DB1.EXAMPLE.ORG": [ip("10.9.9.7")]][name]
                }
            )
        )
    }

    func loadRules(_ name: String = "hba_match.conf") throws -> HbaRules {
        switch HbaRules.load(path: Fixtures.path(name), files: FileSystemConfigFiles()) {
        case .success(let rules): return rules
        case .failure(let errors): throw errors
        }
    }

    /// Runs every row of an attempts table; expected "FILE:LINE" relative to Fixtures, or "none".
    func checkAttemptTable(rules: HbaRules, attempts: String, environment: HbaEnvironment,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let rows = try Fixtures.table(attempts)
        XCTAssertGreaterThan(rows.count, 20, file: file, line: line)
        for row in rows {
            XCTAssertEqual(row.count, 6, "\(row)", file: file, line: line)
            let kind: ConnectionAttempt.Kind = switch row[0] {
            case "local": .local
            case "hostssl": .host(ssl: true)
            default: .host(ssl: false)
            }
            let attempt = ConnectionAttempt(kind: kind, clientAddress: row[1] == "-" ? nil : ip(row[1]),
                                            database: row[2] == "-" ? "" : row[2], user: row[3],
                                            isReplication: row[4] == "yes")
            let match = rules.firstMatch(attempt, environment: environment)
            let got = match.map { "\($0.fileName.replacingOccurrences(of: Fixtures.directory + "/", with: "")):\($0.lineNumber)" } ?? "none"
            XCTAssertEqual(got, row[5], "attempt \(row.joined(separator: " | "))", file: file, line: line)
        }
    }

    func testAttemptTable() throws {
        try checkAttemptTable(rules: loadRules(), attempts: "hba_match.attempts", environment: Self.environment)
    }

    /// Expectations produced by PostgreSQL 15 itself (see the header of hba_oracle.attempts).
    func testPostgreSQL15OracleTable() throws {
        let membership: Set<String> = ["alice∈admins", "gina∈admins", "bob∈app", "zed∈certusers"]
        let environment = HbaEnvironment(
            localInterfaces: [
                LocalInterface(address: ip("127.0.0.1"), netmask: ip("255.0.0.0")),
                LocalInterface(address: ip("::1"), netmask: IPAddress.mask(bits: 128, family: .v6)!),
            ],
            isMember: { user, role in membership.contains("\(user)∈\(role)") }
        )
        try checkAttemptTable(rules: loadRules("hba_oracle.conf"), attempts: "hba_oracle.attempts", environment: environment)
    }

    func testOptionsOfMatchedLines() throws {
        let rules = try loadRules()
        let certLine = try XCTUnwrap(rules.rules.first { $0.lineNumber == 8 && $0.fileName.hasSuffix("hba_match.conf") })
        XCTAssertEqual(certLine.method, .cert)
        XCTAssertEqual(certLine.connectionType, .hostSSL)
        XCTAssertEqual(certLine.options, HbaOptions(clientCert: .verifyFull, clientName: .distinguishedName, mapName: "certmap"))
        XCTAssertEqual(certLine.users.map(\.token), [AuthToken("dave"), AuthToken("erin"), AuthToken("frank", quoted: true), AuthToken("+certusers")])
        XCTAssertEqual(certLine.address, .network(ip("10.0.0.0"), mask: ip("255.0.0.0")))

        let verifyCA = try XCTUnwrap(rules.rules.first { $0.fileName.hasSuffix("extra.conf") && $0.lineNumber == 2 })
        XCTAssertEqual(verifyCA.options.clientCert, .verifyCA)
        XCTAssertEqual(verifyCA.method, .scramSHA256)

        let peer = try XCTUnwrap(rules.rules.first { $0.lineNumber == 3 && $0.fileName.hasSuffix("hba_match.conf") })
        XCTAssertEqual(peer.method, .peer)
        XCTAssertNil(peer.address)
        XCTAssertEqual(peer.options.mapName, "local")
        XCTAssertNil(peer.options.clientCert)
    }

    func testIdentOnLocalSocketIsPeer() throws {
        let rules = try XCTUnwrap(HbaRules.parse(text: "local all all ident map=m\n", fileName: "/x/pg_hba.conf",
                                                 files: InMemoryConfigFiles()).successValue)
        XCTAssertEqual(rules.rules.first?.method, .peer)
        XCTAssertEqual(rules.rules.first?.options.mapName, "m")
    }

    func testHostGSSEncNeverMatchesAndHostNoGSSEncMatchesEveryTCPConnection() throws {
        let text = "hostgssenc all all all trust\nhostnogssenc all all all reject\n"
        let rules = try XCTUnwrap(HbaRules.parse(text: text, fileName: "/x/pg_hba.conf", files: InMemoryConfigFiles()).successValue)
        for ssl in [false, true] {
            let attempt = ConnectionAttempt(kind: .host(ssl: ssl), clientAddress: ip("10.0.0.1"), database: "d", user: "u")
            XCTAssertEqual(rules.firstMatch(attempt, environment: HbaEnvironment())?.lineNumber, 2)
        }
        let local = ConnectionAttempt(kind: .local, clientAddress: nil, database: "d", user: "u")
        XCTAssertNil(rules.firstMatch(local, environment: HbaEnvironment()))
    }

    func testHostnameSuffixMatchIsCaseInsensitive() {
        XCTAssertTrue(HbaRules.hostname("db1.Example.COM", matches: ".example.com"))
        XCTAssertTrue(HbaRules.hostname("DB1.EXAMPLE.COM", matches: "db1.example.com"))
        XCTAssertFalse(HbaRules.hostname("example.com", matches: ".example.com"))
        XCTAssertFalse(HbaRules.hostname("db1.example.com", matches: "example.com"))
    }

    func testFileWithOnlyCommentsHasNoEntries() {
        let result = HbaRules.parse(text: "# nothing\n\n", fileName: "/x/pg_hba.conf", files: InMemoryConfigFiles())
        XCTAssertEqual(result.failureValue?.description, "/x/pg_hba.conf: configuration file \"/x/pg_hba.conf\" contains no entries")
    }

    func testMissingTopLevelFile() {
        let result = HbaRules.load(path: "/nonexistent/pg_hba.conf", files: FileSystemConfigFiles())
        XCTAssertEqual(result.failureValue?.description,
                       "/nonexistent/pg_hba.conf: could not open file \"/nonexistent/pg_hba.conf\": No such file or directory")
    }
}
