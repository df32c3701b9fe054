import Foundation
import Glibc
import XCTest

extension BackupSidecarTests {
    /// PostgreSQL itself restarted (pg_ctl restart -m fast) in the middle of a dump: the run
    /// fails, nothing is listed as good, no stored or partial file remains; the proxy serves
    /// clients again at once, and the next run succeeds and verifies.
    func testUpstreamRestartMidDumpFailsCleanly() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let upstream = try h.startExtraCluster(certName: "upstream")
        try makeSourceDatabase(upstream)
        // ~95 MB more of dump, so the run is still going when the restart comes.
        _ = try upstream.query("CREATE TABLE public.bulk AS SELECT g, md5(g::text) || md5((g * 3)::text) AS t "
                               + "FROM generate_series(1, 1500000) g", dbname: "bk_src")
        let (proxy, dir, backupDir) = try startBackupProxy(h, upstream: upstream)
        let config = proxy.configPath
        let run = try BackgroundCommand(try binary, ["backup", "run", "--database", "bk_src", "--config", config], workDir: dir)
        // pg_dump is paused mid-dump (SIGSTOP) so the restart provably comes while it is under way.
        let dumper = pausedDumpInFlight(run, backupDirectory: backupDir)
        XCTAssertNotNil(dumper, "the restart comes while the dump is under way")
        let restart = try runCommand("runuser", ["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "restart",
                                                 "-D", upstream.dir, "-m", "fast", "-w", "-l", "\(upstream.dir)/log/postgresql.log"],
                                     timeout: 60)
        if let dumper { kill(dumper, SIGCONT) }
        XCTAssertEqual(restart.status, 0, "\(restart)")
        let result = try run.wait(timeout: 120)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("pg_dump exited with status"), "\(result)")
        XCTAssertEqual(try files(backupDir).filter { $0.hasSuffix(".partial") || $0.hasSuffix(".pcbk") }, [])
        let list = try portcullis(["list"], config: config)
        XCTAssertFalse(list.stdout.contains("good"), "\(list)")
        XCTAssertTrue(list.stdout.contains("failed"), "\(list)")
        // Clients through the proxy work again; the next run is whole.
        let endpoint = Endpoint(port: proxy.port, caFile: h.caFile, proxyPID: proxy.pid)
        XCTAssertTrue(poll(timeout: 30) {
            ((try? runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env()))?.status ?? 1) == 0
        }, "a client after the restart")
        let next = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(next, "the run after the restart")
        let id = try XCTUnwrap(backupID(next))
        assertSucceeded(try portcullis(["verify", id], config: config), "it verifies")
    }
}
