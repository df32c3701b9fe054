import Foundation
import Glibc
import XCTest

extension BackupSidecarTests {
    /// The internal endpoint: a 0600 socket in a 0700 directory; only the backup identity is
    /// admitted on it (another identity gets PostgreSQL's FATAL for a missing pg_hba.conf
    /// entry, even with local_auth_method = trust), read-only enforcement still applies, and a
    /// backup run goes through it; another OS user cannot even open it.
    func testInternalEndpointAdmitsOnlyTheBackupIdentity() throws {
        try requireProxyTarget("the internal endpoint is a proxy feature")
        let h = try harness
        try makeSourceDatabase(h.cluster)
        let socketDir = "\(try h.makeDir("internal"))/sock"
        let (proxy, _, backupDir) = try startBackupProxy(h, extraBackupLines: "internal_socket_directory = \(socketDir)")
        let config = proxy.configPath
        let port = proxy.port

        var info = stat()
        XCTAssertEqual(lstat(socketDir, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o700, "the directory is 0700")
        XCTAssertEqual(lstat("\(socketDir)/.s.PGSQL.\(port)", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "the socket is 0600")

        // Another identity, valid on the public listeners, is refused here before any method.
        let other = try runPsql(conninfo: "host=\(socketDir) port=\(port) user=app_rw dbname=bk_src", sql: "SELECT 1",
                                env: ["PGPASSWORD": "app_rw_pw"])
        XCTAssertNotEqual(other.status, 0, "\(other)")
        XCTAssertTrue(other.stderr.contains(
            "FATAL:  no pg_hba.conf entry for host \"[local]\", user \"app_rw\", database \"bk_src\", no encryption"), "\(other)")
        XCTAssertTrue(poll(timeout: 10) { proxy.stderrText.contains("user \"app_rw\", database \"bk_src\", no encryption") },
                      "the refusal is logged")

        // The backup identity is admitted, and stays read-only.
        let backupRole = "host=\(socketDir) port=\(port) user=bk_ro dbname=bk_src"
        let read = try runPsql(conninfo: backupRole, sql: "SELECT count(*) FROM sales.orders", env: ["PGPASSWORD": "bk_ro_pw"])
        assertSucceeded(read, "bk_ro over the socketDir socket")
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "40000")
        let write = try runPsql(conninfo: backupRole, sql: "CREATE TABLE sales.intruder (i int)", env: ["PGPASSWORD": "bk_ro_pw"])
        XCTAssertNotEqual(write.status, 0, "\(write)")
        XCTAssertTrue(write.stderr.contains("read-only"), "\(write)")

        // A backup run uses the socketDir socket (it is preferred over the public ones).
        let run = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(run, "backup run over the socketDir socket")
        XCTAssertTrue(try files(backupDir).contains { $0.hasSuffix(".pcbk") })

        // Another operating-system user cannot open the socket at all.
        if access("/usr/sbin/runuser", X_OK) == 0 || access("/sbin/runuser", X_OK) == 0 {
            let runuser = access("/usr/sbin/runuser", X_OK) == 0 ? "/usr/sbin/runuser" : "/sbin/runuser"
            let stranger = try runCommand(runuser, ["-u", "nobody", "--", "/usr/bin/psql", "-X", "-d", backupRole, "-c", "SELECT 1"],
                                          environment: ["PGPASSWORD": "bk_ro_pw"], timeout: 30)
            XCTAssertNotEqual(stranger.status, 0, "\(stranger)")
            XCTAssertTrue(stranger.stderr.contains("Permission denied"), "\(stranger)")
        }
        // A reload that drops internal_socket_directory cannot open the socket up: it stays
        // bound (a restart removes it) and still admits the backup identity only.
        let original = try String(contentsOfFile: config, encoding: .utf8)
        try writePrivateConfig(original.replacingOccurrences(of: "internal_socket_directory = \(socketDir)", with: ""), to: config)
        kill(proxy.pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.contains("internal_socket_directory cannot be changed without restarting") },
                      proxy.stderrText.suffix(2000).description)
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.contains("configuration reloaded") })
        let afterReload = try runPsql(conninfo: "host=\(socketDir) port=\(port) user=app_rw dbname=bk_src", sql: "SELECT 1",
                                      env: ["PGPASSWORD": "app_rw_pw"])
        XCTAssertNotEqual(afterReload.status, 0, "\(afterReload)")
        XCTAssertTrue(afterReload.stderr.contains("no pg_hba.conf entry for host \"[local]\", user \"app_rw\""), "\(afterReload)")
        assertSucceeded(try runPsql(conninfo: backupRole, sql: "SELECT 1", env: ["PGPASSWORD": "bk_ro_pw"]), "bk_ro after the reload")

        let endpoint = Endpoint(port: proxy.port, caFile: h.caFile, proxyPID: proxy.pid)
        assertSucceeded(try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env()), "public listener")
    }
}
