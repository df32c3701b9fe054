import XCTest
import Glibc
import Config
import EventLoop
import Logging
import Synchronization
@testable import Proxy

// An in-process proxy (one event loop, the production LoopWorker/Listener/ClientSession/
// PoolManager/UpstreamLink path) in front of a fake PostgreSQL on loopback, so the shell's
// failure points can be driven without a real server. Only the wire behaviour a session
// needs is imitated (protocol 3.0: start-up, simple Query, Terminate, CancelRequest).

/// A blocking TCP client socket on 127.0.0.1 with a receive timeout.
final class TestSocket: @unchecked Sendable {
    let fd: Int32
    private var pending: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    static func connect(port: UInt16) throws -> TestSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Errno.current }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { let error = Errno.current; Glibc.close(fd); throw error }
        return TestSocket(fd: fd)
    }

    /// Small receive buffer: the kernel then holds little of what the proxy writes, so its
    /// own outbound buffer fills and a flush is in progress when the socket dies.
    func shrinkReceiveBuffer() {
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    /// Some bytes, or nil at EOF, error or timeout.
    func receiveSome() -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            return Array(chunk[0..<n])
        }
    }

    /// Exactly `count` bytes, or nil.
    func receive(exactly count: Int) -> [UInt8]? {
        while pending.count < count {
            guard let more = receiveSome() else { return nil }
            pending += more
        }
        defer { pending.removeFirst(count) }
        return Array(pending[0..<count])
    }

    /// One protocol 3.0 message (type, payload), or nil at EOF.
    func receiveMessage() -> (type: UInt8, payload: [UInt8])? {
        guard let header = receive(exactly: 5) else { return nil }
        let length = Int(UInt32(header[1]) << 24 | UInt32(header[2]) << 16 | UInt32(header[3]) << 8 | UInt32(header[4]))
        guard length >= 4, let payload = receive(exactly: length - 4) else { return nil }
        return (header[0], payload)
    }

    /// Messages up to and including the first of `type`; nil if the connection ended first.
    func receive(until type: Character) -> [(type: UInt8, payload: [UInt8])]? {
        var messages: [(type: UInt8, payload: [UInt8])] = []
        while let message = receiveMessage() {
            messages.append(message)
            if message.type == UInt8(ascii: type.unicodeScalars.first!) { return messages }
        }
        return nil
    }

    /// True once the peer closed: EOF or a reset, within the receive timeout.
    func seesEnd() -> Bool {
        pending.removeAll()
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET || errno == EPIPE }
        }
    }

    /// Closes with a TCP reset (SO_LINGER 0): unread bytes and queued writes are dropped.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(fd)
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    func close() { _ = Glibc.close(fd) }

    static func int32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func frame(_ type: Character, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(ascii: type.unicodeScalars.first!)] + int32(UInt32(payload.count + 4)) + payload
    }

    static func query(_ sql: String) -> [UInt8] { frame("Q", Array(sql.utf8) + [0]) }

    static func startup(user: String, database: String) -> [UInt8] {
        var body = int32(196_608)
        for (key, value) in [("user", user), ("database", database)] { body += Array(key.utf8) + [0] + Array(value.utf8) + [0] }
        body.append(0)
        return int32(UInt32(body.count + 4)) + body
    }

    /// Connects and logs in (the proxy trusts loopback); nil when refused or closed.
    static func login(port: UInt16, user: String, database: String = "app") throws -> TestSocket? {
        let socket = try connect(port: port)
        socket.send(startup(user: user, database: database))
        guard let messages = socket.receive(until: "Z") else { return nil }
        return messages.contains { $0.type == UInt8(ascii: "E") } ? nil : socket
    }

    /// A query and its answer, through ReadyForQuery.
    func roundTrip(_ sql: String) -> [(type: UInt8, payload: [UInt8])]? {
        guard send(TestSocket.query(sql)) else { return nil }
        return receive(until: "Z")
    }
}

extension Array where Element == (type: UInt8, payload: [UInt8]) {
    var types: String { String(decoding: map(\.type), as: UTF8.self) }
    /// The SQLSTATE of the first ErrorResponse.
    var sqlState: String? {
        guard let error = first(where: { $0.type == UInt8(ascii: "E") }) else { return nil }
        var i = 0
        let payload = error.payload
        while i < payload.count, payload[i] != 0 {
            let code = payload[i]
            i += 1
            let start = i
            while i < payload.count, payload[i] != 0 { i += 1 }
            if code == UInt8(ascii: "C") { return String(decoding: payload[start..<i], as: UTF8.self) }
            i += 1
        }
        return nil
    }
}

