import Foundation
import XCTest

/// pgbench through the endpoint in all three query protocols, with zero failures.
final class PgbenchTests: IntegrationTestCase {
    private func assertClean(_ result: CommandResult, expected: Int, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        assertSucceeded(result, what, file: file, line: line)
        XCTAssertTrue(result.stdout.contains("number of transactions actually processed: \(expected)/\(expected)"),
                      "\(what): \(result)", file: file, line: line)
        XCTAssertTrue(result.stdout.contains("number of failed transactions: 0 "), "\(what): \(result)", file: file, line: line)
    }

    func testSelectOnlyInSimpleExtendedAndPreparedModes() throws {
        let endpoint = try endpoint
        let initialise = try runPgbench(conninfo: endpoint.conninfo(), arguments: ["-i", "-q", "-s", "1"], env: endpoint.env())
        assertSucceeded(initialise, "pgbench -i")

        for mode in ["simple", "extended", "prepared"] {
            let run = try runPgbench(conninfo: endpoint.conninfo(),
                                     arguments: ["-n", "-S", "-M", mode, "-c", "16", "-j", "2", "-t", "200"],
                                     env: endpoint.env())
            assertClean(run, expected: 3200, "pgbench -S -M \(mode)")
        }
        // The read-only identity runs the same read-only workload.
        let readOnly = try runPgbench(conninfo: endpoint.conninfo(user: "app_ro"),
                                      arguments: ["-n", "-S", "-M", "extended", "-c", "4", "-j", "2", "-t", "100"],
                                      env: endpoint.env(user: "app_ro"))
        assertClean(readOnly, expected: 400, "pgbench -S as app_ro")
    }
}
