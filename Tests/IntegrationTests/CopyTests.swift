import Foundation
import XCTest

/// 100 MB each way through COPY, with the proxy's memory bounded while it streams.
final class CopyTests: IntegrationTestCase {
    static let rows = 100_000
    static let rowBytes = 1000 + 1  // repeat('x', 1000) plus the newline COPY text format ends a row with

    func testCopyOutAndInOfHundredMegabytesWithBoundedMemory() throws {
        let harness = try harness
        let endpoint = try endpoint
        let dir = try harness.makeDir("copy")
        let dump = "\(dir)/copy.txt"
        let table = marker("copy")

        let out = try runPsql(conninfo: endpoint.conninfo(),
                              sql: "COPY (SELECT repeat('x', 1000) FROM generate_series(1, \(CopyTests.rows))) TO STDOUT",
                              env: endpoint.env(), stdoutFile: dump, timeout: 300)
        assertSucceeded(out, "COPY TO STDOUT")
        let size = (try FileManager.default.attributesOfItem(atPath: dump)[.size] as? NSNumber)?.intValue
        XCTAssertEqual(size, CopyTests.rows * CopyTests.rowBytes)

        let create = try runPsql(conninfo: endpoint.conninfo(), sql: "CREATE TABLE \(table) (v text)", env: endpoint.env())
        assertSucceeded(create, "CREATE TABLE")
        defer { _ = try? harness.cluster.query("DROP TABLE IF EXISTS \(table)", dbname: "app") }
        let copyIn = try runPsql(conninfo: endpoint.conninfo(), sql: "COPY \(table) FROM STDIN", env: endpoint.env(),
                                 stdinFile: dump, timeout: 300)
        assertSucceeded(copyIn, "COPY FROM STDIN")
        XCTAssertEqual(copyIn.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "COPY \(CopyTests.rows)")
        XCTAssertEqual(try harness.cluster.query(
            "SELECT count(*), sum(length(v)) FROM \(table)", dbname: "app"), "\(CopyTests.rows)|\(CopyTests.rows * 1000)")
        try? FileManager.default.removeItem(atPath: dump)

        if let pid = endpoint.proxyPID {
            // Streaming must not buffer the whole copy: the peak RSS stays far below 100 MB x 2.
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let hwm = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            let kib = hwm.flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.flatMap { Int($0) }
            let peak = try XCTUnwrap(kib, "no VmHWM for proxy pid \(pid)") * 1024
            XCTAssertLessThan(peak, 200 * 1024 * 1024, "proxy peak RSS \(peak / 1_048_576) MiB")
        }
    }
}