/// What the fake server does with one Query (after start-up).
enum FakeReply: Sendable {
    /// One row (`1`), CommandComplete, ReadyForQuery — as `SELECT 1`.
    case answer
    /// `rows` DataRows of `rowSize` bytes each, then as `answer`: a large result.
    case largeResult(rows: Int, rowSize: Int)
    /// Nothing: the connection is reset (RST) at once.
    case reset
    /// Closes its writing side only (FIN), keeps reading.
    case halfClose
    /// Stops reading for `seconds` (the proxy's writes back up), then resets.
    case stallThenReset(seconds: Int)
    /// Waits `milliseconds`, then answers as PostgreSQL would.
    case delayed(milliseconds: Int)
    /// Answers, then closes the connection (as a server shut down while the connection idles).
    case answerThenClose
}

/// A fake PostgreSQL 15 on 127.0.0.1: trust authentication, the ParameterStatus values a real
/// one reports (read-only sessions need default_transaction_read_only and friends), a real
/// BackendKeyData per connection; the refused-statement stand-in fails as PostgreSQL fails it.
final class FakeUpstream: Sendable {
    struct State {
        var accepted = 0
        var open = 0
        var cancels: [Int32] = []
        var queries: [String] = []
        var startupDelayMilliseconds = 0
    }

