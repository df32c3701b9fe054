import Config
import XCTest
import Access
import Admin
@testable import Proxy

/// The adapter between pg_hba.conf/pg_ident.conf (module Access) and the start-up machine.
final class HbaAccessRulesTests: XCTestCase {
    func rules(_ hba: String, ident: String? = nil, membership: RoleMembership = .empty) throws -> HbaAccessRules {
        var files = ["/etc/pg_hba.conf": hba]
        if let ident { files["/etc/pg_ident.conf"] = ident }
        let source = InMemoryConfigFiles(files)
        let parsedHba = try HbaRules.load(path: "/etc/pg_hba.conf", files: source).get()
        let parsedIdent = try ident.map { _ in try IdentMaps.load(path: "/etc/pg_ident.conf", files: source).get() }
        let loopback = LocalInterface(address: IPAddress(parsing: "127.0.0.1")!, netmask: IPAddress(parsing: "255.0.0.0")!)
        return HbaAccessRules(hba: parsedHba, ident: parsedIdent, membership: membership, interfaces: [loopback])
    }

    func attempt(_ user: String, _ database: String = "app", address: String? = "127.0.0.1", tls: Bool = true) -> ClientAttempt {
        ClientAttempt(isLocal: address == nil, isTLS: tls, remoteAddress: address, database: database, user: user, isReplication: false)
    }

    func testRulesTranslateMethodsAndOptions() throws {
        let r = try rules("""
            local   all  all                         peer map=os
            hostssl app  agent  samenet              cert clientname=DN map=agents
            hostssl all  +staff 127.0.0.1/32         scram-sha-256 clientcert=verify-full
            hostssl all  all    127.0.0.1 255.0.0.0  md5 clientcert=verify-ca
            host    all  all    ::1/128              password
            """, membership: RoleMembership(membersByRole: ["staff": ["alice"]]))
        XCTAssertEqual(r.rule(for: attempt("postgres", address: nil)),
                       ClientAuthRule(method: .peer, mapName: "os", origin: "/etc/pg_hba.conf:1"))
        XCTAssertEqual(r.rule(for: attempt("agent")),
                       ClientAuthRule(method: .cert, clientCertificate: .verifyFull, certificateName: .distinguishedName,
                                      mapName: "agents", origin: "/etc/pg_hba.conf:2"))
        XCTAssertEqual(r.rule(for: attempt("alice", "other")),
                       ClientAuthRule(method: .scramSHA256, clientCertificate: .verifyFull, origin: "/etc/pg_hba.conf:3"))
        XCTAssertEqual(r.rule(for: attempt("bob", "other"))?.method, .md5)
        XCTAssertEqual(r.rule(for: attempt("bob", "other"))?.clientCertificate, .verifyCA)
        XCTAssertEqual(r.rule(for: attempt("bob", address: "::1", tls: false))?.method, .password)
        XCTAssertNil(r.rule(for: attempt("bob", address: "10.0.0.1")), "no line matches: implicit reject")
        XCTAssertNil(r.rule(for: attempt("bob", address: "not-an-address")), "an address that does not parse matches nothing")
    }

    func testMembershipIsNeededOnlyForGroupsAndSamerole() throws {
        XCTAssertFalse(HbaAccessRules.usesMembership(try rules("hostssl all \"+quoted\" all trust").hba, nil))
        XCTAssertTrue(HbaAccessRules.usesMembership(try rules("hostssl all +staff all trust").hba, nil))
        XCTAssertTrue(HbaAccessRules.usesMembership(try rules("hostssl samerole all all trust").hba, nil))
        let withIdent = try rules("hostssl all all all cert map=m", ident: "m  agent  +staff\n")
        XCTAssertTrue(HbaAccessRules.usesMembership(withIdent.hba, withIdent.ident))
    }

    func testIdentMapsUseMembership() throws {
        let r = try rules("hostssl all all all cert map=m", ident: "m  agent  +staff\nm  /^(.*)-bot$  \\1\n",
                          membership: RoleMembership(membersByRole: ["staff": ["alice"]]))
        XCTAssertTrue(r.mapAllows(map: "m", systemUser: "agent", databaseUser: "alice"))
        XCTAssertFalse(r.mapAllows(map: "m", systemUser: "agent", databaseUser: "bob"))
        XCTAssertTrue(r.mapAllows(map: "m", systemUser: "build-bot", databaseUser: "build"))
        XCTAssertFalse(r.mapAllows(map: "other", systemUser: "agent", databaseUser: "alice"))
    }
}
