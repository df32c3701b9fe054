import Foundation
import Glibc
import Config
import BackupFormat
import XCTest
@testable import Backup

final class BackupManifestTests: XCTestCase {
    private let key = BackupKey(material: [UInt8](repeating: 7, count: 32))

    private func manifest(_ id: String, database: String = "app", started: Int64, status: BackupManifest.Status = .good) -> BackupManifest {
        var manifest = BackupManifest(id: id, database: database, startedAt: started, endedAt: started + 5, status: status)
        manifest.keyID = key.keyID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return manifest
    }

    private func id(_ n: Int) -> String {
        let digits = String(n, radix: 16)
        return String(repeating: "0", count: 32 - digits.count) + digits
    }

    func testManifestRoundTrip() throws {
        var original = manifest(id(0xabc), started: 1_700_000_000)
        original.plaintextBytes = 123_456_789
        original.compressedBytes = 12_345
        original.storedBytes = 12_500
        original.sha256 = String(repeating: "ab", count: 32)
        original.pgDumpVersion = "15.8 (Debian 15.8-0+deb12u1)"
        original.serverVersion = "15.8"
        original.keyID = String(repeating: "0f", count: 16)
        original.error = "quote \" backslash \\ newline \n tab \t control \u{1} é ✓"
        let text = original.encoded()
        XCTAssertEqual(try BackupManifest.decode(text), original)
        XCTAssertTrue(text.contains("\"status\": \"good\""), text)
    }

    func testDirectoryManifestRoundTripAndDamage() throws {
        var original = manifest(id(0xdef), started: 1_700_000_000)
        original.format = "directory"
        original.jobs = 2
        original.peakPlaintextOnDisk = 4096
        original.files = [
            BackupManifest.File(name: "toc.dat", plaintextBytes: 6479, storedBytes: 1852, sha256: String(repeating: "01", count: 32)),
            BackupManifest.File(name: "3367.dat", plaintextBytes: 2_274_671, storedBytes: 594_284, sha256: String(repeating: "02", count: 32)),
            BackupManifest.File(name: "blob_16421.dat", plaintextBytes: 0, storedBytes: 96, sha256: String(repeating: "03", count: 32)),
        ]
        let text = original.encoded()
        XCTAssertEqual(try BackupManifest.decode(text), original)
        XCTAssertTrue(text.contains("\"files\": [\n    {\"name\": \"toc.dat\""), text)
        var empty = original
        empty.files = []
        XCTAssertEqual(try BackupManifest.decode(empty.encoded()), empty)
        // A custom-format manifest has no files array.
        XCTAssertFalse(manifest(id(1), started: 1).encoded().contains("files"))
        for broken in [
            text.replacingOccurrences(of: "\"toc.dat\"", with: "\"../toc.dat\""),
            text.replacingOccurrences(of: "\"3367.dat\"", with: "\"toc.dat\""),
            text.replacingOccurrences(of: "\"format\": \"directory\"", with: "\"format\": \"tar\""),
            text.replacingOccurrences(of: "\"jobs\": 2,", with: ""),
            text.replacingOccurrences(of: "\"stored_bytes\": 96, ", with: ""),
            text.replacingOccurrences(of: "{\"name\": \"toc.dat\"", with: "[{\"name\": \"toc.dat\""),
        ] {
            XCTAssertThrowsError(try BackupManifest.decode(broken), broken)
        }
        XCTAssertTrue(BackupManifest.File.isValidName("blobs_12.toc"))
        for bad in ["", ".hidden", "a/b", "TOC.DAT", "x y", String(repeating: "a", count: 101)] {
            XCTAssertFalse(BackupManifest.File.isValidName(bad), bad)
        }
    }

    /// inotify records as the kernel lays them out (struct inotify_event, names NUL-padded).
    func testDirectoryWatchParsesInotifyRecords() {
        func record(_ mask: UInt32, _ name: String) -> [UInt8] {
            var bytes = Array(name.utf8) + [0]
            while bytes.count % 16 != 0 { bytes.append(0) }
            func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
            return le(1) + le(mask) + le(0) + le(UInt32(bytes.count)) + bytes
        }
        let bytes = record(UInt32(IN_CREATE), "toc.dat") + record(UInt32(IN_CLOSE_WRITE), "toc.dat")
            + record(UInt32(IN_Q_OVERFLOW), "") + record(UInt32(IN_MODIFY), "3367.dat") + record(UInt32(IN_MOVED_TO), "blob_1.dat")
        XCTAssertEqual(DirectoryWatch.parse(bytes), [.created("toc.dat"), .closedAfterWriting("toc.dat"), .overflow, .created("blob_1.dat")])
        XCTAssertEqual(DirectoryWatch.parse(Array(bytes.prefix(20))), [], "a cut record is not read")
    }

