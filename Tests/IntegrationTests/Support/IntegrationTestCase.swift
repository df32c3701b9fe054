import Foundation
import XCTest

/// Base class: gives each test the shared harness and the endpoint under test.
class IntegrationTestCase: XCTestCase {
    var harness: Harness { get throws { try Harness.shared() } }
    var endpoint: Endpoint { get throws { try harness.endpoint() } }

    /// Proxy-only behaviour has nothing to check against PostgreSQL itself.
    func requireProxyTarget(_ why: String) throws {
        if Target.current == .direct {
            throw XCTSkip("PORTCULLIS_IT_TARGET=direct: \(why)")
        }
    }

    /// A marker unique to this test run, embedded in SQL so pg_stat_activity can find the query.
    func marker(_ name: String) -> String {
        "it_\(name)_\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Backends (other than the asking one) whose current or last query contains `marker`.
    func backends(matching marker: String, state: String? = nil) throws -> Int {
        let stateFilter = state.map { " AND state = '\($0)'" } ?? ""
        let count = try harness.cluster.query(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%\(marker)%'\(stateFilter)")
        return Int(count) ?? -1
    }

    func assertSucceeded(_ result: CommandResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 0, "\(what) failed: \(result)", file: file, line: line)
    }
}
