import XCTest
@testable import Pool

/// Transaction pooling's release: a connection at rest goes back without a reset, even with
/// server_reset = close (reuse off), to the first waiter or the idle list (LIFO).
final class ServerPoolReleaseTests: XCTestCase {
    typealias P = ServerPool
    let t0: Duration = .seconds(1000)

    func settings(max: Int = 2, life: Duration? = nil, reuse: Bool = false) -> P.Settings {
        P.Settings(maxSize: max, minIdle: 0, idleTimeout: .seconds(60), maxLifetime: life, waitTimeout: .seconds(5), reuse: reuse)
    }
    func req(_ n: UInt64) -> P.RequestID { P.RequestID(rawValue: n) }
    func conn(_ n: UInt64) -> P.ConnectionID { P.ConnectionID(rawValue: n) }

    func testReleasedConnectionGoesIdleWithoutResetAndIsHandedOutLIFO() {
        var pool = P(settings: settings())
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        _ = pool.connectionOpened(conn(2), now: t0)
        XCTAssertEqual(pool.connectionReleased(conn(2), now: t0), [])
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0), [])
        XCTAssertEqual(pool.idleCount, 2)
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0), [.handOver(conn(1), to: req(3), check: false)])
    }

    func testReleasedConnectionServesTheFirstWaiter() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0), [])
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0), [])
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0), [.handOver(conn(1), to: req(2), check: false)])
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0), [.handOver(conn(1), to: req(3), check: false)])
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0), [])
        XCTAssertEqual(pool.idleCount, 1)
    }

    /// A thousand clients on one connection are served in the order they asked, each once,
    /// with cancelled waiters skipped (the queue drops its consumed prefix as it goes).
    func testManyWaitersAreServedInOrder() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        for n in 2...1000 { XCTAssertEqual(pool.checkoutRequested(req(UInt64(n)), now: t0), []) }
        for n in stride(from: 10, through: 1000, by: 10) { _ = pool.checkoutCancelled(req(UInt64(n))) }
        var served: [UInt64] = []
        while case .handOver(_, let request, _)? = pool.connectionReleased(conn(1), now: t0).first { served.append(request.rawValue) }
        XCTAssertEqual(served, (2...1000).map { UInt64($0) }.filter { $0 % 10 != 0 })
        XCTAssertEqual(pool.waiterCount, 0)
        XCTAssertEqual(pool.idleCount, 1)
    }

    func testReleasePastLifetimeOrAfterShutdownCloses() {
        var pool = P(settings: settings(life: .seconds(10)))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0 + .seconds(11)), [.closeConnection(conn(1))])
        var closing = P(settings: settings())
        _ = closing.checkoutRequested(req(1), now: t0)
        _ = closing.connectionOpened(conn(1), now: t0)
        _ = closing.shutdown()
        XCTAssertEqual(closing.connectionReleased(conn(1), now: t0), [.closeConnection(conn(1))])
    }
}