    func testMemberIndexMustMatchTheManifest() throws {
        let files = [BackupManifest.File(name: "toc.dat", plaintextBytes: 10, storedBytes: 100, sha256: "aa"),
                     BackupManifest.File(name: "1.dat", plaintextBytes: 20, storedBytes: 120, sha256: "bb")]
        let index = MemberIndex.render(files)
        XCTAssertNoThrow(try MemberIndex.check(index, against: files.reversed(), id: "x"))
        XCTAssertThrowsError(try MemberIndex.check(index, against: Array(files.prefix(1)), id: "x"))
        var changed = files
        changed[1].sha256 = "cc"
        XCTAssertThrowsError(try MemberIndex.check(index, against: changed, id: "x"))
    }

    /// The daemon's prune after a scheduled backup touches that database only, and keeps its
    /// newest good backup (local store in a temporary directory).
    func testPruneOfOneDatabaseLeavesTheOthers() throws {
        let dir = "/tmp/pcbk-prune-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        let store = BackupStore(directory: dir)
        var n = 0
        for database in ["a", "b"] {
            for started in [Int64(100), 200, 300] {
                n += 1
                let backup = manifest(id(n), database: database, started: started).sealed(with: key)
                try store.writeManifest(backup)
                XCTAssertTrue(FileManager.default.createFile(atPath: "\(dir)/\(backup.id).pcbk", contents: Data([1])))
            }
        }
        // A relabelled copy (database "a", a later date) nobody with the key sealed: neither
        // kept as the newest nor deleted.
        var forged = manifest(id(99), database: "a", started: 900).sealed(with: key)
        forged.startedAt = 950
        try store.writeManifest(forged)
        XCTAssertTrue(FileManager.default.createFile(atPath: "\(dir)/\(forged.id).pcbk", contents: Data([1])))
        let deleted = try BackupPruner.prune(store: store, policy: RetentionPolicy(keepLast: 1), now: 1000, keys: [key], database: "a")
        XCTAssertEqual(Set(deleted), Set([id(1), id(2)]))
        let left = try store.manifests().manifests.map(\.id)
        XCTAssertEqual(Set(left), Set([id(3), id(4), id(5), id(6), id(99)]))
        // An age nobody meets still keeps the newest good one.
        XCTAssertEqual(Set(try BackupPruner.prune(store: store, policy: RetentionPolicy(keepWithinSeconds: 1), now: 1000, keys: [key], database: "b")),
                       Set([id(4), id(5)]))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] { unlink("\(dir)/\(name)") }
        rmdir(dir)
    }

    /// Every field is covered by the MAC: a changed database, date or status, a MAC from another
    /// key, and a missing MAC are all not authentic.
    func testManifestMACCoversEveryField() throws {
        let sealed = manifest(id(1), started: 1).sealed(with: key)
        let decoded = try BackupManifest.decode(sealed.encoded())
        XCTAssertTrue(decoded.isAuthentic(keys: [key]))
        var altered = decoded; altered.database = "other"
        XCTAssertFalse(altered.isAuthentic(keys: [key]))
        altered = decoded; altered.startedAt += 1
        XCTAssertFalse(altered.isAuthentic(keys: [key]))
        altered = decoded; altered.status = .failed
        XCTAssertFalse(altered.isAuthentic(keys: [key]))
        altered = decoded; altered.mac = ""
        XCTAssertFalse(altered.isAuthentic(keys: [key]))
        XCTAssertFalse(decoded.isAuthentic(keys: [BackupKey(material: [UInt8](repeating: 8, count: 32))]))
        XCTAssertThrowsError(try altered.authenticate(keys: [key]))
    }

    func testManifestDecodeRefusesDamage() {
        let good = manifest(id(1), started: 1).encoded()
        for broken in [
            "", "{", good.replacingOccurrences(of: "\"good\"", with: "\"maybe\""),
            good.replacingOccurrences(of: "\"started_at\": 1", with: "\"started_at\": \"1\""),
            good.replacingOccurrences(of: id(1), with: "../../etc/passwd"),
            good + "x",
            good.replacingOccurrences(of: "\"format\"", with: "\"database\""),
        ] {
            XCTAssertThrowsError(try BackupManifest.decode(broken), broken)
        }
    }

    func testPruneKeepsLastNAndNeverTheLastGood() {
        let now: Int64 = 1_000_000
        let backups = (1...5).map { manifest(id($0), started: now - Int64(6 - $0) * 86_400) }  // 5 days .. 1 day old
        XCTAssertEqual(RetentionPolicy().prune(backups, now: now), [], "no rule: nothing is deleted")
        XCTAssertEqual(Set(RetentionPolicy(keepLast: 2).prune(backups, now: now)), Set([id(1), id(2), id(3)]))
        XCTAssertEqual(Set(RetentionPolicy(keepWithinSeconds: 2 * 86_400 + 1).prune(backups, now: now)), Set([id(1), id(2), id(3)]))
        // Union of the rules.
        XCTAssertEqual(Set(RetentionPolicy(keepLast: 1, keepWithinSeconds: 3 * 86_400 + 1).prune(backups, now: now)),
                       Set([id(1), id(2)]))
        // Everything is too old: the newest good one stays anyway.
        XCTAssertEqual(Set(RetentionPolicy(keepWithinSeconds: 60).prune(backups, now: now)), Set([id(1), id(2), id(3), id(4)]))
        XCTAssertEqual(Set(RetentionPolicy(keepLast: 1).prune(backups, now: now)), Set([id(1), id(2), id(3), id(4)]))
    }

    func testPruneIgnoresFailedRunsWhenChoosingTheLastGood() {
        let now: Int64 = 1_000_000
        let backups = [
            manifest(id(1), started: now - 300),
            manifest(id(2), started: now - 200, status: .failed),
            manifest(id(3), started: now - 100, status: .failed),
        ]
        // The failed runs are newer: the old good backup must survive any policy.
        XCTAssertEqual(RetentionPolicy(keepLast: 1).prune(backups, now: now), [])
        XCTAssertEqual(RetentionPolicy(keepWithinSeconds: 10).prune(backups, now: now), [])
        // Once a newer good backup exists, older failed records go; the newer good one stays.
        let later = backups + [manifest(id(4), started: now - 50)]
        XCTAssertEqual(Set(RetentionPolicy(keepLast: 1).prune(later, now: now)), Set([id(1), id(2), id(3)]))
    }

    func testPruneIsPerDatabase() {
        let now: Int64 = 1_000
        let backups = [manifest(id(1), database: "a", started: 10), manifest(id(2), database: "b", started: 20),
                       manifest(id(3), database: "a", started: 30)]
        XCTAssertEqual(RetentionPolicy(keepLast: 1).prune(backups, now: now), [id(1)])
    }

    func testProgressArithmetic() {
        let report = ProgressReport(bytes: 50 << 20, elapsedNanoseconds: 2_000_000_000, totalBytes: 100 << 20)
        XCTAssertEqual(report.rate, Double(25 << 20))
        XCTAssertEqual(report.etaSeconds, 2)
        XCTAssertEqual(report.line, "50.0 MiB of 100.0 MiB, 25.0 MiB/s, ETA 0m2s")
        XCTAssertNil(ProgressReport(bytes: 10, elapsedNanoseconds: 0).etaSeconds)
        XCTAssertEqual(ProgressReport(bytes: 10, elapsedNanoseconds: 0).line, "10 B, 0 B/s")
    }

    func testDumpHeaderParsesPg15CustomArchiveHeader() {
        // K_VERS_1_14, intSize 4, offSize 8, format custom (1), compression 0, 7 time ints,
        // dbname "app", server "15.8", pg_dump "15.8 (Debian)".
        func int(_ v: Int) -> [UInt8] { [0, UInt8(v & 255), UInt8(v >> 8 & 255), 0, 0] }
        func str(_ s: String) -> [UInt8] { int(s.utf8.count) + Array(s.utf8) }
        var bytes = Array("PGDMP".utf8) + [1, 14, 0, 4, 8, 1] + int(0)
        for v in [1, 2, 3, 4, 5, 124, 0] { bytes += int(v) }
        bytes += str("app") + str("15.8") + str("15.8 (Debian)")
        XCTAssertEqual(DumpHeader.parse(bytes), DumpHeader(serverVersion: "15.8", pgDumpVersion: "15.8 (Debian)"))
        XCTAssertNil(DumpHeader.parse(Array(bytes.dropLast(3))))
        XCTAssertNil(DumpHeader.parse(Array("PGDMX".utf8) + bytes.dropFirst(5)))
    }

    func testConnectionGoesThroughTheProxy() throws {
        var config = PortcullisConfig()
        config.general.listenPort = 6543
        config.tls.caFile = "/etc/ca dir/ca.crt"
        var backup = BackupSettings()
        backup.identity = "backup_ro"
        let tcp = try BackupConnection(config: config, backup: backup, database: "app", password: "pw")
        XCTAssertEqual(tcp.conninfo, "host=localhost port=6543 dbname=app user=backup_ro application_name=portcullis-backup "
                       + "sslmode=verify-full sslrootcert='/etc/ca dir/ca.crt'")
        XCTAssertEqual(tcp.environment, ["PGPASSWORD": "pw"])
        config.general.unixSocketDirectories = ["/run/portcullis"]
        let socket = try BackupConnection(config: config, backup: backup, database: "it's", password: nil)
        XCTAssertEqual(socket.conninfo, "host=/run/portcullis port=6543 dbname='it\\'s' user=backup_ro application_name=portcullis-backup")
        backup.internalSocketDirectory = "/run/portcullis/internal"
        let internalSocket = try BackupConnection(config: config, backup: backup, database: "app", password: nil)
        XCTAssertTrue(internalSocket.conninfo.hasPrefix("host=/run/portcullis/internal port=6543 "), "the internal endpoint first")
        backup.internalSocketDirectory = nil
        config.general.unixSocketDirectories = []
        config.tls.caFile = nil
        XCTAssertThrowsError(try BackupConnection(config: config, backup: backup, database: "app", password: nil))
    }
}

