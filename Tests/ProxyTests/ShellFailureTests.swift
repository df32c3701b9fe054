import XCTest
import Glibc
import CPortcullisShims
import EventLoop
@testable import Proxy

/// Issue 10 item 1 without PostgreSQL: the production shell (Listener, LoopWorker,
/// ClientSession, PoolManager, UpstreamLink, Leg) on one event loop in this process, a fake
/// server on loopback, and each failure point a socket can hit — a reset on either side while a
/// flush is under way, while a refused statement's stand-in is in flight, while a checkout
/// waits; half-closed sockets; TLS renegotiation and garbage after the handshake. After each,
/// the process is still here, a session opened before the failure still works, a new one
/// works, and the loop is back at rest: no counted connection and no registration but the
/// listener's (a leaked leg, link or session would keep one).
final class ShellFailureTests: XCTestCase {
    private var upstream: FakeUpstream?
    private var proxy: InProcessProxy?

    override func tearDown() {
        proxy?.stop()
        proxy = nil
        upstream?.stop()
        upstream = nil
    }

    private func start(settings: [String] = [], tls: String = "disable", certDir: String? = nil) throws -> (FakeUpstream, InProcessProxy) {
        let fake = try FakeUpstream()
        upstream = fake
        let started = try InProcessProxy(upstream: fake, settings: settings, tls: tls, certDir: certDir)
        proxy = started
        return (fake, started)
    }

    private func login(_ proxy: InProcessProxy, user: String = "rw", file: StaticString = #filePath, line: UInt = #line) throws -> TestSocket {
        try XCTUnwrap(try TestSocket.login(port: proxy.port, user: user), "login as \(user)", file: file, line: line)
    }

    /// The session opened before the failure answers, a new one answers, and once both have
    /// left nothing is left behind on the loop but `pooled` idle server connections (kept for
    /// reuse with server_reset = discard).
    private func assertUntouched(_ bystander: TestSocket, _ proxy: InProcessProxy, pooled: Int = 0,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(bystander.roundTrip("SELECT 1")?.types, "TDCZ", "the session opened before still works", file: file, line: line)
        let fresh = try login(proxy, file: file, line: line)
        XCTAssertEqual(fresh.roundTrip("SELECT 1")?.types, "TDCZ", "a new session works", file: file, line: line)
        for socket in [bystander, fresh] {
            socket.send(TestSocket.frame("X", []))
            XCTAssertTrue(socket.seesEnd(), file: file, line: line)
            socket.close()
        }
        proxy.waitUntilIdle(baseline: 1 + pooled, file: file, line: line)
    }

    // MARK: Resets during a flush

