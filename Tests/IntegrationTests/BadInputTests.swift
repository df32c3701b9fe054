import Foundation
import Glibc
import XCTest

/// Malformed and hostile input on the client port. For each: the proxy answers with an
/// ErrorResponse ('E'), a TLS alert, or just closes — and keeps serving everyone else.
final class BadInputTests: IntegrationTestCase {
    private var proxy: ProxyProcess?

    override func setUpWithError() throws {
        try requireProxyTarget("these probe the proxy's handling of malformed input; PostgreSQL's own is not under test")
        let harness = try harness
        proxy = try ProxyProcess(harness: harness, options: .init(upstream: harness.cluster, loginTimeout: "2s"))
    }

    override func tearDown() {
        proxy?.stop()
        proxy = nil
    }

    private func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    /// The reply ends the connection and, if it says anything, starts like an ErrorResponse
    /// (or a TLS alert record once TLS was agreed).
    private func assertRefused(_ reply: RawSocket.Reply, allowTLSAlert: Bool = false, _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(reply.closed, "\(what): connection was not closed (got \(reply.bytes.prefix(16)))", file: file, line: line)
        if let first = reply.bytes.first {
            let allowed: Set<UInt8> = allowTLSAlert ? [UInt8(ascii: "E"), 0x15] : [UInt8(ascii: "E")]
            XCTAssertTrue(allowed.contains(first), "\(what): unexpected reply \(reply.bytes.prefix(16))", file: file, line: line)
        }
    }

    private func assertProxyStillServes(file: StaticString = #filePath, line: UInt = #line) throws {
        let proxy = try XCTUnwrap(proxy)
        XCTAssertTrue(proxy.isAlive, "proxy died:\n\(proxy.stderrText.suffix(3000))", file: file, line: line)
        let result = try runPsql(conninfo: proxy.endpoint.conninfo(), sql: "SELECT 1", env: proxy.endpoint.env())
        XCTAssertEqual(result.status, 0, "healthy session failed: \(result)", file: file, line: line)
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1", file: file, line: line)
    }

    func testRandomBytesAreRefused() throws {
        let proxy = try XCTUnwrap(proxy)
        // Fixed-seed bytes so a failure reproduces.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes: [UInt8] = (0..<512).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let socket = try RawSocket(port: proxy.port)
        socket.send(bytes)
        assertRefused(socket.readUntilClosed(timeout: 15), "random bytes")
        try assertProxyStillServes()
    }

    func testTwoGibibyteLengthHeaderIsRefusedWithoutAllocating() throws {
        let proxy = try XCTUnwrap(proxy)
        for length: UInt32 in [0x7fff_ffff, 0x8000_0000] {
            let socket = try RawSocket(port: proxy.port)
            socket.send(bigEndian(length) + bigEndian(196_608) + Array("user\0app_rw\0".utf8))
            assertRefused(socket.readUntilClosed(timeout: 15), "length \(length)")
        }
        if let peak = proxy.peakRSS() {
            XCTAssertLessThan(peak, 200 * 1024 * 1024, "proxy allocated for a bogus length: \(peak / 1_048_576) MiB")
        }
        try assertProxyStillServes()
    }

    func testTruncatedStartupPacketIsRefused() throws {
        let proxy = try XCTUnwrap(proxy)
        let socket = try RawSocket(port: proxy.port)
        socket.send(bigEndian(100) + bigEndian(196_608) + Array("user\0".utf8))
        socket.shutdownWrite()
        assertRefused(socket.readUntilClosed(timeout: 15), "truncated startup packet")
        try assertProxyStillServes()
    }

    func testPlaintextAfterSSLRequestIsRefused() throws {
        let proxy = try XCTUnwrap(proxy)
        let socket = try RawSocket(port: proxy.port)
        socket.send(bigEndian(8) + bigEndian(80_877_103))
        let answer = socket.readUntilClosed(timeout: 10, maxBytes: 1)
        XCTAssertEqual(answer.bytes.first, UInt8(ascii: "S"), "SSLRequest must be accepted by a TLS-requiring proxy")
        let startup = Array("user\0app_rw\0database\0app\0\0".utf8)
        socket.send(bigEndian(UInt32(8 + startup.count)) + bigEndian(196_608) + startup)
        assertRefused(socket.readUntilClosed(timeout: 15), allowTLSAlert: true, "plaintext after 'S'")
        try assertProxyStillServes()
    }

