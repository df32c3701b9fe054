import XCTest
import Access
import Config
import EventLoop
@testable import Proxy

/// The seams of issue 10 items 3 and 4 that need no PostgreSQL: the reload status file and the
/// pre-computed host-name lookups pg_hba.conf matching consults.
final class LookupSeamTests: XCTestCase {
    func testReloadStatusRoundTripsAndKeepsEachErrorOnItsOwnLine() {
        let status = ReloadStatus(pid: 42, generation: 3, startedAt: 123_456, outcome: .refused,
                                  errors: ["/etc/pg_hba.conf:2: invalid authentication method \"x\"\n/etc/pg_ident.conf:1: missing entry"])
        XCTAssertEqual(ReloadStatus(text: status.text)?.errors,
                       ["/etc/pg_hba.conf:2: invalid authentication method \"x\"", "/etc/pg_ident.conf:1: missing entry"])
        XCTAssertEqual(ReloadStatus(text: status.text)?.generation, 3)
        XCTAssertEqual(ReloadStatus(text: status.text)?.outcome, .refused)
        XCTAssertNil(ReloadStatus(text: "pid = 1\n"), "incomplete: not a status")
    }

    func testHostNameLinesMatchOnlyThroughTheConnectionsOwnLookups() throws {
        let source = InMemoryConfigFiles(["/etc/pg_hba.conf": "hostssl all all db.example.com trust\n"])
        let hba = try HbaRules.load(path: "/etc/pg_hba.conf", files: source).get()
        let rules = HbaAccessRules(hba: hba, ident: nil, membership: .empty, interfaces: [])
        XCTAssertTrue(rules.usesHostNames)
        let attempt = ClientAttempt(isLocal: false, isTLS: true, remoteAddress: "10.0.0.7", database: "app", user: "u", isReplication: false)
        // Without answered lookups nothing is resolved on the caller's thread: no match.
        XCTAssertNil(rules.rule(for: attempt))
        let client = try XCTUnwrap(IPAddress(parsing: "10.0.0.7"))
        let resolved = rules.resolving(ResolvedClientHost(client: client, name: "db.example.com", addresses: [client]))
        XCTAssertEqual(resolved.rule(for: attempt)?.method, .trust)
        // The forward lookup must give the client address back (hba.c check_hostname).
        let other = try XCTUnwrap(IPAddress(parsing: "10.0.0.8"))
        XCTAssertNil(rules.resolving(ResolvedClientHost(client: client, name: "db.example.com", addresses: [other])).rule(for: attempt))
    }

    func testIPLiteralsAndSocketDirectoriesNeedNoLookupThread() throws {
        XCTAssertFalse(DatabaseTarget(name: "a", host: "127.0.0.1").needsNameResolution)
        XCTAssertFalse(DatabaseTarget(name: "a", host: "::1").needsNameResolution)
        XCTAssertFalse(DatabaseTarget(name: "a", host: "/run/postgresql").needsNameResolution)
        XCTAssertFalse(DatabaseTarget(name: "a", host: "db.example.com", hostaddr: "10.0.0.1").needsNameResolution, "hostaddr skips resolution")
        XCTAssertTrue(DatabaseTarget(name: "a", host: "db.example.com").needsNameResolution)
    }

    func testReloadBarrierWaitsForEveryLoop() {
        let complete = ReloadBarrier(loops: 2)
        complete.loopApplied()
        complete.loopApplied()
        XCTAssertTrue(complete.wait(timeout: .seconds(5)))
        let partial = ReloadBarrier(loops: 2)
        partial.loopApplied()
        XCTAssertFalse(partial.wait(timeout: .milliseconds(100)), "one loop has not applied it")
    }

    /// As check_hba: a line that decides every connection from the address before any
    /// host-name line means no lookup at all.
    func testLookupsOnlyWhenAHostNameLineCanBeReached() throws {
        func rules(_ text: String) throws -> HbaRules {
            try HbaRules.load(path: "/etc/pg_hba.conf", files: InMemoryConfigFiles(["/etc/pg_hba.conf": text])).get()
        }
        let loopback = try XCTUnwrap(IPAddress(parsing: "127.0.0.1"))
        let other = try XCTUnwrap(IPAddress(parsing: "10.0.0.7"))
        let ipFirst = try rules("host all all 127.0.0.1/32 scram-sha-256\nhostssl all all db.example.com trust\n")
        XCTAssertFalse(ipFirst.mayConsultHostNames(client: loopback, localInterfaces: []))
        XCTAssertTrue(ipFirst.mayConsultHostNames(client: other, localInterfaces: []))
        // Not decisive for every connection: hostssl (a plaintext one goes on), one database, one user.
        for first in ["hostssl all all 127.0.0.1/32 trust", "host app all 127.0.0.1/32 trust", "host all bob 127.0.0.1/32 trust"] {
            let r = try rules("\(first)\nhost all all db.example.com trust\n")
            XCTAssertTrue(r.mayConsultHostNames(client: loopback, localInterfaces: []), first)
        }
        XCTAssertFalse(try rules("host all all 127.0.0.1/32 trust\n").mayConsultHostNames(client: other, localInterfaces: []), "no host-name line")
    }
}