final class BackupConfigTests: XCTestCase {
    private let base = BackupTestConfig.ini(writer: true)

    func testBackupSectionParses() throws {
        let config = try ConfigLoader.parse(base + """

            [backup]
            directory = /var/backups/portcullis
            identity = reader
            password = secret
            compression_level = 9
            compression_workers = 2
            keep_last = 7
            keep_within = 14d
            format = custom
            """, fileName: "t.ini")
        let backup = try XCTUnwrap(config.backup)
        XCTAssertEqual(backup.directory, "/var/backups/portcullis")
        XCTAssertEqual(backup.identity, "reader")
        XCTAssertEqual(backup.password?.reveal(), "secret")
        XCTAssertEqual(backup.compressionLevel, 9)
        XCTAssertEqual(backup.compressionWorkers, 2)
        XCTAssertEqual(backup.keepLast, 7)
        XCTAssertEqual(backup.keepWithin, .seconds(14 * 86_400))
        XCTAssertNil(try ConfigLoader.parse(base, fileName: "t.ini").backup)
        XCTAssertTrue(ConfigLoader.plaintextSecrets(in: config).contains("[backup] password"),
                      "a plaintext backup password makes a world-readable configuration an error")
    }

    func testDirectoryFormatAndScheduleOptions() throws {
        let config = try ConfigLoader.parse(base + """

            [backup]
            directory = /b
            identity = reader
            format = custom
            jobs = 3
            schedule.app = 30 2 * * * format=directory jobs=4 keep_last=7 keep_within=14d
            """, fileName: "t.ini")
        let backup = try XCTUnwrap(config.backup)
        XCTAssertEqual(backup.schedules["app"]?.description, "30 2 * * *")
        var expected = BackupDatabaseOptions()
        expected.format = .directory
        expected.jobs = 4
        expected.keepLast = 7
        expected.keepWithin = .seconds(14 * 86_400)
        XCTAssertEqual(backup.databaseOptions["app"], expected)
        XCTAssertNil(backup.databaseOptions["other"])
        XCTAssertEqual(backup.dumpOptions(for: "app").format, .directory)
        XCTAssertEqual(backup.dumpOptions(for: "app").jobs, 4)
        XCTAssertEqual(backup.dumpOptions(for: "other").format, .custom)
        XCTAssertEqual(backup.dumpOptions(for: "other").jobs, 3)
    }

