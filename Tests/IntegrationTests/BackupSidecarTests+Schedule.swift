import Foundation
import Glibc
import XCTest

extension BackupSidecarTests {
    private func backupRecords(_ path: String) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.filter { ($0["audit_event"] as? String) == "backup" }
    }

    /// A `backup run` writes a `backup` audit event; a schedule added by a reload is run by the
    /// daemon itself (on its backup thread), logged with its outcome and audited; a failing
    /// scheduled run is logged and audited as failed; removing the schedule stops it.
    func testScheduleAddedByReloadRunsInTheDaemonAndIsAudited() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        try makeSourceDatabase(h.cluster)
        // ~64 MB more of dump, so a run lasts a few seconds and logs progress lines.
        _ = try h.cluster.query("CREATE TABLE public.bulk AS SELECT g, md5(g::text) || md5((g * 3)::text) AS t "
                                + "FROM generate_series(1, 1000000) g", dbname: "bk_src")
        let auditDir = try h.makeDir("backup-audit")
        let auditFile = "\(auditDir)/audit.json"
        let (proxy, _, backupDir) = try startBackupProxy(h, extraSettings: ["audit = on", "audit_sinks = json:\(auditFile)"])
        let config = proxy.configPath
        let original = try String(contentsOfFile: config, encoding: .utf8)

        // 1. A CLI run: its outcome is an audit event.
        let run = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(run, "backup run")
        let id = try XCTUnwrap(backupID(run))
        // Not on a terminal: progress lines on stderr (the last one at the end of the dump).
        XCTAssertTrue(run.stderr.contains("backup of bk_src: ") && run.stderr.contains("MiB/s"), "\(run)")
        let commandEvent = try XCTUnwrap(backupRecords(auditFile).first, "a backup event in \(auditFile)")
        XCTAssertEqual(commandEvent["result"] as? String, "good")
        XCTAssertEqual(commandEvent["trigger"] as? String, "command")
        XCTAssertEqual(commandEvent["backup_id"] as? String, id)
        XCTAssertEqual(commandEvent["database"] as? String, "bk_src")
        XCTAssertFalse("\(commandEvent)".contains("bk_ro_pw"), "no password in the event")

        // 2. Every minute, from a reload: the daemon runs it (within ~60 s plus the backup).
        try writePrivateConfig(original + "\nschedule.bk_src = * * * * *\nschedule.bk_nosuch = */1 * * * *\nprogress_interval = 1s\n",
                               to: config)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.contains("backup schedules: bk_nosuch \"*/1 * * * *\", bk_src \"* * * * *\" (UTC)") },
                      proxy.stderrText.suffix(3000).description)
        // The scheduled dump is paused for 2.5 s (SIGSTOP on its pg_dump) so it provably runs
        // past a progress interval however fast the machine dumps it.
        var dumper: pid_t?
        XCTAssertTrue(poll(timeout: 150, every: 0.01) {
            guard proxy.stderrText.contains("backup of bk_src started (schedule)") else { return false }
            dumper = childProcesses(of: proxy.pid, executable: "pg_dump", argumentContaining: "bk_src").first
            return dumper != nil
        }, "the scheduled run's pg_dump: \(proxy.stderrText.suffix(3000))")
        if let dumper {
            kill(dumper, SIGSTOP)
            usleep(2_500_000)
            kill(dumper, SIGCONT)
        }
        let scheduled = poll(timeout: 150, every: 0.5) {
            proxy.stderrText.contains("of bk_src: good") && proxy.stderrText.contains("(schedule)")
                && proxy.stderrText.contains("backup of bk_nosuch failed (schedule)")
        }
        XCTAssertTrue(scheduled, proxy.stderrText.suffix(4000).description)
        XCTAssertTrue(proxy.stderrText.contains("backup of bk_src started (schedule) to \(backupDir)"), proxy.stderrText.suffix(3000).description)
        XCTAssertTrue(poll(timeout: 20) {
            let events = backupRecords(auditFile)
            return events.contains { $0["trigger"] as? String == "schedule" && $0["result"] as? String == "good" }
                && events.contains { $0["trigger"] as? String == "schedule" && $0["result"] as? String == "failed"
                                     && ($0["reason"] as? String ?? "").contains("pg_dump exited") }
        }, "\(backupRecords(auditFile))")
        // Progress lines (progress_interval = 1s): bytes, rate, and an ETA against the dump
        // size of the newest good backup (the CLI run's), marked "~"; the pause above means the
        // dump went on after at least one interval.
        let progress = proxy.stderrText.split(separator: "\n").filter { $0.contains("backup of bk_src: ") && $0.contains("/s") }
        XCTAssertFalse(progress.isEmpty, proxy.stderrText.suffix(3000).description)
        XCTAssertTrue(progress.contains { $0.contains(" of ~") && $0.contains("ETA") }, "\(progress)")
        let list = try portcullis(["list"], config: config)
        XCTAssertGreaterThanOrEqual(list.stdout.split(separator: "\n").filter { $0.contains("bk_src") && $0.hasSuffix("good") }.count, 2,
                                    "\(list)")

        // 3. Schedule removed by a reload: no further scheduled run starts.
        try writePrivateConfig(original, to: config)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.components(separatedBy: "configuration reloaded").count >= 3 })
        sleep(5)  // a run already under way may finish; none may start
        let startedBefore = proxy.stderrText.components(separatedBy: "started (schedule)").count
        sleep(65)
        XCTAssertEqual(proxy.stderrText.components(separatedBy: "started (schedule)").count, startedBefore, "no run after the schedule was removed")

        // The proxy's clients were never affected.
        let endpoint = Endpoint(port: proxy.port, caFile: h.caFile, proxyPID: proxy.pid)
        assertSucceeded(try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env()), "a client")
    }
}
