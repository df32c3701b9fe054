import XCTest
@testable import Pool

final class ServerPoolTests: XCTestCase {
    typealias P = ServerPool
    let t0: Duration = .seconds(1000)

    func settings(max: Int = 2, minIdle: Int = 0, idle: Duration? = .seconds(60), life: Duration? = nil, reuse: Bool = true) -> P.Settings {
        P.Settings(maxSize: max, minIdle: minIdle, idleTimeout: idle, maxLifetime: life, waitTimeout: .seconds(5), reuse: reuse)
    }
    func req(_ n: UInt64) -> P.RequestID { P.RequestID(rawValue: n) }
    func conn(_ n: UInt64) -> P.ConnectionID { P.ConnectionID(rawValue: n) }

    func testCheckoutOpensThenHandsOver() {
        var pool = P(settings: settings())
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0), [.openConnection(conn(1))])
        XCTAssertEqual(pool.connectionOpened(conn(1), now: t0), [.handOver(conn(1), to: req(1), check: false)])
        XCTAssertEqual(pool.connectionCount, 1)
    }

    func testReturnedConnectionIsResetAndReusedWithHealthCheck() {
        var pool = P(settings: settings())
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.resetConnection(conn(1))])
        XCTAssertEqual(pool.connectionResetCompleted(conn(1), success: true, now: t0), [])
        XCTAssertEqual(pool.idleCount, 1)
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0), [.handOver(conn(1), to: req(2), check: true)])
    }

    func testNotReusableOrClosePolicyClosesAndNeverReuses() {
        var pool = P(settings: settings(reuse: false))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.closeConnection(conn(1))])
        XCTAssertEqual(pool.connectionCount, 0)
        var pool2 = P(settings: settings())
        _ = pool2.checkoutRequested(req(1), now: t0)
        _ = pool2.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool2.connectionReturned(conn(1), reusable: false, now: t0), [.closeConnection(conn(1))])
    }

    func testMaxSizeQueuesAndWaitTimeoutFails() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0), [], "at max size the second waits")
        XCTAssertEqual(pool.tick(now: t0 + .seconds(4)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(5)), [.failRequest(req(2), .waitTimeout)])
        XCTAssertEqual(pool.waiterCount, 0)
    }

    func testWaiterServedWhenConnectionComesBack() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.resetConnection(conn(1))])
        XCTAssertEqual(pool.connectionResetCompleted(conn(1), success: true, now: t0), [.handOver(conn(1), to: req(2), check: false)])
    }

    func testConnectFailureReachesTheWaiterThatCausedIt() {
        var pool = P(settings: settings())
        _ = pool.checkoutRequested(req(7), now: t0)
        XCTAssertEqual(pool.connectionFailedToOpen(conn(1), reason: "refused", now: t0), [.failRequest(req(7), .connectFailed("refused"))])
        XCTAssertEqual(pool.connectionCount, 0)
        XCTAssertEqual(pool.waiterCount, 0)
    }

    func testMinIdleSparesAreOpenedAndKeptPastIdleTimeout() {
        var pool = P(settings: settings(max: 3, minIdle: 1, idle: .seconds(10), reuse: false))
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(1))])
        XCTAssertEqual(pool.connectionOpened(conn(1), now: t0), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(100)), [], "the one spare survives idle_timeout")
        // A checkout takes the spare and a new spare is opened right away.
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0), [.handOver(conn(1), to: req(1), check: true), .openConnection(conn(2))])
    }

    func testIdleTimeoutAndLifetimeClose() {
        var pool = P(settings: settings(max: 2, idle: .seconds(10), life: .seconds(30)))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.connectionReturned(conn(1), reusable: true, now: t0)
        _ = pool.connectionResetCompleted(conn(1), success: true, now: t0)
        XCTAssertEqual(pool.tick(now: t0 + .seconds(9)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(10)), [.closeConnection(conn(1))])
        // Lifetime: returned after max_lifetime → closed, not reset.
        _ = pool.checkoutRequested(req(2), now: t0 + .seconds(11))
        _ = pool.connectionOpened(conn(2), now: t0 + .seconds(11))
        XCTAssertEqual(pool.connectionReturned(conn(2), reusable: true, now: t0 + .seconds(41)), [.closeConnection(conn(2))])
    }

    func testServerClosingWhileIdleOpensForWaiters() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        XCTAssertEqual(pool.connectionClosed(conn(1), now: t0), [.openConnection(conn(2))])
    }

    func testShutdownFailsWaitersAndClosesIdle() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        XCTAssertEqual(pool.shutdown(), [.failRequest(req(2), .poolClosed)])
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.closeConnection(conn(1))])
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0), [.failRequest(req(3), .poolClosed)])
    }

    func testSparesBackOffAfterAConnectFailureButWaitersStillTry() {
        var pool = P(settings: P.Settings(maxSize: 3, minIdle: 1, idleTimeout: nil, maxLifetime: nil, waitTimeout: .seconds(5), reuse: false,
                                          spareRetryDelay: .seconds(15)))
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(1))])
        XCTAssertEqual(pool.connectionFailedToOpen(conn(1), reason: "refused", now: t0), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(1)), [], "no spare while the server keeps failing")
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0 + .seconds(2)), [.openConnection(conn(2))], "a waiting client still gets a try")
        _ = pool.connectionFailedToOpen(conn(2), reason: "refused", now: t0 + .seconds(2))
        XCTAssertEqual(pool.tick(now: t0 + .seconds(17)), [.openConnection(conn(3))], "spares resume after the delay")
    }
}
