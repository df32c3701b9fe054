import Foundation
import Glibc
import XCTest

/// The directory format (`pg_dump -Fd -j 2`, `pg_restore -j 2`) end to end against PostgreSQL
/// 15: the fixture database (schemas, sequence, partitioned table, large object) is backed up
/// through the proxy, verified, restored in parallel into a new database and dumps
/// identically; a file swapped in from another backup, two files of one backup swapped, a
/// file cut before its last chunk and a file dropped from both store and manifest all fail
/// verify and restore, with the target left untouched.
extension BackupSidecarTests {
    private func manifestObject(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func schemaCount(_ cluster: Cluster, _ database: String) throws -> String {
        try cluster.query("SELECT count(*) FROM pg_namespace WHERE nspname IN ('sales', 'inventory')", dbname: database)
    }

    func testDirectoryFormatParallelRoundTripAndTampering() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        try makeSourceDatabase(cluster)
        // 200 small large objects more: one file and one FIFO each, read in blobs.toc order.
        _ = try cluster.query("""
            SELECT count(lo_from_bytea(0, convert_to('small object ' || g, 'UTF8'))) FROM generate_series(1, 200) g;
            DO $$ DECLARE o oid; BEGIN
              FOR o IN SELECT oid FROM pg_largeobject_metadata LOOP
                EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO bk_ro', o);
              END LOOP;
            END $$;
            """, dbname: "bk_src")
        let (proxy, _, backupDir) = try startBackupProxy(h)
        let config = proxy.configPath

        // 1. A directory-format backup with two pg_dump jobs.
        let run = try portcullis(["run", "--database", "bk_src", "--format", "directory", "--jobs", "2"], config: config)
        assertSucceeded(run, "backup run --format directory")
        let id = try XCTUnwrap(backupID(run), "\(run)")
        let manifest = try manifestObject("\(backupDir)/\(id).json")
        XCTAssertEqual(manifest["status"] as? String, "good")
        XCTAssertEqual(manifest["format"] as? String, "directory")
        XCTAssertEqual(manifest["jobs"] as? Int, 2)
        XCTAssertTrue((manifest["server_version"] as? String ?? "").hasPrefix("15."), "\(manifest)")
        let entries = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        let names = entries.compactMap { $0["name"] as? String }
        XCTAssertTrue(names.contains("toc.dat"), "\(names)")
        XCTAssertTrue(names.contains("blobs.toc"), "\(names)")
        XCTAssertEqual(names.filter { $0.hasPrefix("blob_") }.count, 201, "every large object has its own file: \(names.count)")
        XCTAssertGreaterThanOrEqual(names.filter { $0.first?.isNumber == true }.count, 3, "one file per table: \(names)")
        let plaintext = try XCTUnwrap(manifest["plaintext_bytes"] as? Int)
        XCTAssertEqual(entries.compactMap { $0["plaintext_bytes"] as? Int }.reduce(0, +), plaintext)
        let peak = try XCTUnwrap(manifest["peak_plaintext_on_disk"] as? Int)
        print("directory backup: \(plaintext) bytes of dump in \(names.count) files, peak plaintext on disk \(peak) bytes")
        // Kept whole, the peak would be the whole dump. How far behind pg_dump's two jobs the
        // follower falls depends on scheduling (a 2 MB partition can be written between two
        // looks), so the bound leaves room for that, not for keeping the files.
        XCTAssertLessThan(peak, plaintext * 3 / 4, "pg_dump's files were consumed while written, never kept whole")
        // Stored: one encrypted file per pg_dump file plus the index; no work directory left.
        let stored = try files("\(backupDir)/\(id).pcbd")
        XCTAssertEqual(stored, (names + ["portcullis_index"]).map { "\($0).pcbk" }.sorted())
        XCTAssertEqual(try files(backupDir).filter { $0.hasPrefix(".work-") || $0.hasSuffix(".partial") }, [])
        for name in stored {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(backupDir)/\(id).pcbd/\(name)"))
            XCTAssertEqual(Array(bytes.prefix(4)), Array("PCBK".utf8), name)
            XCTAssertNil(bytes.range(of: Data("note note".utf8)), "\(name) holds no plaintext")
        }

        let verify = try portcullis(["verify", id], config: config)
        assertSucceeded(verify, "backup verify (directory)")
        XCTAssertTrue(verify.stdout.contains("good"), "\(verify)")

        // 2. Parallel restore into a new database: identical dumps.
        _ = try cluster.query("DROP DATABASE IF EXISTS bk_dir_restored")
        _ = try cluster.query("CREATE DATABASE bk_dir_restored")
        let target = "host=\(cluster.dir) port=\(cluster.port) dbname=bk_dir_restored user=postgres"
        let restore = try portcullis(["restore", id, "--target", target, "--jobs", "2"], config: config)
        assertSucceeded(restore, "backup restore -j 2")
        let original = try plainDump(cluster, "bk_src")
        let restored = try plainDump(cluster, "bk_dir_restored")
        XCTAssertTrue(original.contains("ATTACH PARTITION sales.orders_2025"))
        XCTAssertTrue(original.contains("lo_open") || original.contains("lowrite"))
        XCTAssertTrue(original == restored, "pg_dump of the original and of the restored database differ")
        XCTAssertEqual(try cluster.query("SELECT last_value FROM sales.invoice_no", dbname: "bk_dir_restored"), "1234")
        XCTAssertEqual(try cluster.query("SELECT count(*) FROM pg_largeobject_metadata", dbname: "bk_dir_restored"), "201")
        XCTAssertEqual(try cluster.query("SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',' ORDER BY oid) FROM pg_largeobject_metadata "
                                         + "WHERE lo_get(oid, 0, 5) = 'small'", dbname: "bk_dir_restored"),
                       try cluster.query("SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',' ORDER BY oid) FROM pg_largeobject_metadata "
                                         + "WHERE lo_get(oid, 0, 5) = 'small'", dbname: "bk_src"))

        // 3. Tampering. A second backup to take files from.
        let second = try portcullis(["run", "--database", "bk_src", "--format", "directory", "--jobs", "2"], config: config)
        assertSucceeded(second, "second directory backup")
        let secondID = try XCTUnwrap(backupID(second))
        let largest = try XCTUnwrap(entries.filter { ($0["name"] as? String)?.first?.isNumber == true }
            .max { ($0["plaintext_bytes"] as? Int ?? 0) < ($1["plaintext_bytes"] as? Int ?? 0) }?["name"] as? String)
        let victim = "\(backupDir)/\(id).pcbd/\(largest).pcbk"
        let pristine = try Data(contentsOf: URL(fileURLWithPath: victim))
        func expectFailure(_ what: String, _ needles: [String]) throws {
            let bad = try portcullis(["verify", id], config: config)
            XCTAssertNotEqual(bad.status, 0, "\(what): \(bad)")
            XCTAssertTrue(needles.contains { bad.stderr.contains($0) }, "\(what): \(bad.stderr)")
            _ = try cluster.query("DROP DATABASE IF EXISTS bk_dir_tampered")
            _ = try cluster.query("CREATE DATABASE bk_dir_tampered")
            let badRestore = try portcullis(["restore", id, "--jobs", "2", "--target",
                                             "host=\(cluster.dir) port=\(cluster.port) dbname=bk_dir_tampered user=postgres"],
                                            config: config)
            XCTAssertNotEqual(badRestore.status, 0, "\(what): \(badRestore)")
            XCTAssertEqual(try schemaCount(cluster, "bk_dir_tampered"), "0", "\(what): nothing was restored")
        }
        // (a) The same file from the other backup: its header names the other backup.
        try FileManager.default.removeItem(atPath: victim)
        try FileManager.default.copyItem(atPath: "\(backupDir)/\(secondID).pcbd/\(largest).pcbk", toPath: victim)
        try expectFailure("a file from another backup", ["holds backup \(secondID), not \(id)"])
        try pristine.write(to: URL(fileURLWithPath: victim))
        // (b) Two files of the same backup swapped: the name is bound into every chunk.
        let other = try XCTUnwrap(names.first { $0 != largest && $0 != names.last && $0.first?.isNumber == true })
        let otherPath = "\(backupDir)/\(id).pcbd/\(other).pcbk"
        let otherBytes = try Data(contentsOf: URL(fileURLWithPath: otherPath))
        try otherBytes.write(to: URL(fileURLWithPath: victim))
        try pristine.write(to: URL(fileURLWithPath: otherPath))
        try expectFailure("two files swapped", ["failed authentication"])
        try pristine.write(to: URL(fileURLWithPath: victim))
        try otherBytes.write(to: URL(fileURLWithPath: otherPath))
        // (c) Cut exactly before its last chunk.
        var offset = 80, lastChunk = 80
        while offset < pristine.count {
            lastChunk = offset
            let length = pristine[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            offset += 4 + length + 16
        }
        XCTAssertEqual(offset, pristine.count)
        try pristine.prefix(lastChunk).write(to: URL(fileURLWithPath: victim))
        try expectFailure("a truncated file", ["truncated"])
        try pristine.write(to: URL(fileURLWithPath: victim))
        // (d) A file removed from the store and from the manifest: the manifest's MAC no longer
        // matches (and the authenticated index inside the backup still lists it).
        let manifestPath = "\(backupDir)/\(id).json"
        let manifestText = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let edited = manifestText.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("\"name\": \"\(other)\"") }.joined(separator: "\n")
        XCTAssertNotEqual(edited, manifestText)
        try edited.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: otherPath)
        try expectFailure("a file dropped with its manifest entry", ["is not authentic", "does not match the backup's authenticated index"])
        try manifestText.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        try otherBytes.write(to: URL(fileURLWithPath: otherPath))
        assertSucceeded(try portcullis(["verify", id], config: config), "verify after undoing the tampering")