    func testClientResetDuringAFlushCancelsItsQueryAndTouchesNoOne() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy)
        // 32 MB for a client that reads 16 kB of it and resets: the proxy's outbound buffer is
        // full (backpressure keeps the server unread) when the write fails.
        fake.reply { $0.contains("big") ? .largeResult(rows: 4000, rowSize: 8000) : .answer }
        let victim = try login(proxy)
        victim.shrinkReceiveBuffer()
        victim.send(TestSocket.query("SELECT big"))
        XCTAssertNotNil(victim.receive(exactly: 16 * 1024), "the result starts to arrive")
        usleep(200_000)
        victim.reset()
        // A client that vanishes mid-query has its query cancelled upstream, with the real
        // backend PID of its server connection (the second one: the bystander has the first).
        fake.wait("the cancel of the vanished client's query") { $0.cancels.contains(40_002) }
        XCTAssertFalse(fake.snapshot.cancels.contains(40_001), "the bystander's query is not cancelled")
        try assertUntouched(bystander, proxy)
        fake.wait("every server connection closed") { $0.open == 0 }
    }

    func testServerResetDuringAFlushEndsOnlyItsSession() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy)
        let victim = try login(proxy)
        // The server stops reading after the first query, the client pipelines 16 MB behind
        // it (the proxy's writes to the server back up), then the server resets.
        fake.reply { $0.hasPrefix("SELECT stall") ? .stallThenReset(seconds: 1) : .answer }
        victim.send(TestSocket.query("SELECT stall"))
        let filler = String(repeating: "x", count: 1 << 20)
        let sender = BackgroundSender.start(victim, (0..<16).map { _ in TestSocket.query("SELECT 1 -- \(filler)") })
        XCTAssertTrue(victim.seesEnd(), "the client sees its server connection end")
        LoopThread.join(sender)
        victim.close()
        try assertUntouched(bystander, proxy)
    }

    // MARK: Read-only gate

    func testServerResetWhileARefusedStatementsStandInIsInFlight() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy, user: "ro")
        let victim = try login(proxy, user: "ro")
        fake.reply { $0.contains("'::pg_catalog.int4") ? .reset : .answer }
        victim.send(TestSocket.query("CREATE TABLE t (a int)"))
        XCTAssertTrue(victim.seesEnd(), "the server's reset ends the session")
        victim.close()
        XCTAssertTrue(fake.snapshot.queries.contains { $0.contains("'::pg_catalog.int4") }, "the stand-in reached the server")
        fake.reply { _ in .answer }
        try assertUntouched(bystander, proxy)
    }

    func testClientResetWhileItsRefusalWaitsForTheServer() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy, user: "ro")
        let victim = try login(proxy, user: "ro")
        // The stand-in's error comes late: the client has gone by then.
        fake.reply { $0.contains("'::pg_catalog.int4") ? .delayed(milliseconds: 500) : .answer }
        victim.send(TestSocket.query("CREATE TABLE t (a int)"))
        fake.wait("the stand-in at the server") { $0.queries.contains { $0.contains("'::pg_catalog.int4") } }
        victim.reset()
        fake.wait("the cancel of the vanished client's statement") { $0.cancels.contains(40_002) }
        try assertUntouched(bystander, proxy)
        // Refusals still come back as refusals on the same loop.
        let after = try login(proxy, user: "ro")
        XCTAssertEqual(after.roundTrip("CREATE TABLE t (a int)")?.sqlState, "25006")
        after.close()
        proxy.waitUntilIdle()
    }

    // MARK: Pool checkout

    func testClientGoneWhileWaitingForAPoolCheckout() throws {
        let (fake, proxy) = try start(settings: ["pool_max_size = 1", "pool_wait_timeout = 20s"])
        let holder = try login(proxy)
        // Authenticated, then waiting: the only server connection is the holder's.
        let waiter = try TestSocket.connect(port: proxy.port)
        waiter.send(TestSocket.startup(user: "rw", database: "app"))
        usleep(300_000)
        waiter.reset()
        usleep(100_000)
        XCTAssertEqual(holder.roundTrip("SELECT 1")?.types, "TDCZ")
        holder.send(TestSocket.frame("X", []))
        XCTAssertTrue(holder.seesEnd())
        holder.close()
        // The connection the holder gave back is not handed to the vanished waiter: the next
        // client gets one at once (a leaked checkout would keep the pool full for 20 s).
        let started = MonotonicInstant.now()
        let next = try login(proxy)
        XCTAssertLessThan(MonotonicInstant.now().duration(since: started), .seconds(5))
        XCTAssertEqual(next.roundTrip("SELECT 1")?.types, "TDCZ")
        XCTAssertEqual(fake.snapshot.accepted, 2, "one connection for the holder, one for the next client; none for the waiter")
        next.close()
        proxy.waitUntilIdle()
        fake.wait("every server connection closed") { $0.open == 0 }
    }

    func testClientGoneWhileItsServerConnectionIsBeingMade() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy)
        fake.state.withLock { $0.startupDelayMilliseconds = 500 }
        let victim = try TestSocket.connect(port: proxy.port)
        victim.send(TestSocket.startup(user: "rw", database: "app"))
        fake.wait("the connect for the victim") { $0.accepted == 2 }
        victim.reset()
        usleep(800_000)
        fake.state.withLock { $0.startupDelayMilliseconds = 0 }
        try assertUntouched(bystander, proxy)
    }

    func testServerResetDuringThePoolsDiscardAll() throws {
        let (fake, proxy) = try start(settings: ["server_reset = discard"])
        fake.reply { $0 == "DISCARD ALL" ? .reset : .answer }
        let first = try login(proxy)
        XCTAssertEqual(first.roundTrip("SELECT 1")?.types, "TDCZ")
        first.send(TestSocket.frame("X", []))
        XCTAssertTrue(first.seesEnd())
        first.close()
        fake.wait("the reset of the returned connection") { $0.queries.contains("DISCARD ALL") && $0.open == 0 }
        // The pool forgot the connection that died while it was being reset.
        let next = try login(proxy)
        XCTAssertEqual(next.roundTrip("SELECT 1")?.types, "TDCZ")
        XCTAssertEqual(fake.snapshot.accepted, 2)
        fake.reply { _ in .answer }
        try assertUntouched(next, proxy, pooled: 2)
        XCTAssertEqual(fake.snapshot.open, 2, "both reset connections wait in the pool")
    }

    func testAnIdleServerConnectionThatClosesIsNotHandedOut() throws {
        let (fake, proxy) = try start(settings: ["server_reset = discard"])
        // DISCARD ALL succeeds, then the server goes away while the connection idles.
        fake.reply { $0 == "DISCARD ALL" ? .answerThenClose : .answer }
        let first = try login(proxy)
        XCTAssertEqual(first.roundTrip("SELECT 1")?.types, "TDCZ")
        first.send(TestSocket.frame("X", []))
        XCTAssertTrue(first.seesEnd())
        first.close()
        fake.wait("the idle connection closed by the server") { $0.queries.contains("DISCARD ALL") && $0.open == 0 }
        fake.reply { _ in .answer }
        let next = try login(proxy)
        XCTAssertEqual(next.roundTrip("SELECT 1")?.types, "TDCZ", "a new server connection, not the dead idle one")
        XCTAssertEqual(fake.snapshot.accepted, 2)
        try assertUntouched(next, proxy, pooled: 2)
        XCTAssertEqual(fake.snapshot.open, 2, "both reset connections wait in the pool")
    }

    // MARK: Half-closed sockets

    func testClientHalfCloseAfterAQuery() throws {
        let (_, proxy) = try start()
        let bystander = try login(proxy)
        let victim = try login(proxy)
        victim.send(TestSocket.query("SELECT 1"))
        victim.shutdownWrite()
        // As PostgreSQL, which ends a backend whose client socket reads EOF: the session ends.
        XCTAssertTrue(victim.seesEnd())
        victim.close()
        try assertUntouched(bystander, proxy)
    }

    func testClientHalfCloseDuringStartup() throws {
        let (_, proxy) = try start()
        let bystander = try login(proxy)
        let victim = try TestSocket.connect(port: proxy.port)
        victim.send(Array(TestSocket.startup(user: "rw", database: "app").prefix(10)))
        victim.shutdownWrite()
        XCTAssertTrue(victim.seesEnd())
        victim.close()
        try assertUntouched(bystander, proxy)
    }

    func testServerHalfCloseEndsTheSession() throws {
        let (fake, proxy) = try start()
        let bystander = try login(proxy)
        let victim = try login(proxy)
        fake.reply { $0.contains("half") ? .halfClose : .answer }
        victim.send(TestSocket.query("SELECT 'half'"))
        XCTAssertTrue(victim.seesEnd(), "the server's EOF ends the session")
        victim.close()
        fake.reply { _ in .answer }
        try assertUntouched(bystander, proxy)
        fake.wait("every server connection closed") { $0.open == 0 }
    }

    // MARK: TLS after the handshake

    private static var certDir: String {
        let path = "\(#filePath)"
        let root = path.range(of: "/Tests/ProxyTests/").map { String(path[..<$0.lowerBound]) } ?? "."
        return "\(root)/certs-example/generated"
    }

    private func requireCertificates() throws {
        guard access("\(Self.certDir)/server.crt", R_OK) == 0 else {
            throw XCTSkip("no test certificates: run certs-example/generate.sh certs-example/generated")
        }
    }

    func testTLSRenegotiationIsRefusedAndTouchesNoOne() throws {
        try requireCertificates()
        let (_, proxy) = try start(tls: "require", certDir: Self.certDir)
        let bystander = try TLSTestClient(port: proxy.port, user: "rw")
        let victim = try TLSTestClient(port: proxy.port, user: "rw")
        XCTAssertEqual(victim.roundTrip("SELECT 1"), "TDCZ")
        // TLS 1.2 renegotiation (PostgreSQL sets SSL_OP_NO_RENEGOTIATION as well): refused.
        XCTAssertEqual(victim.renegotiate(), .refused, "a renegotiation is asked for and must not complete")
        victim.close()
        XCTAssertEqual(bystander.roundTrip("SELECT 1"), "TDCZ", "the session opened before still works")
        let fresh = try TLSTestClient(port: proxy.port, user: "rw")
        XCTAssertEqual(fresh.roundTrip("SELECT 1"), "TDCZ")
        bystander.close()
        fresh.close()
        proxy.waitUntilIdle()
    }

    func testGarbageAfterTheTLSHandshakeEndsOnlyThatSession() throws {
        try requireCertificates()
        let (_, proxy) = try start(tls: "require", certDir: Self.certDir)
        let bystander = try TLSTestClient(port: proxy.port, user: "rw")
        let victim = try TLSTestClient(port: proxy.port, user: "rw")
        // Plaintext bytes where TLS records belong: the record layer fails, the session ends.
        victim.socket.send(Array("SELECT 1; this is not a TLS record\u{0}".utf8) + [UInt8](repeating: 0x17, count: 64))
        XCTAssertTrue(victim.socket.seesEnd(), "the proxy closes the connection")
        victim.socket.close()
        XCTAssertEqual(bystander.roundTrip("SELECT 1"), "TDCZ")
        bystander.close()
        proxy.waitUntilIdle()
    }
}