    let port: UInt16
    private let listenFD: Int32
    let state = Mutex(State())
    private let replies: Mutex<@Sendable (String) -> FakeReply>

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        guard bound else { throw Errno.current }
        listenFD = fd
        port = UInt16(bigEndian: address.sin_port)
        replies = Mutex({ _ in .answer })
        let listener = fd
        LoopThread.detach(LoopThread.start(name: "fake-pg") { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { if errno == EINTR { continue }; return }
                LoopThread.detach(LoopThread.start(name: "fake-pg-conn") { [self] in self.serve(TestSocket(fd: client)) })
            }
        })
    }

    /// Stops accepting (connections already open go on).
    func stop() { _ = shutdown(listenFD, Int32(SHUT_RDWR)) }

    func reply(_ choose: @escaping @Sendable (String) -> FakeReply) { replies.withLock { $0 = choose } }

    var snapshot: State { state.withLock { $0 } }

    /// Waits until `condition` holds for the server's state (at most 10 s).
    func wait(_ what: String, file: StaticString = #filePath, line: UInt = #line, until condition: (State) -> Bool) {
        let deadline = MonotonicInstant.now() + .seconds(10)
        while MonotonicInstant.now() < deadline {
            if condition(snapshot) { return }
            usleep(10_000)
        }
        XCTFail("fake server: \(what) did not happen within 10 s (state: \(snapshot))", file: file, line: line)
    }

    private func serve(_ socket: TestSocket) {
        defer { socket.close() }
        guard let lengthBytes = socket.receive(exactly: 4) else { return }
        let length = Int(UInt32(lengthBytes[0]) << 24 | UInt32(lengthBytes[1]) << 16 | UInt32(lengthBytes[2]) << 8 | UInt32(lengthBytes[3]))
        guard length >= 8, length < 10_000, let body = socket.receive(exactly: length - 4) else { return }
        let code = UInt32(body[0]) << 24 | UInt32(body[1]) << 16 | UInt32(body[2]) << 8 | UInt32(body[3])
        if code == 80_877_102 {
            // CancelRequest (55.2.7): the backend's PID follows; no reply.
            let pid = Int32(bitPattern: UInt32(body[4]) << 24 | UInt32(body[5]) << 16 | UInt32(body[6]) << 8 | UInt32(body[7]))
            state.withLock { $0.cancels.append(pid) }
            return
        }
        let (number, delay) = state.withLock { state -> (Int, Int) in
            state.accepted += 1
            state.open += 1
            return (state.accepted, state.startupDelayMilliseconds)
        }
        defer { state.withLock { $0.open -= 1 } }
        if delay > 0 { usleep(UInt32(delay) * 1000) }
        var out = TestSocket.frame("R", TestSocket.int32(0))
        for (name, value) in [("server_version", "15.0"), ("server_encoding", "UTF8"), ("client_encoding", "UTF8"),
                              ("standard_conforming_strings", "on"), ("default_transaction_read_only", "on"),
                              ("DateStyle", "ISO, MDY"), ("integer_datetimes", "on"), ("TimeZone", "UTC"),
                              ("is_superuser", "off"), ("session_authorization", "app")] {
            out += TestSocket.frame("S", Array(name.utf8) + [0] + Array(value.utf8) + [0])
        }
        out += TestSocket.frame("K", TestSocket.int32(UInt32(40_000 + number)) + TestSocket.int32(0x5ec2e7))
        out += TestSocket.frame("Z", [UInt8(ascii: "I")])
        guard socket.send(out) else { return }
        while let message = socket.receiveMessage() {
            switch message.type {
            case UInt8(ascii: "X"):
                return
            case UInt8(ascii: "Q"):
                let sql = String(decoding: message.payload.dropLast(), as: UTF8.self)
                state.withLock { $0.queries.append(sql) }
                let choice = replies.withLock { $0 }(sql)
                guard perform(choice, sql: sql, on: socket) else { return }
            default:
                // Nothing else is used here: answer as an unsupported message would be.
                return
            }
        }
    }

    /// False when the connection is over.
    private func perform(_ reply: FakeReply, sql: String, on socket: TestSocket) -> Bool {
        switch reply {
        case .answer:
            return socket.send(Self.answer(to: sql))
        case .largeResult(let rows, let rowSize):
            var out = Self.rowDescription
            let row = TestSocket.frame("D", [0, 1] + TestSocket.int32(UInt32(rowSize)) + [UInt8](repeating: UInt8(ascii: "x"), count: rowSize))
            for _ in 0..<rows { out += row }
            out += TestSocket.frame("C", Array("SELECT \(rows)".utf8) + [0]) + TestSocket.frame("Z", [UInt8(ascii: "I")])
            return socket.send(out)
        case .reset:
            socket.reset()
            return false
        case .halfClose:
            socket.shutdownWrite()
            return true
        case .stallThenReset(let seconds):
            sleep(UInt32(seconds))
            socket.reset()
            return false
        case .delayed(let milliseconds):
            usleep(UInt32(milliseconds) * 1000)
            return socket.send(Self.answer(to: sql))
        case .answerThenClose:
            _ = socket.send(Self.answer(to: sql))
            usleep(50_000)
            return false
        }
    }

    static let rowDescription = TestSocket.frame("T", [0, 1] + Array("?column?".utf8) + [0] + [0, 0, 0, 0, 0, 0]
                                                     + TestSocket.int32(23) + [0, 4] + TestSocket.int32(UInt32.max) + [0, 0])

    /// `SELECT 1` (`DISCARD ALL` as PostgreSQL answers it); the read-only gate's stand-in (`SELECT '<marker>'::pg_catalog.int4`) fails
    /// as PostgreSQL fails it (22P02 during parse analysis).
    static func answer(to sql: String) -> [UInt8] {
        if let start = sql.range(of: "SELECT '"), let end = sql.range(of: "'::pg_catalog.int4") {
            let marker = sql[start.upperBound..<end.lowerBound]
            var fields: [UInt8] = []
            for (code, value) in [("S", "ERROR"), ("V", "ERROR"), ("C", "22P02"), ("M", "invalid input syntax for type integer: \"\(marker)\"")] {
                fields += Array(code.utf8) + Array(value.utf8) + [0]
            }
            return TestSocket.frame("E", fields + [0]) + TestSocket.frame("Z", [UInt8(ascii: "I")])
        }
        // The pool's reset: PostgreSQL answers with its own tag and no rows (the pool refuses
        // anything else as a reset it cannot trust).
        if sql == "DISCARD ALL" {
            return TestSocket.frame("C", Array("DISCARD ALL".utf8) + [0]) + TestSocket.frame("Z", [UInt8(ascii: "I")])
        }
        return rowDescription + TestSocket.frame("D", [0, 1] + TestSocket.int32(1) + [UInt8(ascii: "1")])
            + TestSocket.frame("C", Array("SELECT 1".utf8) + [0]) + TestSocket.frame("Z", [UInt8(ascii: "I")])
    }
}

/// Asks the loop, on its own thread, how many registrations it holds (listener, sessions,
/// server connections): after every session ended it must be back where it started.
struct LoopStateProbe: Sendable {
    let answer: @Sendable (Int) -> Void
}

