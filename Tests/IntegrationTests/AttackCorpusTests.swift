import Foundation
import XCTest

/// The policy corpus judged by its effect on a real database rather than by classification:
/// every statement of Tests/PolicyTests/Fixtures/refused-attacks.sql goes through the endpoint
/// as the read-only identity app_ro, in the simple and the extended protocol, and must leave
/// the database's fingerprint unchanged, end in an error, and leave the session read-only.
/// app_ro owns every fixture object (CorpusFixture), so PostgreSQL's privilege checks do not
/// stand in for the proxy's enforcement.
final class AttackCorpusTests: IntegrationTestCase {
    /// One check that did not hold, with enough to reproduce it.
    struct Finding: CustomStringConvertible {
        let statement: String
        let queryProtocol: QueryProtocol
        let check: String

        var description: String { "[\(queryProtocol.rawValue)] \(check)\n    statement: \(statement.replacingOccurrences(of: "\n", with: "\n               "))" }
    }

    func testRefusedAttacksHaveNoEffect() throws {
        let bench = try CorpusBench(harness: try harness)
        let attacks = try CorpusFixture.statements(file: "refused-attacks.sql", repoRoot: try harness.repoRoot)
        XCTAssertGreaterThan(attacks.count, 200, "the attack corpus did not load")
        let sentinel = try bench.sentinelSession()
        XCTAssertEqual(sentinel.run("SELECT 1", protocol: .simple).last?.rows, [["1"]], "sentinel before the attacks")

        var findings: [Finding] = []
        var gotThrough: [String: Set<String>] = [:]
        var before = try bench.fingerprint()
        var runs = 0
        var previous: String?
        for queryProtocol in QueryProtocol.allCases {
            for attack in attacks {
                runs += 1
                let found = try judge(attack, queryProtocol, bench: bench, before: before, previous: previous)
                previous = attack
                findings += found.findings
                if !found.findings.isEmpty { gotThrough[attack, default: []].insert(queryProtocol.rawValue) }
                before = found.after
            }
        }

        XCTAssertEqual(sentinel.run("SELECT 1", protocol: .simple).last?.rows, [["1"]],
                       "the app_rw sentinel session opened before the attacks no longer answers")
        if let proxy = bench.proxy { XCTAssertTrue(proxy.isAlive, "the proxy died during the attacks:\n\(proxy.stderrText.suffix(4000))") }
        let summary = gotThrough.sorted { $0.key < $1.key }
            .map { "  [\($0.value.sorted().joined(separator: ","))] \($0.key.replacingOccurrences(of: "\n", with: "\\n"))" }
        print("AttackCorpusTests: \(attacks.count) attacks, \(runs) runs, \(findings.count) findings, \(gotThrough.count) attacks not fully refused:\n\(summary.joined(separator: "\n"))")
        if !findings.isEmpty {
            XCTFail("\(findings.count) check(s) failed over \(runs) attack runs (\(gotThrough.count) distinct attacks):\n"
                    + findings.map(\.description).joined(separator: "\n"))
        }
    }

    /// One attack in one protocol on a fresh app_ro session. Returns what failed and the
    /// fingerprint of the (restored if need be) database afterwards.
    /// `previous` is the attack judged just before, on a session now closed: a fresh session
    /// that is not read-only means its state outlived it (a reused server connection).
    private func judge(_ attack: String, _ queryProtocol: QueryProtocol, bench: CorpusBench,
                       before: Fingerprint, previous: String?) throws -> (findings: [Finding], after: Fingerprint) {
        var findings: [Finding] = []
        func fail(_ check: String) { findings.append(Finding(statement: attack, queryProtocol: queryProtocol, check: check)) }

        var final: Fingerprint
        do {
            let session = try bench.readOnlySession()
            let fresh = session.run("SHOW transaction_read_only", protocol: .simple)
            if fresh.last?.rows != [["on"]] {
                findings.append(Finding(statement: previous ?? "(none)", queryProtocol: queryProtocol,
                                        check: "the next app_ro session was not read-only (state outlived the session): \(fresh)"))
            }
            let outcomes = session.run(attack, protocol: queryProtocol)
            if queryProtocol == .extended && CorpusFixture.statementCount(attack) > 1 {
                // PostgreSQL refuses several statements in one Parse message (42601) itself.
                if !outcomes.contains(where: { $0.isError && $0.sqlState == "42601" }) {
                    fail("several statements in one Parse must fail with 42601 as in PostgreSQL; got \(outcomes)")
                }
            } else if !outcomes.contains(where: \.isError) {
                fail("no error: \(outcomes)")
            } else if let copy = outcomes.first(where: { $0.status == "PGRES_COPY_IN" || $0.status == "PGRES_COPY_BOTH"
                                                          || ($0.status == "PGRES_COPY_OUT" && !$0.rows.isEmpty) }) {
                // The server took or sent data; the error may only be the client ending the copy.
                fail("reached \(copy.status) before failing: \(outcomes)")
            }

            let afterAttack = try bench.fingerprint()
            let changed = afterAttack.changedSections(comparedTo: before)
            if !changed.isEmpty { fail("database changed: \(changed.joined(separator: ", "))") }

            if session.isConnected {
                findings += canaryFindings(session, attack: attack, queryProtocol: queryProtocol)
            }
            // The session ends here; what it left behind must not outlive it either.
            final = try bench.fingerprint()
            let changedByCanary = final.changedSections(comparedTo: afterAttack)
            if !changedByCanary.isEmpty { fail("database changed by the canary write: \(changedByCanary.joined(separator: ", "))") }
        } catch {
            fail("harness error: \(error)")
            final = try bench.fingerprint()
        }
        if final != before {
            try bench.restore()
            final = try bench.fingerprint()
            let still = final.changedSections(comparedTo: before)
            if !still.isEmpty {
                // Cluster-wide state (roles, settings, ...) outlives the database: later attacks
                // are judged against the changed state.
                fail("cluster-wide change that re-cloning the database does not undo: \(still.joined(separator: ", "))")
            }
        }
        return (findings, final)
    }

    /// After the attack, in its session: a write must still be refused and the session must
    /// still be read-only. An aborted transaction is rolled back first; an open one is kept,
    /// since an attacker would write inside it, and rolled back at the end.
    private func canaryFindings(_ session: LibPQSession, attack: String, queryProtocol: QueryProtocol) -> [Finding] {
        var findings: [Finding] = []
        func fail(_ check: String) { findings.append(Finding(statement: attack, queryProtocol: queryProtocol, check: check)) }
        if session.transactionStatus == "inerror" {
            _ = session.run("ROLLBACK", protocol: .simple)
        }
        let canary = session.run("INSERT INTO canary VALUES ('canary')", protocol: .simple)
        if !canary.contains(where: \.isError) { fail("canary write afterwards was not refused: \(canary)") }
        if session.transactionStatus == "inerror" {
            _ = session.run("ROLLBACK", protocol: .simple)
        }
        let readOnly = session.run("SHOW transaction_read_only", protocol: .simple)
        if readOnly.last?.rows != [["on"]] { fail("SHOW transaction_read_only afterwards: \(readOnly)") }
        if session.transactionStatus != "idle" {
            _ = session.run("ROLLBACK", protocol: .simple)
        }
        return findings
    }
}
