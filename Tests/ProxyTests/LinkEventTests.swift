import XCTest
import Glibc
import Config
import EventLoop
import Logging
import Wire
@testable import Pool
@testable import Proxy

/// The narrow seams above the leg (``UpstreamLinkOwner``/``UpstreamLinkEvent`` and
/// ``PoolUser``/``PoolEvent``), with no PostgreSQL: every report arrives after the current
/// batch, never from inside a call the owner or user made, the end of a link once, and nothing
/// after its holder closed it.
final class LinkEventTests: XCTestCase {
    final class LinkRecorder: UpstreamLinkOwner {
        var log: [String] = []
        func linkEvent(_ link: UpstreamLink, _ event: UpstreamLinkEvent) {
            switch event {
            case .ready: log.append("ready")
            case .failed(let fields): log.append("failed:\(fields.sqlState ?? "")")
            case .received: log.append("received")
            case .drained: log.append("drained")
            case .closed: log.append("closed")
            }
        }
    }

    final class UserRecorder: PoolUser {
        var log: [String] = []
        func poolEvent(_ event: PoolEvent) {
            switch event {
            case .granted: log.append("granted")
            case .refused(let fields): log.append("refused:\(fields.sqlState ?? "")")
            case .waitTimedOut(let fields, _): log.append("timedOut:\(fields.sqlState ?? "")")
            case .withdrawn: log.append("withdrawn")
            }
        }
    }

    /// A loopback port nothing listens on (bound, then closed): connects are refused.
    private func closedPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Errno.current }
        return UInt16(bigEndian: address.sin_port)
    }

    /// `host`: 127.0.0.1 (a refused TCP connect is reported by a readiness event), or a socket
    /// directory that does not exist (the connect fails at once, inside the link's own
    /// deferred start).
    private func runtime(port: UInt16, host: String = "127.0.0.1") throws -> RuntimeConfig {
        try RuntimeConfig.oneDatabase(port: port, host: host)
    }

    /// Runs `body` as deferred work on a fresh loop (as a session's code runs), then the loop
    /// for `duration`; lookup answers are routed as the loop worker routes them.
    private func run(for duration: Duration = .milliseconds(300), _ body: @escaping (EventLoop) -> Void) throws {
        let loop = try EventLoop(index: 0)
        loop.execute(afterCurrentBatch: { body(loop) })
        loop.scheduleTimer(at: loop.now() + duration) { loop.stop() }
        loop.run()
    }

    private func target(_ runtime: RuntimeConfig) throws -> DatabaseTarget {
        try XCTUnwrap(runtime.config.database(named: "app"))
    }

    func testAFailedConnectIsReportedOnceAfterTheBatchNeverFromInsideStart() throws {
        let runtime = try runtime(port: try closedPort())
        let target = try target(runtime)
        let recorder = LinkRecorder()
        var duringCall: [String] = ["unset"]
        var link: UpstreamLink?
        try run { loop in
            let lookups = LoopLookups(mailbox: loop.mailbox)
            let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app", parameters: [], route: target.route)
            let created = UpstreamLink(id: .init(rawValue: 1), spec: spec, target: target, password: nil, loop: loop, runtime: runtime,
                                       lookups: lookups)
            link = created
            created.owner = recorder
            created.start()
            duringCall = recorder.log
        }
        XCTAssertEqual(duringCall, [], "nothing is reported from inside start")
        XCTAssertEqual(recorder.log, ["failed:08006"], "the end of the link, once, after the batch")
        XCTAssertNotNil(link)
    }

    func testNothingIsReportedAfterTheHolderClosedTheLink() throws {
        let runtime = try runtime(port: 5432, host: "/nonexistent-portcullis-test-dir")
        let target = try target(runtime)
        let recorder = LinkRecorder()
        var link: UpstreamLink?
        try run { loop in
            let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app", parameters: [], route: target.route)
            let created = UpstreamLink(id: .init(rawValue: 1), spec: spec, target: target, password: nil, loop: loop, runtime: runtime,
                                       lookups: LoopLookups(mailbox: loop.mailbox))
            link = created
            created.owner = recorder
            created.start()
            // The connect fails in the next round of deferred work, and the holder closes the
            // link later in that same round: the failure, seen first, is reported after it.
            loop.execute(afterCurrentBatch: { created.close() })
        }
        XCTAssertEqual(recorder.log, [], "a link its holder closed reports nothing")
        XCTAssertNotNil(link)
    }

    func testACheckoutIsAnsweredAfterTheBatchNeverFromInsideCheckout() throws {
        let runtime = try runtime(port: try closedPort())
        let target = try target(runtime)
        let user = UserRecorder()
        var duringCall: [String] = ["unset"]
        var pool: PoolManager?
        try run { loop in
            let manager = PoolManager(loop: loop, runtime: runtime, logger: Logger(label: "test"))
            pool = manager
            let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app", parameters: [], route: target.route)
            manager.checkout(spec, target: target, password: nil, user: user)
            duringCall = user.log
        }
        XCTAssertEqual(duringCall, [], "nothing is reported from inside checkout")
        XCTAssertEqual(user.log, ["refused:08006"], "the connect error reaches the waiter once")
        XCTAssertNotNil(pool)
    }

    /// The connect fails in the same batch in which the waiter leaves: the failure reaches the
    /// pool after that batch, when no one waits any more, so the user hears nothing (it was
    /// answered from inside the link's own failure before).
    func testAUserThatLeftInTheBatchOfTheFailureHearsNothing() throws {
        let runtime = try runtime(port: 5432, host: "/nonexistent-portcullis-test-dir")
        let target = try target(runtime)
        let user = UserRecorder()
        var pool: PoolManager?
        try run { loop in
            let manager = PoolManager(loop: loop, runtime: runtime, logger: Logger(label: "test"))
            pool = manager
            let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app", parameters: [], route: target.route)
            let request = manager.checkout(spec, target: target, password: nil, user: user)
            // Runs in the batch in which the link connects and fails, after it.
            loop.execute(afterCurrentBatch: { manager.cancelCheckout(request) })
        }
        XCTAssertEqual(user.log, [], "a user that cancelled is not answered")
        XCTAssertNotNil(pool)
    }
}
