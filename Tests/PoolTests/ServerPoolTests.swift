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
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0), [.handOver(conn(1), to: req(2), check: false)],
                       "idle a moment: the loop would have seen the server close it")
        _ = pool.connectionReturned(conn(1), reusable: true, now: t0)
        _ = pool.connectionResetCompleted(conn(1), success: true, now: t0 + .milliseconds(1))
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0 + .milliseconds(1) + P.healthCheckAfterIdle),
                       [.handOver(conn(1), to: req(3), check: true)], "idle a while: checked")
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

    func testMinIdleSparesAreKeptWhileThePoolIsInUseAndLingerBriefly() {
        var pool = P(settings: settings(max: 3, minIdle: 1, idle: .seconds(10), reuse: false))
        XCTAssertEqual(pool.settings.spareLinger, .seconds(1))
        XCTAssertEqual(pool.tick(now: t0), [], "no spare for a pool nobody has used")
        // The first checkout opens its own connection and a spare beside it.
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0), [.openConnection(conn(1))])
        XCTAssertEqual(pool.connectionOpened(conn(1), now: t0), [.handOver(conn(1), to: req(1), check: false)])
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(2))])
        XCTAssertEqual(pool.connectionOpened(conn(2), now: t0), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(100)), [], "a client holds a connection: the spare outlives pool_idle_timeout")
        // The client leaves: its connection closes, the spare is already there.
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0 + .seconds(100)), [.closeConnection(conn(1))])
        // The next client, right after (pgbench -C), takes the spare; a new one opens at once.
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0 + .milliseconds(100_002)),
                       [.handOver(conn(2), to: req(2), check: true), .openConnection(conn(3))])
        XCTAssertEqual(pool.connectionOpened(conn(3), now: t0 + .milliseconds(100_010)), [])
        XCTAssertEqual(pool.connectionReturned(conn(2), reusable: true, now: t0 + .seconds(101)), [.closeConnection(conn(2))])
        XCTAssertEqual(pool.sparesWanted(now: t0 + .milliseconds(101_999)), 1)
        XCTAssertEqual(pool.tick(now: t0 + .milliseconds(101_999)), [], "the spare lingers pool_spare_linger after the last client left")
        // Then the pool is cold: its spare closes though it was idle far less than pool_idle_timeout.
        XCTAssertEqual(pool.sparesWanted(now: t0 + .seconds(102)), 0)
        XCTAssertEqual(pool.tick(now: t0 + .seconds(102)), [.closeConnection(conn(3))])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(200)), [])
        XCTAssertEqual(pool.connectionCount, 0)
        // A pool used again later warms up again.
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0 + .seconds(300)), [.openConnection(conn(4))])
        XCTAssertEqual(pool.connectionOpened(conn(4), now: t0 + .seconds(300)), [.handOver(conn(4), to: req(3), check: false)])
        XCTAssertEqual(pool.connectionReturned(conn(4), reusable: true, now: t0 + .seconds(301)),
                       [.closeConnection(conn(4)), .openConnection(conn(5))], "the last client leaving opens a spare for the next one")
        XCTAssertEqual(pool.connectionOpened(conn(5), now: t0 + .seconds(301)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(302)), [.closeConnection(conn(5))])
    }

    /// A spare's login checks and role settings are those of the moment it opened: one older
    /// than pool_spare_max_age is replaced, never handed out (found in review: a spare let a
    /// client in after ALTER ROLE … NOLOGIN, with the role's settings from before).
    func testSparesOlderThanTheirMaxAgeAreReplacedNotHandedOut() {
        var s = settings(max: 3, minIdle: 1, idle: .seconds(600), reuse: false)
        s.spareMaxAge = .seconds(10)
        var pool = P(settings: s)
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0), [.openConnection(conn(1))])
        XCTAssertEqual(pool.connectionOpened(conn(1), now: t0), [.handOver(conn(1), to: req(1), check: false)])
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(2))])
        XCTAssertEqual(pool.connectionOpened(conn(2), now: t0), [])
        XCTAssertEqual(pool.tick(now: t0 + .milliseconds(9_999)), [], "younger than pool_spare_max_age: kept")
        // The sweeper replaces it while the pool is in use.
        XCTAssertEqual(pool.tick(now: t0 + .seconds(10)), [.closeConnection(conn(2)), .openConnection(conn(3))])
        XCTAssertEqual(pool.connectionOpened(conn(3), now: t0 + .seconds(10)), [])
        // Between sweeps, a checkout does not take a stale one: it waits for a fresh connection.
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0 + .milliseconds(20_500)),
                       [.closeConnection(conn(3)), .openConnection(conn(4))])
        XCTAssertEqual(pool.connectionOpened(conn(4), now: t0 + .seconds(21)).first, .handOver(conn(4), to: req(2), check: false))
        // Connections users had are not spares: they follow pool_idle_timeout and the lifetime.
        XCTAssertEqual(pool.connectionReturned(conn(4), reusable: true, now: t0 + .seconds(22)).first, .closeConnection(conn(4)))
    }

    func testSpareStillOpeningWhenThePoolGoesColdClosesOnceOpen() {
        var pool = P(settings: settings(max: 3, minIdle: 1, idle: .seconds(600), reuse: false))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.closeConnection(conn(1)), .openConnection(conn(2))])
        // A slow server: the spare is ready only after the linger.
        XCTAssertEqual(pool.tick(now: t0 + .seconds(2)), [])
        XCTAssertEqual(pool.connectionOpened(conn(2), now: t0 + .seconds(2)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(3)), [.closeConnection(conn(2))])
        XCTAssertEqual(pool.connectionCount, 0)
    }

    func testLingerZeroClosesSparesAtTheFirstTickWithoutUsers() {
        var s = settings(max: 3, minIdle: 1, idle: .seconds(600), reuse: false)
        s.spareLinger = .zero
        var pool = P(settings: s)
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(2))])
        _ = pool.connectionOpened(conn(2), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0 + .seconds(5)), [.closeConnection(conn(1))])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(5)), [.closeConnection(conn(2))])
    }

    func testColdPoolClosesUnusedSparesButKeepsReturnedConnectionsUntilIdleTimeout() {
        var pool = P(settings: settings(max: 3, minIdle: 1, idle: .seconds(60), reuse: true))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(2))])
        _ = pool.connectionOpened(conn(2), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0 + .seconds(1)), [.resetConnection(conn(1))])
        XCTAssertEqual(pool.connectionResetCompleted(conn(1), success: true, now: t0 + .seconds(1)), [])
        // server_reset = discard: the returned session is pooled as before; only the spare goes.
        XCTAssertEqual(pool.tick(now: t0 + .seconds(2)), [.closeConnection(conn(2))])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(60)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(61)), [.closeConnection(conn(1))])
    }

    func testNoSpareIsOpenedRightAfterTheServerEndedASession() {
        var pool = P(settings: settings(max: 4, minIdle: 1, idle: .seconds(600), reuse: false))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        _ = pool.connectionOpened(conn(2), now: t0)
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(3))])
        _ = pool.connectionOpened(conn(3), now: t0)
        // The server ends a client's session (FATAL, pg_terminate_backend, shutdown): no
        // spare is opened in its wake, nor when it ends the idle spare too.
        XCTAssertEqual(pool.connectionClosed(conn(1), now: t0 + .seconds(1)), [])
        XCTAssertEqual(pool.connectionClosed(conn(3), now: t0 + .seconds(1)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(10)), [])
        XCTAssertEqual(pool.connectionReturned(conn(2), reusable: true, now: t0 + .seconds(10)), [.closeConnection(conn(2))])
        // A client still gets its connection.
        XCTAssertEqual(pool.checkoutRequested(req(3), now: t0 + .seconds(11)), [.openConnection(conn(4))])
        _ = pool.connectionOpened(conn(4), now: t0 + .seconds(11))
        // Spares resume after the retry delay, while the pool is in use.
        XCTAssertEqual(pool.tick(now: t0 + .seconds(15)), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(16)), [.openConnection(conn(5))])
    }

    func testTransactionPoolingReleasesCountAsUse() {
        var pool = P(settings: settings(max: 3, minIdle: 1, idle: .seconds(600), reuse: false))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.connectionReleased(conn(1), now: t0 + .seconds(1)), [])
        XCTAssertEqual(pool.sparesWanted(now: t0 + .milliseconds(1_500)), 1, "within the linger of the last release")
        XCTAssertEqual(pool.sparesWanted(now: t0 + .seconds(2)), 0)
        // The released connection was used: it is not a spare, pool_idle_timeout applies.
        XCTAssertEqual(pool.tick(now: t0 + .seconds(5)), [])
        XCTAssertEqual(pool.idleCount, 1)
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
        _ = pool.checkoutRequested(req(9), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.tick(now: t0), [.openConnection(conn(2))])
        XCTAssertEqual(pool.connectionFailedToOpen(conn(2), reason: "refused", now: t0), [])
        XCTAssertEqual(pool.tick(now: t0 + .seconds(1)), [], "no spare while the server keeps failing")
        XCTAssertEqual(pool.checkoutRequested(req(1), now: t0 + .seconds(2)), [.openConnection(conn(3))], "a waiting client still gets a try")
        _ = pool.connectionFailedToOpen(conn(3), reason: "refused", now: t0 + .seconds(2))
        XCTAssertEqual(pool.tick(now: t0 + .seconds(17)), [.openConnection(conn(4))], "spares resume after the delay")
    }
}
