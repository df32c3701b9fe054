import Foundation
import XCTest

/// 100 MB each way through COPY, with the proxy's memory bounded while it streams.
final class CopyTests: IntegrationTestCase {
    static let rows = 100_000
    static let rowBytes = 1000 + 1  // repeat('x', 1000) plus the newline COPY text format ends a row with

    /// The documented bound (docs/ARCHITECTURE.md, "Backpressure") on how much the COPY raises the
    /// proxy's peak RSS; a proxy of its own, so its high-water mark is this COPY's and nothing else's.
    static let peakBound = 8 * 1024 * 1024

    static func memoryKiB(_ pid: Int32, _ field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        let line = status.split(separator: "\n").first { $0.hasPrefix(field) }
        return line.flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.flatMap { Int($0) }
    }

    func testCopyOutAndInOfHundredMegabytesWithBoundedMemory() throws {
        let harness = try harness
        let proxy: ProxyProcess? = Target.current == .proxy
            ? try ProxyProcess(harness: harness, options: ProxyProcess.Options(upstream: harness.cluster)) : nil
        defer { proxy?.stop() }
        let endpoint = try proxy?.endpoint ?? self.endpoint
        let dir = try harness.makeDir("copy")
        let dump = "\(dir)/copy.txt"
        let table = marker("copy")

        let baseline = proxy.flatMap { Self.memoryKiB($0.pid, "VmRSS:") } ?? 0
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
            // Streaming must not buffer the copy: the peak RSS rises by less than the documented bound.
            let peak = try XCTUnwrap(Self.memoryKiB(pid, "VmHWM:"), "no VmHWM for proxy pid \(pid)")
            print("CopyTests: proxy RSS \(baseline) KiB before, peak \(peak) KiB, for 100 MB each way")
            XCTAssertLessThan((peak - baseline) * 1024, CopyTests.peakBound, "proxy peak RSS rose by \((peak - baseline) / 1024) MiB")
        }
    }
}
