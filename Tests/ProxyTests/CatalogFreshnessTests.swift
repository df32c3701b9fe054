import EventLoop
import Policy
import XCTest
@testable import Proxy

/// The age rule of catalog snapshots (`catalog_max_age`): a database whose refreshes keep
/// failing — its owner can make them, with `ALTER DATABASE … CONNECTION LIMIT 0` — must not go
/// on being judged by a snapshot that knows nothing of the code planted since. Time is handed
/// in; nothing here reads a clock.
final class CatalogFreshnessTests: XCTestCase {
    private let maxAge = Duration.seconds(90)

    private func at(_ seconds: Double) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: 1_000_000_000_000 + UInt64(seconds * 1_000_000_000))
    }

    func testASnapshotJudgesUpToItsMaxAgeCountedFromTheStartOfItsLoad() {
        var freshness = CatalogFreshness()
        XCTAssertTrue(freshness.checked(at: at(0), maxAge: maxAge).usable, "nothing loaded: the store's unloaded case")
        XCTAssertNil(freshness.loadSucceeded(startedAt: at(0), at: at(5), maxAge: maxAge))
        XCTAssertTrue(freshness.checked(at: at(60), maxAge: maxAge).usable)
        XCTAssertTrue(freshness.checked(at: at(90), maxAge: maxAge).usable, "exactly catalog_max_age old still judges")
        // 90 s after the load started, although it finished at 5 s: an object created while
        // the load ran is not in it.
        XCTAssertFalse(freshness.checked(at: at(90.001), maxAge: maxAge).usable)
    }

    func testEachStaleEpisodeIsReportedOnceWhenItStartsAndOnceWhenItEnds() {
        var freshness = CatalogFreshness()
        _ = freshness.loadSucceeded(startedAt: at(0), at: at(1), maxAge: maxAge)
        XCTAssertEqual(freshness.checked(at: at(100), maxAge: maxAge).event, .wentStale(age: .seconds(100)))
        for second in 101...200 {
            let (usable, event) = freshness.checked(at: at(Double(second)), maxAge: maxAge)
            XCTAssertFalse(usable)
            XCTAssertNil(event, "at \(second) s: reported again")
        }
        XCTAssertEqual(freshness.loadSucceeded(startedAt: at(210), at: at(211), maxAge: maxAge), .recovered(staleFor: .seconds(111)))
        XCTAssertTrue(freshness.checked(at: at(250), maxAge: maxAge).usable)
        XCTAssertNil(freshness.loadSucceeded(startedAt: at(260), at: at(261), maxAge: maxAge), "no episode to end")
        // A new episode is a new report.
        XCTAssertEqual(freshness.checked(at: at(400), maxAge: maxAge).event, .wentStale(age: .seconds(140)))
    }

    func testALoadThatTookLongerThanTheMaxAgeEndsNoEpisode() {
        var freshness = CatalogFreshness()
        _ = freshness.loadSucceeded(startedAt: at(0), at: at(1), maxAge: maxAge)
        XCTAssertNotNil(freshness.checked(at: at(100), maxAge: maxAge).event)
        // Started at 101 s, finished at 300 s: what it read is already 199 s old.
        XCTAssertNil(freshness.loadSucceeded(startedAt: at(101), at: at(300), maxAge: maxAge))
        XCTAssertEqual(freshness.checked(at: at(300), maxAge: maxAge).usable, false)
        XCTAssertNil(freshness.checked(at: at(300), maxAge: maxAge).event, "the same episode, not reported twice")
    }

    func testAnInstantFromBeforeTheLoadCountsAsAgeZero() {
        var freshness = CatalogFreshness()
        _ = freshness.loadSucceeded(startedAt: at(50), at: at(51), maxAge: maxAge)
        XCTAssertTrue(freshness.checked(at: at(49), maxAge: maxAge).usable)
    }

    /// The store in front of it: what a read-only session's statement is judged by.
    func testTheStoreRefusesAStaleSnapshotAsUnloadedAndRetriesItSoon() {
        let store = CatalogStore()
        let loaded = CatalogSnapshot(rows: [])
        XCTAssertEqual(store.snapshot(for: "app", at: at(0), maxAge: maxAge).snapshot, .unloaded(.pending))
        XCTAssertNil(store.loadFailed("could not connect", for: "app", at: at(0), maxAge: maxAge))
        XCTAssertEqual(store.snapshot(for: "app", at: at(1), maxAge: maxAge).snapshot, .unloaded(.failed("could not connect")))

        XCTAssertNil(store.store(loaded, for: "app", loadStartedAt: at(2), at: at(3), maxAge: maxAge))
        XCTAssertFalse(store.hasFailures)
        XCTAssertEqual(store.snapshot(for: "app", at: at(30), maxAge: maxAge).snapshot, loaded)

        // Refreshes fail (CONNECTION LIMIT 0): the snapshot stays in force up to its age, and
        // the refresher retries the entry at its short interval meanwhile.
        XCTAssertNil(store.loadFailed("too many connections", for: "app", at: at(32), maxAge: maxAge))
        XCTAssertTrue(store.hasFailed("app"), "a loaded entry whose refresh failed is retried soon")
        XCTAssertEqual(store.snapshot(for: "app", at: at(92), maxAge: maxAge).snapshot, loaded)
        let stale = store.snapshot(for: "app", at: at(93), maxAge: maxAge)
        XCTAssertEqual(stale.snapshot, .unloaded(.stale))
        XCTAssertEqual(stale.event, .wentStale(age: .seconds(91)))
        // Every other look, a session's or the refresher's, is quiet.
        XCTAssertNil(store.snapshot(for: "app", at: at(94), maxAge: maxAge).event)
        XCTAssertNil(store.loadFailed("too many connections", for: "app", at: at(95), maxAge: maxAge))
        XCTAssertEqual(store.snapshot(for: "app", at: at(96), maxAge: maxAge).snapshot, .unloaded(.stale))

        let refreshed = CatalogSnapshot(rows: [CatalogSnapshot.Row(schema: "public", name: "v", relkind: "v", cause: "function",
                                                                   detail: "public.f()", viaSchema: nil, viaName: nil, viaRelkind: nil)])
        XCTAssertEqual(store.store(refreshed, for: "app", loadStartedAt: at(100), at: at(101), maxAge: maxAge),
                       .recovered(staleFor: .seconds(8)))
        XCTAssertEqual(store.snapshot(for: "app", at: at(102), maxAge: maxAge).snapshot, refreshed)
        XCTAssertFalse(store.hasFailures)
        // Another database's snapshot ages on its own.
        XCTAssertEqual(store.snapshot(for: "other", at: at(102), maxAge: maxAge).snapshot, .unloaded(.pending))
    }

    func testAStaleSnapshotRefusesEveryStatementSayingWhy() {
        var classifier = CachingStatementClassifier()
        let refusal = classifier.classify(sql: "SELECT 1", catalog: .unloaded(.stale)).firstRefusal
        XCTAssertEqual(refusal?.sqlState, "25006")
        XCTAssertEqual(refusal?.message, "statements are not allowed for a read-only identity until Portcullis has read"
                       + " this database's catalog again: the last successful read is older than catalog_max_age and"
                       + " reading it again has not succeeded (the proxy's log says why)")
    }

    func testTheLogLinesNameTheDatabaseAndTheBound() {
        XCTAssertEqual(CatalogRefresher.logLine(.wentStale(age: .milliseconds(91_500)), database: "app", maxAge: maxAge),
                       "the catalog snapshot of database \"app\" is 91.5 s old, older than catalog_max_age (90 s), and could"
                       + " not be read again: read-only statements there are refused until it is")
        XCTAssertEqual(CatalogRefresher.logLine(.recovered(staleFor: .seconds(8)), database: "*/db", maxAge: maxAge),
                       "the catalog snapshot of database \"*/db\" was read again after 8 s in which it was older than"
                       + " catalog_max_age: read-only statements there are judged again")
    }
}