        // 4. pg_dump fails (no such database upstream): a failed manifest, nothing stored,
        // no work directory left.
        let failing = try portcullis(["run", "--database", "bk_nosuch", "--format", "directory", "--jobs", "2"], config: config)
        XCTAssertNotEqual(failing.status, 0, "\(failing)")
        XCTAssertTrue(failing.stderr.contains("pg_dump exited with status"), "\(failing)")
        XCTAssertEqual(try files(backupDir).filter { $0.hasPrefix(".work-") || $0.hasSuffix(".partial") }, [])
        XCTAssertEqual(try files(backupDir).filter { $0.hasSuffix(".pcbd") }.sorted(), ["\(id).pcbd", "\(secondID).pcbd"].sorted())

        // 5. Prune deletes a directory-format backup whole.
        let pruneConfig = "\(backupDir)/../prune.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8) + "\nkeep_last = 1\n", to: pruneConfig)
        let prune = try portcullis(["prune"], config: pruneConfig)
        assertSucceeded(prune, "prune")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(backupDir)/\(id).pcbd"), "\(prune)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(backupDir)/\(secondID).pcbd"))
    }
}

extension BackupSidecarTests {
    /// SIGKILL of `backup run --format directory` while pg_dump is writing: pg_dump dies with it
    /// (parent-death signal), nothing is listed as good, and the next run removes the work
    /// directory (which may hold plaintext) and the partial store directory, and succeeds.
    func testDirectoryFormatKilledRunIsCleanedUp() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        try makeSourceDatabase(h.cluster)
        // ~64 MB more of dump, so the run is caught while pg_dump writes.
        _ = try h.cluster.query("CREATE TABLE public.bulk AS SELECT g, md5(g::text) || md5((g * 3)::text) AS t "
                                + "FROM generate_series(1, 1000000) g", dbname: "bk_src")
        let (proxy, dir, backupDir) = try startBackupProxy(h)
        let config = proxy.configPath
        let run = try BackgroundCommand(try binary, ["backup", "run", "--database", "bk_src", "--format", "directory", "--jobs", "2",
                                                     "--config", config], workDir: dir)
        var caught = false
        _ = poll(timeout: 120, every: 0.01) {
            let names = (try? files(backupDir)) ?? []
            caught = names.contains { $0.hasPrefix(".work-") } && names.contains { $0.hasSuffix(".pcbd.partial") }
            return caught || !run.isRunning
        }
        func pgDumpRunning() -> Bool {
            let ps = (try? runCommand("pgrep", ["-f", "pg_dump -Fd -j 2 .*\(backupDir)"], timeout: 5))?.stdout ?? ""
            return !ps.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
        XCTAssertTrue(pgDumpRunning(), "pg_dump is running when its parent is killed (so the check below can fail)")
        run.signal(SIGKILL)
        _ = try? run.wait(timeout: 30)
        XCTAssertTrue(caught, "the run was caught in flight")
        // pg_dump (the leader) got the parent-death signal: no pg_dump of bk_src is left.
        XCTAssertTrue(poll(timeout: 30) { !pgDumpRunning() }, "pg_dump exited after its parent was killed")
        let list = try portcullis(["list"], config: config)
        XCTAssertFalse(list.stdout.contains("good"), "nothing is listed as good: \(list)")
        XCTAssertFalse(try files(backupDir).contains { $0.hasSuffix(".pcbd") }, "no store directory under a final name")
        let next = try portcullis(["run", "--database", "bk_src", "--format", "directory", "--jobs", "2"], config: config)
        assertSucceeded(next, "the next run")
        XCTAssertEqual(try files(backupDir).filter { $0.hasPrefix(".work-") || $0.hasSuffix(".partial") }, [], "leftovers cleaned")
        let id = try XCTUnwrap(backupID(next))
        assertSucceeded(try portcullis(["verify", id], config: config), "the next backup verifies")
        let manifest = try manifestObject("\(backupDir)/\(id).json")
        let plaintext = try XCTUnwrap(manifest["plaintext_bytes"] as? Int)
        let peak = try XCTUnwrap(manifest["peak_plaintext_on_disk"] as? Int)
        print("directory backup: \(plaintext) bytes of dump, peak plaintext on disk \(peak) bytes")
        XCTAssertLessThan(peak, plaintext / 4, "pg_dump's files were consumed while written")
        let endpoint = Endpoint(port: proxy.port, caFile: h.caFile, proxyPID: proxy.pid)
        assertSucceeded(try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 1", env: endpoint.env()), "a client after the kill")
    }
}