/// Portcullis in this process: one event loop on its own thread running the production
/// shell, a listener on an ephemeral loopback port. No warm spares (`pool_min_idle = 0`): the
/// tests count the fake server's connections at each failure point.
final class InProcessProxy: Sendable {
    let port: UInt16
    let counter = ConnectionCounter()
    private let mailboxes = MailboxDirectory(count: 1)
    private let thread: Mutex<pthread_t?> = Mutex(nil)

    init(upstream: FakeUpstream, settings: [String] = [], tls: String = "disable", certDir: String? = nil) throws {
        var tlsSection = "client_tls = \(tls)\n"
        if let certDir {
            tlsSection += "client_tls_cert_file = \(certDir)/server.crt\nclient_tls_key_file = \(certDir)/server.key\n"
        }
        let text = """
            [portcullis]
            listen_addresses = 127.0.0.1
            listen_port = 1
            workers = 1
            host_auth_method = trust
            local_auth_method = trust
            log_level = warning
            pool_min_idle = 0
            \(settings.joined(separator: "\n"))

            [tls]
            \(tlsSection)
            [databases]
            app = host=127.0.0.1 port=\(upstream.port) dbname=app user=app sslmode=disable

            [identities]
            rw = mode=read-write server_user=app
            ro = mode=read-only server_user=app
            """
        let config = try ConfigLoader.parse(text, fileName: "shell-test.ini")
        var logger = Logger(label: "shell-test")
        logger.logLevel = .warning
        let runtime = try RuntimeConfig(config: config, mockSeed: [UInt8](repeating: 7, count: 32), logger: logger)
        let listenFD = try ListeningSocket.tcp(host: "127.0.0.1", port: 0, reusePort: false)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFD, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        let shared = ProxyShared()
        // The fake server answers no catalog query: its catalog holds nothing to check.
        shared.catalogs.store(.empty, for: "app", loadStartedAt: MonotonicInstant.now(), at: MonotonicInstant.now(), maxAge: .seconds(3600))
        let (counter, mailboxes) = (self.counter, self.mailboxes)
        let loads = LoopLoads(count: 1)
        let started = LoopThread.start(name: "shell-test-loop") {
            let loop: EventLoop
            do { loop = try EventLoop(index: 0) } catch { fatalError("event loop: \(error)") }
            let worker = LoopWorker(loop: loop, runtime: runtime, shared: shared, counter: counter, loads: loads, mailboxes: mailboxes)
            let production = loop.controlMessageReceived
            loop.controlMessageReceived = { message in
                if let probe = message as? LoopStateProbe { probe.answer(loop.registrationCount) } else { production?(message) }
            }
            worker.startSweeper()
            do { try worker.addListener(fd: listenFD, label: "test") } catch { fatalError("listener: \(error)") }
            mailboxes.set(0, loop.mailbox)
            loop.run()
            _ = worker
        }
        thread.withLock { $0 = started }
    }

    /// The loop's registration count, read on the loop (nil if it did not answer in 5 s).
    func registrations() -> Int? {
        let answer = Mutex<Int?>(nil)
        mailboxes.box(0)?.post(LoopStateProbe { count in answer.withLock { $0 = count } })
        let deadline = MonotonicInstant.now() + .seconds(5)
        while MonotonicInstant.now() < deadline {
            if let count = answer.withLock({ $0 }) { return count }
            usleep(5_000)
        }
        return nil
    }

    /// Waits until no client connection is counted any more, then for the loop's
    /// registrations to fall back to `baseline` (the listener alone: 1).
    func waitUntilIdle(baseline: Int = 1, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = MonotonicInstant.now() + .seconds(10)
        var registrations: Int?
        while MonotonicInstant.now() < deadline {
            registrations = self.registrations()
            if counter.value.load(ordering: .relaxed) == 0 && registrations == baseline { return }
            usleep(10_000)
        }
        XCTFail("proxy did not come back to rest: \(counter.value.load(ordering: .relaxed)) connection(s), \(registrations.map(String.init) ?? "no answer") registration(s)",
                file: file, line: line)
    }

    func stop() {
        mailboxes.broadcast(LoopControl.beginShutdown(drainTimeout: .milliseconds(200)))
        if let started = thread.withLock({ $0 }) { LoopThread.join(started) }
    }
}
