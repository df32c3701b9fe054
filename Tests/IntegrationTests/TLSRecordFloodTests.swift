import Foundation
import Glibc
import XCTest
import CPortcullisShims

/// Found in review (2026-12-07): a client that completes a TLS 1.3 handshake, then sends
/// KeyUpdate requests and never reads, froze its event loop — every session on it, its timers
/// (login_timeout never fired) and, on loop 0, every new connection. Each KeyUpdate makes
/// OpenSSL write a reply; once the client's socket was full the read was retried at once,
/// forever, and before that one read went through every record OpenSSL held. PostgreSQL gives
/// such a client a backend of its own, which it alone stalls. Checked here by its effects: the
/// other session's queries keep their pace, a new client logs in, the proxy is not spinning
/// while the attacker waits, and the attacker's connection ends once it has sent more key
/// updates than a connection may (`KeyUpdateBudget`, a burst of 256: a second review found that a few
/// dozen such connections, each reply a system call inside the read, still held loops for
/// seconds), long before login_timeout.
final class TLSRecordFloodTests: IntegrationTestCase {
    /// A TLS 1.3 connection to `port` after SSLRequest, blocking, sends time out after 1 s.
    private func tlsClient(port: Int) throws -> (fd: Int32, ssl: OpaquePointer) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        // A small receive window: the proxy's replies fill the connection sooner.
        var window: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &window, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
        XCTAssertEqual(write(fd, sslRequest, 8), 8)
        var answer: UInt8 = 0
        XCTAssertEqual(read(fd, &answer, 1), 1)
        XCTAssertEqual(answer, UInt8(ascii: "S"))
        let ctx = try XCTUnwrap(SSL_CTX_new(TLS_client_method()))
        _ = pc_ssl_ctx_set_min_proto(ctx, TLS1_3_VERSION)
        let ssl = try XCTUnwrap(SSL_new(ctx))
        SSL_CTX_free(ctx)
        SSL_set_fd(ssl, fd)
        XCTAssertEqual(SSL_connect(ssl), 1, "TLS 1.3 handshake")
        return (fd, ssl)
    }

    private func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return -1 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // utime and stime: fields 14 and 15 of the line, 12 and 13 after the command's ")".
        return (Double(fields[11]) ?? 0) / 100 + (Double(fields[12]) ?? 0) / 100
    }

    func testAKeyUpdateFloodThatIsNeverReadStallsNoOneAndIsClosed() throws {
        try requireProxyTarget("the proxy's event loop")
        var options = ProxyProcess.Options(upstream: try harness.cluster)
        // One loop: the attacker and everyone else share it.
        options.extraSettings = ["workers = 1"]
        let proxy = try ProxyProcess(harness: try harness, options: options)
        defer { proxy.stop() }
        let conninfo = proxy.endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw")
        let victim = try LibPQSession(conninfo: conninfo)
        XCTAssertEqual(victim.run("SELECT 1", protocol: .simple).last?.rows, [["1"]])

        let connectedAt = Date()
        let (fd, ssl) = try tlsClient(port: proxy.port)
        defer { SSL_free(ssl); close(fd) }
        // The flood: KeyUpdate requests, none of the replies read, until the proxy stops taking
        // them (a send blocks past SO_SNDTIMEO: its replies have filled the connection) or 10 s.
        let flooding = DispatchGroup()
        nonisolated(unsafe) var sent = 0
        nonisolated(unsafe) let attacker = ssl
        DispatchQueue.global().async(group: flooding) {
            let start = Date()
            while Date().timeIntervalSince(start) < 10 {
                guard SSL_key_update(attacker, SSL_KEY_UPDATE_REQUESTED) == 1, SSL_do_handshake(attacker) == 1 else { break }
                sent += 1
            }
        }
        var worst = 0.0
        var failures: [String] = []
        // Each query on a thread of its own, so that a stalled loop fails the test instead of
        // hanging it (stopping the proxy ends the query).
        nonisolated(unsafe) let other = victim
        repeat {
            let start = Date()
            let query = DispatchGroup()
            nonisolated(unsafe) var outcome: [PQOutcome] = []
            DispatchQueue.global().async(group: query) { outcome = other.run("SELECT 1", protocol: .simple) }
            guard query.wait(timeout: .now() + 5) == .success else {
                proxy.stop()
                query.wait()
                flooding.wait()
                return XCTFail("a query on the attacker's loop waited over 5 s after \(sent) KeyUpdates")
            }
            worst = max(worst, Date().timeIntervalSince(start))
            if outcome.last?.rows != [["1"]] { failures.append("\(outcome)") }
            Thread.sleep(forTimeInterval: 0.05)
        } while flooding.wait(timeout: .now()) == .timedOut
        XCTAssertGreaterThan(sent, 300, "the flood did not get going")
        XCTAssertEqual(failures, [])
        XCTAssertLessThan(worst, 1.0, "a query on the attacker's loop waited \(worst) s during \(sent) KeyUpdates")

        // Whatever the attacker still holds, the loop goes quiet (before: 100 % of a core, for
        // good, once the replies had filled the connection).
        var quiet = false
        while !quiet && Date().timeIntervalSince(connectedAt) < 14 {
            let before = cpuSeconds(proxy.pid)
            Thread.sleep(forTimeInterval: 0.5)
            quiet = cpuSeconds(proxy.pid) - before < 0.15
        }
        XCTAssertTrue(quiet, "the proxy kept a core busy while the attacker waited")
        let newcomer = try LibPQSession(conninfo: conninfo)
        XCTAssertEqual(newcomer.run("SELECT 2", protocol: .simple).last?.rows, [["2"]])

        // The attacker's connection has ended (end of file after the replies the proxy had
        // queued, or a reset), well before login_timeout (60 s).
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 65536)
        var ended = false
        while !ended && Date().timeIntervalSince(connectedAt) < 20 {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { ended = true }
        }
        XCTAssertTrue(ended, "the attacker's connection was not closed after \(sent) key updates")
    }
}
