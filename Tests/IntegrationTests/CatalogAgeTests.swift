import Foundation
import XCTest

/// Found in an attacker review: a failed catalog refresh kept the previous snapshot in force
/// with no limit on its age. The database's owner — no superuser — makes every refresh fail
/// (`ALTER DATABASE … CONNECTION LIMIT 0`: sessions opened before keep running), then plants
/// `public.lower(integer)`, which writes, and a read-only client's `SELECT lower(1)` ran it: the
/// frozen snapshot never learnt of it. With `catalog_max_age` the snapshot stops judging once
/// it is that old, and the database's read-only statements are refused until a refresh
/// succeeds. Judged by the rows `public.hit` writes (``DblinkHit``).
final class CatalogAgeTests: IntegrationTestCase {
    static let database = "catalog_age"

    static let plant = """
        CREATE FUNCTION public.lower(integer) RETURNS text LANGUAGE sql AS $$ SELECT public.hit('lower(integer)')::text $$
        """

    private var cluster: Cluster { get throws { try harness.cluster } }

    private func superuser(_ database: String = CatalogAgeTests.database) throws -> LibPQSession {
        let cluster = try cluster
        return try LibPQSession(conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=\(database) user=postgres")
    }

    private func hits(_ session: LibPQSession) throws -> Int {
        Int(try session.rows("SELECT count(*) FROM hits").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    func testASnapshotFrozenByFailingRefreshesStopsJudgingAfterCatalogMaxAge() throws {
        let admin = try superuser("postgres")
        _ = try admin.rows("DROP DATABASE IF EXISTS \(Self.database) WITH (FORCE)")
        _ = try admin.rows("CREATE DATABASE \(Self.database)")
        // The connection limit must not outlive the test (a later one could not connect).
        defer {
            _ = try? admin.rows("ALTER DATABASE \(Self.database) CONNECTION LIMIT -1")
            _ = try? admin.rows("DROP DATABASE IF EXISTS \(Self.database) WITH (FORCE)")
        }
        let owner = try superuser()
        _ = try owner.rows(DblinkHit.setupSQL(database: Self.database))

        // 1. PostgreSQL alone: the planted function writes from a read-only session.
        let direct = Endpoint(port: try cluster.port, caFile: try harness.caFile, proxyPID: nil)
        let directReadOnly = try LibPQSession(conninfo: direct.conninfo(
            user: "app_ro", dbname: Self.database, extra: "password=app_ro_pw options='-c default_transaction_read_only=on'"))
        _ = try owner.rows(Self.plant)
        let beforeDirect = try hits(owner)
        let outcome = directReadOnly.run("SELECT lower(1)", protocol: .simple)
        XCTAssertFalse(outcome.contains(where: \.isError), "\(outcome)")
        XCTAssertEqual(try hits(owner), beforeDirect + 1, "lower(1) did not write against PostgreSQL alone")
        _ = try owner.rows("DROP FUNCTION public.lower(integer)")

        // 2. Through Portcullis, with refreshes every second and a snapshot good for 3 s.
        try requireProxyTarget("catalog snapshots are the proxy's")
        var options = ProxyProcess.Options(upstream: try cluster)
        options.extraDatabaseNames = [Self.database]
        options.extraSettings = ["catalog_refresh_interval = 1s", "catalog_max_age = 3s", "readonly_classify_timeout = 1s"]
        let proxy = try ProxyProcess(harness: try harness, options: options)
        defer { proxy.stop() }
        let readOnly = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", dbname: Self.database,
                                                                         extra: "password=app_ro_pw"))
        XCTAssertTrue(poll(timeout: 20, every: 0.2) {
            readOnly.run("SELECT 1", protocol: .simple).first?.isError == false
        }, "the catalog snapshot of \(Self.database) was not loaded:\n\(proxy.stderrText.suffix(3000))")

        // The owner makes every refresh fail; the read-only session opened before keeps its
        // server connection. Then the function is planted: the snapshot in force never sees it.
        _ = try admin.rows("ALTER DATABASE \(Self.database) CONNECTION LIMIT 0")
        _ = try owner.rows(Self.plant)
        XCTAssertTrue(poll(timeout: 10, every: 0.2) {
            proxy.stderrText.contains("could not refresh the catalog snapshot of database \"\(Self.database)\"")
        }, "the refresh did not fail:\n\(proxy.stderrText.suffix(3000))")

        // Once the snapshot is older than catalog_max_age, every read-only statement there is
        // refused, the planted one included, in either protocol, and nothing is written.
        let before = try hits(owner)
        let stale = poll(timeout: 15, every: 0.2) {
            readOnly.run("SELECT 1", protocol: .simple).first?.message?.contains("older than catalog_max_age") == true
        }
        XCTAssertTrue(stale, "the frozen snapshot still judges statements:\n\(proxy.stderrText.suffix(3000))")
        for queryProtocol in QueryProtocol.allCases {
            let attack = readOnly.run("SELECT lower(1)", protocol: queryProtocol)
            XCTAssertEqual(attack.first(where: \.isError)?.sqlState, "25006", "[\(queryProtocol)] \(attack)")
            XCTAssertTrue(attack.first(where: \.isError)?.message?.contains("until Portcullis has read this database's catalog again") == true,
                          "[\(queryProtocol)] \(attack)")
        }
        XCTAssertEqual(try hits(owner), before, "the planted function ran through Portcullis")
        XCTAssertEqual(proxy.stderrText.components(separatedBy: "could not be read again").count - 1, 1,
                       "the stale snapshot is logged once:\n\(proxy.stderrText.suffix(3000))")

        // 3. Refreshes succeed again: the new snapshot knows the function and refuses it by
        // name, other statements run, and the end of the episode is logged.
        _ = try admin.rows("ALTER DATABASE \(Self.database) CONNECTION LIMIT -1")
        let known = poll(timeout: 15, every: 0.2) {
            readOnly.run("SELECT lower(1)", protocol: .simple).first?.message?
                .contains("user-defined function public.lower(integer)") == true
        }
        XCTAssertTrue(known, "the refreshed snapshot does not know public.lower(integer):\n\(proxy.stderrText.suffix(3000))")
        XCTAssertFalse(readOnly.run("SELECT 1", protocol: .extended).contains(where: \.isError))
        XCTAssertEqual(readOnly.run("SHOW transaction_read_only", protocol: .simple).last?.rows, [["on"]])
        XCTAssertEqual(try hits(owner), before)
        XCTAssertTrue(proxy.stderrText.contains("was read again after"), proxy.stderrText.suffix(3000).description)
    }
}
