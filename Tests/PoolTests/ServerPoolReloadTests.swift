import XCTest
@testable import Pool

/// Settings changed by a reload apply to the pool in place.
final class ServerPoolReloadTests: XCTestCase {
    typealias P = ServerPool
    let t0: Duration = .seconds(1000)

    func settings(max: Int, minIdle: Int = 0, reuse: Bool = true) -> P.Settings {
        P.Settings(maxSize: max, minIdle: minIdle, idleTimeout: .seconds(60), maxLifetime: nil, waitTimeout: .seconds(5), reuse: reuse)
    }
    func req(_ n: UInt64) -> P.RequestID { P.RequestID(rawValue: n) }
    func conn(_ n: UInt64) -> P.ConnectionID { P.ConnectionID(rawValue: n) }

    func testLoweredMaxSizeClosesIdleSurplusAndReturnedConnectionsOverIt() {
        var pool = P(settings: settings(max: 3))
        for n in 1...3 {
            _ = pool.checkoutRequested(req(UInt64(n)), now: t0)
            _ = pool.connectionOpened(conn(UInt64(n)), now: t0)
        }
        _ = pool.connectionReturned(conn(1), reusable: true, now: t0)
        _ = pool.connectionResetCompleted(conn(1), success: true, now: t0)
        XCTAssertEqual(pool.settingsChanged(settings(max: 1), now: t0), [.closeConnection(conn(1))])
        XCTAssertEqual(pool.settings.maxSize, 1)
        // Two still checked out, one over the limit: the first returned closes, the second stays.
        XCTAssertEqual(pool.connectionReturned(conn(2), reusable: true, now: t0), [.closeConnection(conn(2))])
        XCTAssertEqual(pool.connectionReturned(conn(3), reusable: true, now: t0), [.resetConnection(conn(3))])
        // A checkout while the one connection is busy waits: the new limit holds.
        _ = pool.connectionResetCompleted(conn(3), success: true, now: t0)
        XCTAssertEqual(pool.checkoutRequested(req(4), now: t0), [.handOver(conn(3), to: req(4), check: false)])
        XCTAssertEqual(pool.checkoutRequested(req(5), now: t0), [])
        XCTAssertEqual(pool.waiterCount, 1)
    }

    func testRaisedMaxSizeServesWaiters() {
        var pool = P(settings: settings(max: 1))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        XCTAssertEqual(pool.checkoutRequested(req(2), now: t0), [])
        XCTAssertEqual(pool.settingsChanged(settings(max: 2), now: t0), [.openConnection(conn(2))])
        XCTAssertEqual(pool.connectionOpened(conn(2), now: t0), [.handOver(conn(2), to: req(2), check: false)])
    }

    func testResetPolicyChangeAppliesToTheNextReturn() {
        var pool = P(settings: settings(max: 2, reuse: false))
        _ = pool.checkoutRequested(req(1), now: t0)
        _ = pool.connectionOpened(conn(1), now: t0)
        _ = pool.settingsChanged(settings(max: 2, reuse: true), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.resetConnection(conn(1))])
        _ = pool.connectionResetCompleted(conn(1), success: true, now: t0)
        _ = pool.checkoutRequested(req(2), now: t0)
        _ = pool.settingsChanged(settings(max: 2, reuse: false), now: t0)
        XCTAssertEqual(pool.connectionReturned(conn(1), reusable: true, now: t0), [.closeConnection(conn(1))])
    }
}
