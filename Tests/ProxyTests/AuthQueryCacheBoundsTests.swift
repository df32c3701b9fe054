import XCTest
import EventLoop
@testable import Proxy

/// What bounds the upstream work unauthenticated logins can cause through auth_query.
final class AuthQueryCacheBoundsTests: XCTestCase {
    let key = AuthQueryCache.Key(entry: "app", dbname: "app", authUser: "lookup", user: "dora")

    func testAtMostMaxInFlightLookupsAtOnce() {
        let cache = AuthQueryCache(refreshInterval: .seconds(60))
        for _ in 0..<AuthQueryCache.maxInFlight { XCTAssertTrue(cache.beginLookup()) }
        XCTAssertFalse(cache.beginLookup(), "every place taken")
        cache.endLookup()
        XCTAssertTrue(cache.beginLookup(), "a place came free")
    }

    func testAFailedLookupIsNotRetriedWithinTheBackOff() {
        let cache = AuthQueryCache(refreshInterval: .seconds(60))
        let now = MonotonicInstant.now()
        XCTAssertFalse(cache.recentlyFailed(key, now: now))
        cache.storeFailure(for: key, at: now)
        XCTAssertTrue(cache.recentlyFailed(key, now: now + .milliseconds(500)))
        XCTAssertFalse(cache.recentlyFailed(key, now: now + AuthQueryCache.failureBackoff), "retried after the back-off")
        XCTAssertTrue(cache.answer(for: key, now: now) == nil, "a failure is not an answer")
    }
}
