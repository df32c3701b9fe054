import Foundation
import Glibc
import XCTest

extension BackupSidecarTests {
    /// Retention carried by a schedule (`keep_last=1`) is applied by the daemon after each
    /// successful scheduled backup of that database, and only of that one; a failing scheduled
    /// backup prunes nothing, so the database keeps its older good backups. The schedule's
    /// `format=directory jobs=2` is what the scheduled run uses.
    func testScheduledBackupPrunesItsDatabaseOnlyAfterSuccess() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        try makeSourceDatabase(cluster)
        let (proxy, _, backupDir) = try startBackupProxy(h)
        let config = proxy.configPath
        let original = try String(contentsOfFile: config, encoding: .utf8)

        // Two good backups of bk_src, and two of bk_nosuch while it exists upstream.
        var olderSrc: [String] = []
        for _ in 0..<2 {
            let run = try portcullis(["run", "--database", "bk_src"], config: config)
            assertSucceeded(run, "backup run bk_src")
            olderSrc.append(try XCTUnwrap(backupID(run)))
        }
        _ = try cluster.query("DROP DATABASE IF EXISTS bk_nosuch")
        _ = try cluster.query("CREATE DATABASE bk_nosuch")
        _ = try cluster.query("CREATE TABLE t AS SELECT 1 AS x", dbname: "bk_nosuch")
        var olderOther: [String] = []
        for _ in 0..<2 {
            let run = try portcullis(["run", "--database", "bk_nosuch"], config: config)
            assertSucceeded(run, "backup run bk_nosuch")
            olderOther.append(try XCTUnwrap(backupID(run)))
        }
        _ = try cluster.query("DROP DATABASE bk_nosuch WITH (FORCE)")

        // Both scheduled every minute with keep_last=1: bk_src succeeds (directory format) and
        // is pruned to that one backup; bk_nosuch fails and keeps both.
        try writePrivateConfig(original + "\nschedule.bk_src = * * * * * format=directory jobs=2 keep_last=1\n"
                               + "schedule.bk_nosuch = * * * * * keep_last=1\n", to: config)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 20) {
            proxy.stderrText.contains("bk_src \"* * * * *\" format=directory jobs=2 keep_last=1")
        }, proxy.stderrText.suffix(3000).description)
        XCTAssertTrue(poll(timeout: 150, every: 0.5) {
            proxy.stderrText.contains("backup prune of bk_src (schedule): 2 backup record(s) deleted")
                && proxy.stderrText.contains("backup of bk_nosuch failed (schedule)")
        }, proxy.stderrText.suffix(4000).description)
        // Stop the schedules before looking, so no later fire changes what is counted.
        try writePrivateConfig(original, to: config)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.components(separatedBy: "configuration reloaded").count >= 3 })
        // A run already under way finishes (and a good one prunes); none starts after.
        func settled() -> Bool {
            let lines = proxy.stderrText.split(separator: "\n")
            let started = lines.filter { $0.contains("started (schedule)") }.count
            let ended = lines.filter { ($0.contains(": good, ") && $0.hasSuffix("(schedule)")) || $0.contains(" failed (schedule): ") }
                .filter { !$0.contains("backup prune of") }.count
            let pruned = lines.filter { $0.contains("backup prune of bk_src") }.count
            let srcGood = lines.filter { $0.contains("of bk_src: good, ") && $0.hasSuffix("(schedule)") }.count
            return started == ended && pruned == srcGood
        }
        XCTAssertTrue(poll(timeout: 120, every: 0.5) { settled() }, proxy.stderrText.suffix(4000).description)
        sleep(3)
        XCTAssertFalse(proxy.stderrText.contains("backup prune of bk_nosuch"), "a failed scheduled backup prunes nothing")
        let list = try portcullis(["list"], config: config)
        let srcGood = list.stdout.split(separator: "\n").filter { $0.contains("bk_src") && $0.hasSuffix("good") }
        XCTAssertEqual(srcGood.count, 1, "\(list)")
        XCTAssertFalse(olderSrc.contains { list.stdout.contains($0) }, "the older bk_src backups were deleted: \(list)")
        let kept = try XCTUnwrap(srcGood.first?.split(separator: " ").first.map(String.init))
        let manifest = try String(contentsOfFile: "\(backupDir)/\(kept).json", encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"format\": \"directory\"") && manifest.contains("\"jobs\": 2"), manifest)
        XCTAssertTrue(olderOther.allSatisfy { list.stdout.contains($0) }, "bk_nosuch keeps both good backups: \(list)")
        assertSucceeded(try portcullis(["verify", kept], config: config), "the scheduled directory backup verifies")
    }
}