    func testBackupSectionErrors() {
        for (section, expected) in [
            ("directory = /b\nidentity = writer", "must be mode=read-only"),
            ("directory = /b\nidentity = nobody", "is not an entry of [identities]"),
            ("identity = reader", "[backup] needs directory"),
            ("directory = /b\nidentity = reader\nformat = tar", "format"),
            ("directory = /b\nidentity = reader\njobs = 0", "jobs"),
            ("directory = /b\nidentity = reader\nschedule.app = 0 3 * * * jobs=99", "jobs"),
            ("directory = /b\nidentity = reader\nschedule.app = 0 3 * * * compress=9", "unknown schedule option"),
            ("directory = /b\nidentity = reader\nschedule.app = 0 3 * * * keep_within=soon", "keep_within"),
            ("directory = /b\nidentity = reader\ncompression_level = 30", "compression_level"),
            ("directory = /b\nidentity = reader\npassword = a\npassfile = /p", "not both"),
            ("directory = /b\nidentity = reader\nbogus = 1", "unknown key \"bogus\" in [backup]"),
            ("directory = /b\nidentity = reader\ninternal_socket_directory = run/x", "must be an absolute path"),
        ] {
            XCTAssertThrowsError(try ConfigLoader.parse(base + "\n[backup]\n" + section, fileName: "t.ini"), section) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(section): \(error)")
                XCTAssertEqual("\(error)".split(separator: "\n").count, 1, "only the [backup] problem: \(error)")
            }
        }
    }
}
