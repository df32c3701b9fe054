import Foundation
import Glibc
import XCTest

/// Found in review: a read-only session held every ErrorResponse whole before forwarding it,
/// and PostgreSQL quotes a bad input whole in its 22P02 message (`select
/// repeat('x', 300000000)::int`), so three read-only clients that did not read took the proxy
/// to 2.5 GB. Now a held server message is held only up to 256 kB of body
/// (SessionMachine+ServerLimits.swift; docs/ARCHITECTURE.md, "What a client can observe
/// differently"): PostgreSQL alone sends the whole message, the proxy sends it cut.
final class BigServerMessageTests: IntegrationTestCase {
    private var proxy: ProxyProcess?

    /// What three held errors may add to the proxy's peak RSS: each session holds at most
    /// about three times the 256 kB bound (server read buffer, the cut copy, the client's send
    /// buffer); the rest is allowance for the allocator and the loop's scratch buffers.
    static let peakBound = 32 * 1024 * 1024
    /// The 22P02 message's fixed part (PostgreSQL 15, numutils.c pg_strtoint32).
    static let prefix = "invalid input syntax for type integer: \""

    override func tearDown() {
        proxy?.stop()
        proxy = nil
    }

    /// One loop, plaintext allowed and `trust` on loopback, so a raw client logs in as the
    /// read-only identity.
    private func startProxy() throws -> ProxyProcess {
        let h = try harness
        let dir = try h.makeDir("bigerror-hba")
        try "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
            .write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.clientTLS = "allow"
        options.extraSettings = ["workers = 1", "hba_file = \(dir)/pg_hba.conf"]
        let started = try ProxyProcess(harness: h, options: options)
        proxy = started
        return started
    }

    /// PostgreSQL alone: the client gets the whole input back in the message.
    func testPostgreSQLAloneSendsTheWholeError() throws {
        let n = 20_000_000
        let client = try WireClient(cluster: try harness.cluster, user: "app_ro")
        client.socket.send(WireClient.query("select repeat('x', \(n))::int"))
        let reply = try client.collect(readyForQuery: 1, timeout: 120)
        let error = try XCTUnwrap(reply.first { $0.type == UInt8(ascii: "E") }?.fields)
        XCTAssertEqual(error["C"], "22P02")
        XCTAssertEqual(error["M"]?.utf8.count, Self.prefix.utf8.count + n + 1, "the input quoted whole")
        XCTAssertNotNil(error["R"], "and the fields after the message")
        print("BigServerMessageTests: PostgreSQL alone: M is \(error["M"]?.utf8.count ?? -1) bytes")
    }

    /// Three read-only clients each make the server send a 64 MB error and do not read. Once
    /// their backends are idle (the proxy took every byte from them), the proxy's peak RSS has
    /// risen by less than ``peakBound``; then each client reads a well-formed 22P02 whose
    /// message is cut with the marker, and its session goes on.
    func testAReadOnlyClientThatDoesNotReadGetsTheErrorCutAndTheProxyHoldsLittle() throws {
        try requireProxyTarget("the cut is the proxy's")
        let proxy = try startProxy()
        let n = 64_000_000
        let tag = marker("bigerror")
        let baseline = try XCTUnwrap(CopyTests.memoryKiB(proxy.pid, "VmRSS:"))
        let clients = try (0..<3).map { _ in try WireClient(port: proxy.port, user: "app_ro") }
        for client in clients {
            client.socket.send(WireClient.query("select /* \(tag) */ repeat('x', \(n))::int"))
        }
        // Not a timer: the backends are idle once they sent everything, error and ReadyForQuery.
        let deadline = Date().addingTimeInterval(180)
        while try backends(matching: tag, state: "idle") < clients.count {
            guard Date() < deadline, proxy.isAlive else {
                return XCTFail("backends not idle; proxy alive: \(proxy.isAlive)\n\(proxy.stderrText.suffix(3000))")
            }
            usleep(100_000)
        }
        let peak = try XCTUnwrap(CopyTests.memoryKiB(proxy.pid, "VmHWM:"))
        print("BigServerMessageTests: proxy RSS \(baseline) KiB before, peak \(peak) KiB with three \(n / 1_000_000) MB errors held")
        XCTAssertLessThan((peak - baseline) * 1024, Self.peakBound, "proxy peak RSS rose by \((peak - baseline) / 1024) MiB")

        for (index, client) in clients.enumerated() {
            let reply = try client.collect(readyForQuery: 1, timeout: 60)
            XCTAssertEqual(reply.map { Character(Unicode.Scalar($0.type)) }, ["E", "Z"], "client \(index)")
            let error = try XCTUnwrap(reply.first { $0.type == UInt8(ascii: "E") }?.fields)
            XCTAssertEqual(error["S"], "ERROR")
            XCTAssertEqual(error["C"], "22P02")
            let message = try XCTUnwrap(error["M"])
            XCTAssertTrue(message.hasPrefix(Self.prefix + "xxxx"), "client \(index)")
            XCTAssertTrue(message.range(of: #"\.\.\. \([0-9]+ bytes cut by Portcullis\)$"#, options: .regularExpression) != nil,
                          "client \(index): \(message.suffix(80))")
            XCTAssertLessThan(message.utf8.count, 256 * 1024 + 64, "client \(index)")
            if index == 0 { print("BigServerMessageTests: through the proxy: M is \(message.utf8.count) bytes, ending \(message.suffix(50))") }
            XCTAssertNil(error["R"], "client \(index): the fields after the cut are not sent")
            client.socket.send(WireClient.query("SELECT 'next'"))
            let next = try client.collect(readyForQuery: 1, timeout: 20)
            XCTAssertEqual(next.filter { $0.type == UInt8(ascii: "D") }.count, 1, "client \(index): the session goes on")
        }
    }
}