    /// Direct TLS (PostgreSQL 17) requires ALPN "postgresql": a ClientHello without it must not
    /// lead to a session — like PostgreSQL 17, the handshake may complete, but the StartupMessage
    /// sent over it gets no authentication request. With ALPN the same bytes do (the control
    /// that shows this test can tell the two apart).
    func testDirectTLSWithoutALPNIsRefused() throws {
        let proxy = try XCTUnwrap(proxy)
        let dir = try harness.makeDir("direct-tls")
        let startup = Array("user\0app_rw\0database\0app\0\0".utf8)
        let packet = Data(bigEndian(UInt32(8 + startup.count)) + bigEndian(196_608) + startup)
        try packet.write(to: URL(fileURLWithPath: "\(dir)/startup.bin"))

        func exchange(alpn: Bool) throws -> (CommandResult, Data) {
            let out = "\(dir)/reply-\(alpn).bin"
            let result = try runCommand("openssl", ["s_client", "-connect", "127.0.0.1:\(proxy.port)", "-noservername",
                                                    "-CAfile", try harness.caFile, "-quiet"] + (alpn ? ["-alpn", "postgresql"] : []),
                                        stdinFile: "\(dir)/startup.bin", stdoutFile: out, timeout: 30)
            return (result, try Data(contentsOf: URL(fileURLWithPath: out)))
        }

        let (refused, refusedReply) = try exchange(alpn: false)
        XCTAssertFalse(refusedReply.first == UInt8(ascii: "R"), "authentication offered without ALPN: \(refused)")
        XCTAssertTrue(refusedReply.isEmpty || refusedReply.first == UInt8(ascii: "E"), "unexpected reply \(Array(refusedReply.prefix(16)))")

        let (accepted, acceptedReply) = try exchange(alpn: true)
        XCTAssertEqual(acceptedReply.first, UInt8(ascii: "R"), "control: with ALPN the proxy should ask for authentication: \(accepted)")
        XCTAssertTrue(String(decoding: acceptedReply, as: UTF8.self).contains("SCRAM-SHA-256"), "\(accepted)")
        try assertProxyStillServes()
    }

    /// No TLS 1.3 session tickets, as PostgreSQL sends none: the session cache is off, so a ticket
    /// could resume nothing and would only cost every connect a new session and two records.
    /// The tickets would come before the server's first reply, so once the authentication request
    /// has been read every handshake message the server sent is in the trace.
    func testHandshakeSendsNoSessionTickets() throws {
        let proxy = try XCTUnwrap(proxy)
        let dir = try harness.makeDir("no-tickets")
        let startup = Array("user\0app_rw\0database\0app\0\0".utf8)
        try Data(bigEndian(UInt32(8 + startup.count)) + bigEndian(196_608) + startup)
            .write(to: URL(fileURLWithPath: "\(dir)/startup.bin"))
        let trace = "\(dir)/trace.txt", reply = "\(dir)/reply.bin"
        let result = try runCommand("openssl", ["s_client", "-starttls", "postgres", "-connect", "127.0.0.1:\(proxy.port)",
                                                "-CAfile", try harness.caFile, "-tls1_3", "-quiet", "-msg", "-msgfile", trace],
                                    stdinFile: "\(dir)/startup.bin", stdoutFile: reply, timeout: 30)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: reply)).first, UInt8(ascii: "R"),
                       "control: the login should have reached the authentication request: \(result)")
        let messages = try String(contentsOfFile: trace, encoding: .utf8)
        XCTAssertTrue(messages.contains("Finished"), "control: the trace should show the handshake: \(messages)")
        XCTAssertFalse(messages.contains("NewSessionTicket"), messages)
    }

    /// 500 connections that never speak are closed by login_timeout (2 s here) while an
    /// authenticated session spanning the timeout keeps working.
    func testSilentConnectionsAreClosedByLoginTimeout() throws {
        let proxy = try XCTUnwrap(proxy)
        let healthy = try BackgroundCommand("psql", psqlFlags + ["-d", proxy.endpoint.conninfo(),
                                                                 "-c", "SELECT 1", "-c", "SELECT pg_sleep(4)", "-c", "SELECT 2"],
                                            environment: proxy.endpoint.env(), workDir: try harness.makeDir("healthy"))
        let silent = try (0..<500).map { _ in try RawSocket(port: proxy.port) }
        let during = try runPsql(conninfo: proxy.endpoint.conninfo(), sql: "SELECT 'during'", env: proxy.endpoint.env())
        assertSucceeded(during, "session while 500 silent connections are open")

        var open = Set(silent.indices)
        let deadline = Date().addingTimeInterval(25)
        while !open.isEmpty && Date() < deadline {
            var fds = open.map { pollfd(fd: silent[$0].fd, events: Int16(POLLIN), revents: 0) }
            let indices = Array(open)
            _ = poll(&fds, nfds_t(fds.count), 500)
            for (slot, pfd) in fds.enumerated() where pfd.revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = buffer.withUnsafeMutableBytes { recv(pfd.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { open.remove(indices[slot]) }
            }
        }
        XCTAssertTrue(open.isEmpty, "\(open.count) of 500 silent connections still open after login_timeout")

        let result = try healthy.wait(timeout: 30)
        assertSucceeded(result, "session spanning the login timeout")
        XCTAssertEqual(result.stdout.split(separator: "\n").filter { !$0.isEmpty }, ["1", "2"], "\(result)")
        try assertProxyStillServes()
    }
}
