import Foundation
import XCTest

extension AttackCorpusTests {
    /// Every allowed read (allowed-reads.sql, allowed-psql-pgdump.sql, allowed-psql-describe.sql) as app_ro through the
    /// endpoint must answer as PostgreSQL answers app_ro in a read-only session: same result
    /// statuses, same SQLSTATEs, same rows. Rows are compared only where PostgreSQL itself
    /// answers the same twice (now(), pg_stat_activity and EXPLAIN ANALYZE do not; the other
    /// sessions pg_stat_activity lists include the proxy's warm spare, so its rows are never
    /// compared); and no read
    /// may change the database.
    func testAllowedReadsAnswerAsPostgreSQLDoes() throws {
        let bench = try CorpusBench(harness: try harness)
        let root = try harness.repoRoot
        let reads = try CorpusFixture.statements(file: "allowed-reads.sql", repoRoot: root)
            + CorpusFixture.statements(file: "allowed-psql-pgdump.sql", repoRoot: root)
            + CorpusFixture.statements(file: "allowed-psql-describe.sql", repoRoot: root)
        XCTAssertGreaterThan(reads.count, 180, "the read corpus did not load")
        let baseline = try bench.fingerprint()

        var findings: [Finding] = []
        var compared = 0, withRows = 0, volatile: Set<String> = []
        for queryProtocol in QueryProtocol.allCases {
            for read in reads {
                func fail(_ check: String) { findings.append(Finding(statement: read, queryProtocol: queryProtocol, check: check)) }
                do {
                    let proxied = try bench.readOnlySession().run(read, protocol: queryProtocol)
                    let changed = try bench.fingerprint().changedSections(comparedTo: baseline)
                    if !changed.isEmpty {
                        fail("database changed: \(changed.joined(separator: ", "))")
                        try bench.restore()
                    }
                    let direct = try bench.directReadOnlySession().run(read, protocol: queryProtocol)
                    let shape = { (outcomes: [PQOutcome]) in outcomes.map { "\($0.status) \($0.sqlState ?? "")" } }
                    if shape(proxied) != shape(direct) {
                        fail("outcome differs from PostgreSQL's:\n      endpoint:   \(proxied)\n      PostgreSQL: \(direct)")
                        continue
                    }
                    if direct.contains(where: { !$0.rows.isEmpty }) { withRows += 1 }
                    if proxied.map(\.rows) == direct.map(\.rows) { compared += 1; continue }
                    let again = try bench.directReadOnlySession().run(read, protocol: queryProtocol)
                    // The other sessions pg_stat_activity lists differ by design: a pool in use
                    // holds a warm spare (pool_min_idle = 1), an idle app_ro backend the proxied
                    // read sees and that may linger (pool_spare_linger) into both direct runs,
                    // making them agree with each other but not with the proxied one.
                    if again.map(\.rows) != direct.map(\.rows) || read.lowercased().contains("pg_stat_activity") {
                        volatile.insert(read)
                        continue
                    }
                    compared += 1
                    fail("rows differ from PostgreSQL's (which answers the same twice):\n      endpoint:   \(proxied.map(\.rows).description.prefix(600))\n      PostgreSQL: \(direct.map(\.rows).description.prefix(600))")
                } catch {
                    fail("harness error: \(error)")
                }
            }
        }
        print("AttackCorpusTests: \(reads.count) reads x \(QueryProtocol.allCases.count) protocols; rows compared in \(compared) runs (\(withRows) with rows); "
              + "\(volatile.count) reads whose rows PostgreSQL itself does not repeat (status and SQLSTATE compared only):\n  "
              + volatile.sorted().map { $0.prefix(100).replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n  "))
        // Most reads return rows, so equal rows is a real comparison and not two empty lists.
        XCTAssertGreaterThan(withRows, reads.count / 2, "too few reads returned rows")
        XCTAssertLessThan(volatile.count, reads.count / 5, "too many reads compared by status only: the comparison is not testing much")
        if !findings.isEmpty {
            XCTFail("\(findings.count) read run(s) differ from PostgreSQL:\n" + findings.map(\.description).joined(separator: "\n"))
        }
    }
}
