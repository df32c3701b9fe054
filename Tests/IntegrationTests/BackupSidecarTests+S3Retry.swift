import Foundation
import Glibc
import XCTest

/// S3 retries against moto behind the signature-checking relay (scripts/sigv4-proxy.py), which
/// can fail the first N requests of a kind: transient failures (5xx, 429/SlowDown, connection
/// reset) of every kind of request are retried and the backup comes out whole; permanent ones
/// (403, 404) fail at once, without another attempt. Also a directory-format backup in S3.
extension BackupSidecarTests {
    private func startRelay(_ h: Harness, moto: MotoServer, faults: String, dir: String) throws -> (BackgroundCommand, Int) {
        let port = try h.freePort()
        let relay = try BackgroundCommand("/usr/bin/python3", ["\(h.repoRoot)/scripts/sigv4-proxy.py", String(port), String(moto.port),
                                                               "AKIDEXAMPLE", Self.secret, faults], workDir: dir)
        XCTAssertTrue(poll(timeout: 30, every: 0.2) {
            ((try? runCommand("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/"], timeout: 5))?.stdout ?? "") == "403"
        }, "the relay is up")
        return (relay, port)
    }

    private func relayLines(_ relay: BackgroundCommand) -> [String] {
        relay.stdoutText().split(separator: "\n").map(String.init).filter { !$0.hasPrefix("GET /: ") }
    }

    func testS3RetriesTransientFailuresButNotPermanentOnes() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        try makeSourceDatabase(cluster)
        let (moto, scratch) = try motoWithBucket(h, scratch: "s3-retry")
        defer { moto.stop() }

        // 1. Every kind of request fails transiently at first; the run still succeeds.
        let faults = "list=2:503,get=1:500,create=1:503,part=2:reset,complete=1:500,head=1:502,put=1:429"
        let (relay, port) = try startRelay(h, moto: moto, faults: faults, dir: scratch)
        defer { relay.signal(SIGKILL) }
        let (proxy, dir, _) = try startBackupProxy(h, extraBackupLines: s3Section(endpoint: "http://127.0.0.1:\(port)"))
        let config = proxy.configPath
        let started = Date()
        let run = try portcullis(["run", "--database", "bk_src"], config: config)
        let seconds = Date().timeIntervalSince(started)
        assertSucceeded(run, "backup run with transient S3 failures")
        let id = try XCTUnwrap(backupID(run), "\(run)")
        let lines = relayLines(relay)
        for kind in ["list": "GET /pcbk-test?", "create": "?uploads=", "part": "partNumber=", "complete": "?uploadId=",
                     "head": "HEAD ", "put": ".json: "] {
            XCTAssertTrue(lines.contains { $0.contains(kind.value) && $0.contains("FAULT") }, "a \(kind.key) fault was injected: \(lines)")
        }
        // Each fault was followed by a success of the same request.
        for fault in lines where fault.contains(": FAULT ") {
            let request = String(fault[..<fault.range(of: ": FAULT ")!.lowerBound])
            XCTAssertTrue(lines.contains("\(request): OK"), "\(request) was retried until it succeeded")
        }
        XCTAssertLessThan(seconds, 90, "back-off is capped")
        assertSucceeded(try portcullis(["verify", id], config: config), "the backup taken through the faults verifies")

        // 2. A directory-format backup in S3 (one object per file), verified and restored -j 2.
        let directoryRun = try portcullis(["run", "--database", "bk_src", "--format", "directory", "--jobs", "2"], config: config)
        assertSucceeded(directoryRun, "directory-format backup to S3")
        let directoryID = try XCTUnwrap(backupID(directoryRun))
        let keys = try objectKeys(moto)
        XCTAssertTrue(keys.contains("\(Self.prefix)\(directoryID).pcbd/toc.dat.pcbk"), "\(keys)")
        XCTAssertTrue(keys.contains("\(Self.prefix)\(directoryID).pcbd/portcullis_index.pcbk"), "\(keys)")
        assertSucceeded(try portcullis(["verify", directoryID], config: config), "verify of the directory backup in S3")
        _ = try cluster.query("DROP DATABASE IF EXISTS bk_s3dir_restored")
        _ = try cluster.query("CREATE DATABASE bk_s3dir_restored")
        assertSucceeded(try portcullis(["restore", directoryID, "--jobs", "2", "--target",
                                        "host=\(cluster.dir) port=\(cluster.port) dbname=bk_s3dir_restored user=postgres"], config: config),
                        "restore of the directory backup from S3")
        XCTAssertTrue(try plainDump(cluster, "bk_src") == plainDump(cluster, "bk_s3dir_restored"), "the dumps differ")
        // prune deletes every object of it.
        let pruneConfig = "\(dir)/prune.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8) + "\nkeep_last = 1\n", to: pruneConfig)
        // keep the directory backup (the newest), delete the custom one.
        assertSucceeded(try portcullis(["prune"], config: pruneConfig), "prune")
        let afterPrune = try objectKeys(moto)
        XCTAssertFalse(afterPrune.contains { $0.contains(id) }, "\(afterPrune)")
        XCTAssertTrue(afterPrune.contains("\(Self.prefix)\(directoryID).json"), "\(afterPrune)")

        // 3. Permanent failures are not retried: 403 on a part fails the run at once.
        let (denying, denyPort) = try startRelay(h, moto: moto, faults: "part=5:403", dir: scratch)
        defer { denying.signal(SIGKILL) }
        let denyConfig = "\(dir)/deny.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "s3_endpoint = http://127.0.0.1:\(port)", with: "s3_endpoint = http://127.0.0.1:\(denyPort)"), to: denyConfig)
        let denied = try portcullis(["run", "--database", "bk_src"], config: denyConfig)
        XCTAssertEqual(denied.status, 1, "\(denied)")
        XCTAssertTrue(denied.stderr.contains("AccessDenied"), "\(denied)")
        let partAttempts = relayLines(denying).filter { $0.contains("partNumber=") }
        XCTAssertEqual(partAttempts.count, 1, "a 403 is not retried: \(partAttempts)")

        // 4. 404 on a key that must exist (the manifest of a backup asked for) is not retried.
        let (missing, missingPort) = try startRelay(h, moto: moto, faults: "get=5:404", dir: scratch)
        defer { missing.signal(SIGKILL) }
        let missingConfig = "\(dir)/missing.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "s3_endpoint = http://127.0.0.1:\(port)", with: "s3_endpoint = http://127.0.0.1:\(missingPort)"), to: missingConfig)
        let notFound = try portcullis(["verify", directoryID], config: missingConfig)
        XCTAssertEqual(notFound.status, 1, "\(notFound)")
        XCTAssertTrue(notFound.stderr.contains("no backup \(directoryID)"), "\(notFound)")
        XCTAssertEqual(relayLines(missing).filter { $0.contains("\(directoryID).json") }.count, 1, "a 404 is not retried")

        // 5. A transient failure that does not go away: the run gives up after s3_max_attempts.
        let (failing, failingPort) = try startRelay(h, moto: moto, faults: "list=100:503", dir: scratch)
        defer { failing.signal(SIGKILL) }
        let failingConfig = "\(dir)/failing.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "s3_endpoint = http://127.0.0.1:\(port)", with: "s3_endpoint = http://127.0.0.1:\(failingPort)")
            + "\ns3_max_attempts = 3\n", to: failingConfig)
        let gaveUp = try portcullis(["list"], config: failingConfig)
        XCTAssertEqual(gaveUp.status, 1, "\(gaveUp)")
        XCTAssertTrue(gaveUp.stderr.contains("SlowDown"), "\(gaveUp)")
        XCTAssertEqual(relayLines(failing).filter { $0.contains("list-type=") }.count, 3, "exactly s3_max_attempts attempts")
    }

    /// `s3_url_style = virtual`: the bucket in the host name (`pcbk-test.localhost`, which
    /// libcurl resolves to the loopback itself), signed and checked by the relay, understood by
    /// moto; a backup is taken, listed, verified and restored.
    func testS3VirtualHostedStyleRoundTrip() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        try makeSourceDatabase(cluster)
        let (moto, scratch) = try motoWithBucket(h, scratch: "s3-virtual")
        defer { moto.stop() }
        let (relay, port) = try startRelay(h, moto: moto, faults: "", dir: scratch)
        defer { relay.signal(SIGKILL) }
        let (proxy, _, _) = try startBackupProxy(h, extraBackupLines: s3Section(endpoint: "http://localhost:\(port)") + "\ns3_url_style = virtual")
        let config = proxy.configPath
        let run = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(run, "backup run, virtual-hosted style")
        let id = try XCTUnwrap(backupID(run))
        XCTAssertTrue(try objectKeys(moto).contains("\(Self.prefix)\(id).pcbk"), "stored in the bucket")
        let lines = relayLines(relay)
        XCTAssertGreaterThan(lines.count, 5, "\(lines)")
        XCTAssertTrue(lines.allSatisfy { $0.hasSuffix(": OK") }, "every request correctly signed: \(lines)")
        XCTAssertFalse(lines.contains { $0.contains("/\(Self.bucket)") }, "the bucket is not in any path: \(lines.prefix(5))")
        XCTAssertTrue(lines.contains { $0.hasPrefix("PUT /pg/\(id).pcbk?partNumber=") }, "\(lines.prefix(8))")
        let list = try portcullis(["list"], config: config)
        XCTAssertTrue(list.stdout.contains(id), "\(list)")
        assertSucceeded(try portcullis(["verify", id], config: config), "verify, virtual-hosted style")
        _ = try cluster.query("DROP DATABASE IF EXISTS bk_s3v_restored")
        _ = try cluster.query("CREATE DATABASE bk_s3v_restored")
        assertSucceeded(try portcullis(["restore", id, "--target",
                                        "host=\(cluster.dir) port=\(cluster.port) dbname=bk_s3v_restored user=postgres"], config: config),
                        "restore, virtual-hosted style")
        XCTAssertTrue(try plainDump(cluster, "bk_src") == plainDump(cluster, "bk_s3v_restored"), "the dumps differ")
    }
}
