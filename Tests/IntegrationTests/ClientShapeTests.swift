import Foundation
import Glibc
import XCTest

/// What a client receives must look as it does from PostgreSQL, down to details a client could
/// notice: TLS record sizes (PostgreSQL sends at most 8 KiB of plaintext per record) and the
/// notices a server sends during start-up.
final class ClientShapeTests: IntegrationTestCase {
    private var python: String { "/usr/bin/python3" }

    /// psycopg 3 in asynchronous mode waits in poll(); through COPY in both directions and large
    /// results, with row sizes around the TLS record limits, it must never hang.
    func testAsyncPsycopgThroughCopyNeverHangs() throws {
        let h = try harness
        let endpoint = try endpoint
        let conninfo = endpoint.conninfo(user: "app_rw") + " password=app_rw_pw"
        let result = try runCommand(python, ["\(h.repoRoot)/scripts/it/psycopg-async-copy.py", conninfo, "8"], timeout: 300)
        assertSucceeded(result, "psycopg async COPY rounds")
    }

    /// The largest TLS record a client gets while reading a 200 kB value.
    func testTLSRecordsToClientsCarryAtMost8KiB() throws {
        let h = try harness
        let endpoint = try endpoint
        let port = try h.freePort()
        let out = "\(try h.makeDir("records"))/largest"
        let probe = try BackgroundCommand(python, ["\(h.repoRoot)/scripts/it/tls-record-probe.py", String(port), String(endpoint.port), out],
                                          workDir: h.scratchDir)
        XCTAssertTrue(poll(timeout: 10) { probe.stdoutText().contains("READY") }, "probe listening")
        let conninfo = "host=localhost port=\(port) dbname=app user=app_rw sslmode=verify-full sslrootcert=\(h.caFile)"
        let result = try runPsql(conninfo: conninfo, sql: "SELECT repeat('x', 200000)", env: endpoint.env(user: "app_rw"))
        assertSucceeded(result, "a large value through the probe")
        _ = try probe.wait(timeout: 30)
        let figures = (try String(contentsOfFile: out, encoding: .utf8)).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(figures.count, 2)
        let largest = figures.first ?? Int.max
        // 8192 bytes of plaintext plus the AEAD expansion (TLS 1.3: content type byte and 16-byte tag).
        XCTAssertLessThanOrEqual(largest, 8192 + 256, "largest TLS record to the client: \(largest) bytes")
        XCTAssertGreaterThan(largest, 4096, "the large value did go through records of the probe")
    }

    /// `client_min_messages=debug5` in `options`: the server's start-up notices reach the client,
    /// as many as directly.
    func testStartupNoticesAreForwarded() throws {
        let h = try harness
        let endpoint = try endpoint
        func debugLines(port: Int) throws -> [String] {
            let conninfo = Endpoint(port: port, caFile: h.caFile, proxyPID: nil)
                .conninfo(user: "app_rw", extra: "options='-c client_min_messages=debug5'")
            let result = try runPsql(conninfo: conninfo, sql: "SELECT 1", env: endpoint.env(user: "app_rw"))
            assertSucceeded(result, "psql with debug5")
            return result.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("DEBUG:") }
        }
        let direct = try debugLines(port: h.cluster.port)
        let proxied = try debugLines(port: endpoint.port)
        XCTAssertFalse(direct.isEmpty)
        XCTAssertEqual(proxied, direct)
    }
}
