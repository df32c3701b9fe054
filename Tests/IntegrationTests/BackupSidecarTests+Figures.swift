import Foundation
import Glibc
import XCTest

/// Figures for docs/BACKUP.md, opt-in (PORTCULLIS_BACKUP_FIGURES=1; use a release build via
/// PORTCULLIS_BIN): backup time through the proxy against plain tooling straight to the server
/// (`pg_dump -Fc -Z 0 | zstd -3 | openssl enc -aes-256-ctr`), and the peak RSS of `backup run`
/// and `backup restore` at two database sizes. Prints; asserts only that everything worked.
extension BackupSidecarTests {
    func testBackupFigures() throws {
        guard ProcessInfo.processInfo.environment["PORTCULLIS_BACKUP_FIGURES"] != nil else {
            throw XCTSkip("set PORTCULLIS_BACKUP_FIGURES=1 to measure")
        }
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        let binary = ProxyProcess.binaryPath(repoRoot: h.repoRoot)
        _ = try cluster.query("""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bk_ro') THEN CREATE ROLE bk_ro LOGIN PASSWORD 'bk_ro_pw'; END IF;
            END $$;
            GRANT pg_read_all_data TO bk_ro;
            """)
        let verifier = try cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'bk_ro'")
        let dir = try h.makeDir("backup-figures")
        let keyPath = "\(dir)/secret.key"
        assertSucceeded(try runCommand(binary, ["keygen", "--output", keyPath], timeout: 30), "keygen")
        let sizes = [("bk_small", 400_000), ("bk_large", 2_000_000)]
        var options = ProxyProcess.Options(upstream: cluster)
        options.extraSettings = ["secret_key_file = \(keyPath)"]
        // PORTCULLIS_BACKUP_SOCKET=1: pg_dump reaches the proxy over its Unix socket (no TLS on
        // that hop) instead of TCP with verify-full.
        if ProcessInfo.processInfo.environment["PORTCULLIS_BACKUP_SOCKET"] != nil {
            try FileManager.default.createDirectory(atPath: "\(dir)/sock", withIntermediateDirectories: true)
            options.extraSettings.append("unix_socket_directories = \(dir)/sock")
        }
        options.extraIdentities = ["bk_ro = mode=read-only password='\(verifier)' server_user=bk_ro server_password='bk_ro_pw'"]
        options.extraDatabaseNames = sizes.map(\.0)
        options.extraSections = ["[backup]\ndirectory = \(dir)/store\nidentity = bk_ro\npassword = bk_ro_pw\ncompression_level = 3\ncompression_workers = \(ProcessInfo.processInfo.environment["PORTCULLIS_BACKUP_WORKERS"] ?? "0")"]
        let proxy = try ProxyProcess(harness: h, options: options)

        func peakKB(_ result: CommandResult) -> Int {
            result.stderr.split(separator: "\n").first { $0.contains("Maximum resident set size") }
                .flatMap { $0.split(separator: ":").last }.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? -1
        }
        for (database, rows) in sizes {
            _ = try cluster.query("DROP DATABASE IF EXISTS \(database)")
            _ = try cluster.query("CREATE DATABASE \(database)")
            _ = try cluster.query("""
                CREATE TABLE t (id bigint PRIMARY KEY, a text, b text);
                INSERT INTO t SELECT g, md5(g::text) || md5((g * 3)::text), md5((g * 7)::text) || ' ' || g FROM generate_series(1, \(rows)) g;
                """, dbname: database)
            let direct = "host=localhost port=\(cluster.port) dbname=\(database) user=postgres sslmode=verify-full sslrootcert=\(h.caFile)"
            let plainStart = Date()
            let plain = try runCommand("/bin/sh", ["-c", "pg_dump -Fc -Z 0 -d '\(direct)' | zstd -3 -q -c | "
                                                   + "openssl enc -aes-256-ctr -pbkdf2 -pass pass:x > \(dir)/\(database).plain"],
                                       environment: ["PGPASSWORD": "postgres_pw"], timeout: 900)
            let plainSeconds = Date().timeIntervalSince(plainStart)
            assertSucceeded(plain, "plain tooling")
            let start = Date()
            let run = try runCommand("/usr/bin/time", ["-v", binary, "backup", "run", "--database", database,
                                                       "--config", proxy.configPath], timeout: 900)
            let seconds = Date().timeIntervalSince(start)
            assertSucceeded(run, "backup run")
            let id = run.stdout.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            let manifest = try String(contentsOfFile: "\(dir)/store/\(id).json", encoding: .utf8)
            let dumpBytes = manifest.split(separator: "\n").first { $0.contains("plaintext_bytes") }
                .flatMap { $0.split(separator: ":").last }.flatMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: " ,"))) } ?? 0
            _ = try cluster.query("DROP DATABASE IF EXISTS \(database)_r")
            _ = try cluster.query("CREATE DATABASE \(database)_r")
            let restoreStart = Date()
            let restore = try runCommand("/usr/bin/time", ["-v", binary, "backup", "restore", id, "--target",
                                                           "host=\(cluster.dir) port=\(cluster.port) dbname=\(database)_r user=postgres",
                                                           "--config", proxy.configPath], timeout: 900)
            let restoreSeconds = Date().timeIntervalSince(restoreStart)
            assertSucceeded(restore, "backup restore")
            print(String(format: "backup figures %@: dump %.1f MiB; backup run %.2f s (%.1f MiB/s), plain tooling %.2f s (%.1f MiB/s), ratio %.2f; "
                         + "peak RSS run %d kB, restore %d kB (%.2f s)",
                         database, dumpBytes / 1_048_576, seconds, dumpBytes / seconds / 1_048_576, plainSeconds,
                         dumpBytes / plainSeconds / 1_048_576, plainSeconds / seconds, peakKB(run), peakKB(restore), restoreSeconds))
        }
    }
}