/// Writes a list of messages from a thread of its own (the test thread must be free to read);
/// join it before closing the socket.
enum BackgroundSender {
    static func start(_ socket: TestSocket, _ messages: [[UInt8]]) -> pthread_t {
        LoopThread.start(name: "test-sender") {
            for message in messages where !socket.send(message) { return }
        }
    }
}

/// A libpq-like TLS client: SSLRequest, then OpenSSL (TLS 1.2 at most, so a renegotiation can
/// be asked for; no certificate checks), then a protocol 3.0 login inside TLS.
final class TLSTestClient {
    let socket: TestSocket
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private var pending: [UInt8] = []

    init(port: UInt16, user: String) throws {
        socket = try TestSocket.connect(port: port)
        socket.send(TestSocket.int32(8) + TestSocket.int32(80_877_103))
        guard socket.receive(exactly: 1) == [UInt8(ascii: "S")] else { throw TLSTestError("SSLRequest refused") }
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSTestError("SSL_CTX_new") }
        self.context = context
        _ = pc_ssl_ctx_set_max_proto(context, TLS1_2_VERSION)
        guard let ssl = SSL_new(context) else { throw TLSTestError("SSL_new") }
        self.ssl = ssl
        _ = SSL_set_fd(ssl, socket.fd)
        guard SSL_connect(ssl) == 1 else { throw TLSTestError("TLS handshake failed") }
        write(TestSocket.startup(user: user, database: "app"))
        guard let login = receive(until: UInt8(ascii: "Z")), !login.contains(UInt8(ascii: "E")) else { throw TLSTestError("login failed") }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
    }

    /// Message types through the first `type`; nil when the connection ended.
    func receive(until type: UInt8) -> [UInt8]? {
        var types: [UInt8] = []
        while true {
            while pending.count >= 5 {
                let length = Int(UInt32(pending[1]) << 24 | UInt32(pending[2]) << 16 | UInt32(pending[3]) << 8 | UInt32(pending[4]))
                guard pending.count >= 1 + length else { break }
                types.append(pending[0])
                pending.removeFirst(1 + length)
                if types.last == type { return types }
            }
            var chunk = [UInt8](repeating: 0, count: 16384)
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            guard n > 0 else { return nil }
            pending += chunk[0..<Int(n)]
        }
    }

    func roundTrip(_ sql: String) -> String? {
        write(TestSocket.query(sql))
        return receive(until: UInt8(ascii: "Z")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Asks for a renegotiation and drives it (a blocking handshake: a ClientHello inside the
    /// session). A server that refuses answers with a no_renegotiation alert or ends the
    /// connection.
    func renegotiate() -> Renegotiation {
        guard SSL_renegotiate(ssl) == 1 else { return .notAsked }
        return SSL_do_handshake(ssl) == 1 && SSL_renegotiate_pending(ssl) == 0 ? .completed : .refused
    }

    enum Renegotiation { case notAsked, refused, completed }

    func close() {
        write(TestSocket.frame("X", []))
        _ = SSL_shutdown(ssl)
        socket.close()
    }
}

struct TLSTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
