import Foundation
import Glibc
import XCTest

/// Deeply nested statements and long operator chains from a read-only identity (issue 8,
/// item 2): PostgreSQL refuses each with 54001 "stack depth limit exceeded" or Bison's 42601
/// "memory exhausted"; the proxy must refuse them with the same SQLSTATE instead of
/// overflowing a stack (which used to kill the process and every session in it), keep the
/// session usable, and still run a chain PostgreSQL runs.
final class DeepStatementTests: IntegrationTestCase {
    private func wrap(_ open: String, _ inner: String, _ close: String, _ n: Int) -> String {
        String(repeating: open, count: n) + inner + String(repeating: close, count: n)
    }

    /// app_ro directly on PostgreSQL, read-only by default: the oracle.
    private func directReadOnly() throws -> String {
        let h = try harness
        return Endpoint(port: h.cluster.port, caFile: h.caFile, proxyPID: nil)
            .conninfo(user: "app_ro", extra: "options='-c default_transaction_read_only=on'")
    }

    /// `sql` as a psql script with SQLSTATEs shown, then `select 'alive'` on the same session.
    private func run(_ sql: String, conninfo: String) throws -> CommandResult {
        let dir = try harness.makeDir("deep")
        let path = "\(dir)/deep.sql"
        try "\\set VERBOSITY verbose\n\(sql);\nselect 'alive';\n".write(toFile: path, atomically: true, encoding: .utf8)
        return try runCommand("psql", ["-X", "-A", "-t", "-f", path, "-d", conninfo],
                              environment: try endpoint.env(user: "app_ro"), timeout: 120)
    }

    private func sqlState(_ stderr: String) -> String? {
        guard let range = stderr.range(of: "ERROR:  ") else { return nil }
        return String(stderr[range.upperBound...].prefix(5))
    }

    func testDeepStatementsAreRefusedAsPostgreSQLRefusesThem() throws {
        let shapes: [(String, String)] = [
            ("1+1+… ×100000", "select 1" + String(repeating: "+1", count: 100_000)),
            ("::int ×40000", "select 1" + String(repeating: "::int", count: 40_000)),
            ("UNION ×40000", "select 1" + String(repeating: " union select 1", count: 40_000)),
            ("parentheses ×150000", "select " + wrap("(", "1", ")", 150_000)),
            ("sub-selects ×5000", "select " + wrap("(select ", "1", ")", 5_000)),
        ]
        let direct = try directReadOnly()
        let viaEndpoint = try endpoint.conninfo(user: "app_ro")
        for (name, sql) in shapes {
            let oracle = try run(sql, conninfo: direct)
            let expected = try XCTUnwrap(sqlState(oracle.stderr), "\(name): PostgreSQL ran it: \(oracle)")
            XCTAssertTrue(["54001", "42601"].contains(expected), "\(name): \(oracle.stderr.prefix(300))")
            let result = try run(sql, conninfo: viaEndpoint)
            XCTAssertEqual(sqlState(result.stderr), expected, "\(name): \(result.stderr.prefix(300))")
            XCTAssertEqual(result.stdout, "alive\n", "\(name): the session must stay usable: \(result)")
        }
        // Another session is untouched and the process is still there.
        let other = try runPsql(conninfo: viaEndpoint, sql: "select 1", env: try endpoint.env(user: "app_ro"))
        XCTAssertEqual(other.stdout, "1\n", "\(other)")
    }

    func testAChainPostgreSQLRunsIsForwarded() throws {
        let sql = "select 1" + String(repeating: "+1", count: 3_000)
        let result = try run(sql, conninfo: try endpoint.conninfo(user: "app_ro"))
        XCTAssertEqual(result.stdout, "3001\nalive\n", "\(result)")
    }
}
