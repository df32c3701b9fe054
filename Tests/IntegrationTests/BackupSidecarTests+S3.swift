import Foundation
import Glibc
import XCTest

/// A moto server (the S3-compatible server from PyPI) on a free port, started by the test.
/// moto accepts any credentials and does not check SigV4 signatures, so these tests show the
/// S3 protocol flow (multipart upload, listings, ranged reads, aborts), not the signing.
final class MotoServer {
    let port: Int
    let process: BackgroundCommand
    var url: String { "http://127.0.0.1:\(port)" }

    static func binary() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["MOTO_SERVER"] { candidates.append(env) }
        let pyenv = "\(NSHomeDirectory())/.pyenv/versions"
        for version in ((try? FileManager.default.contentsOfDirectory(atPath: pyenv)) ?? []).sorted() {
            candidates.append("\(pyenv)/\(version)/bin/moto_server")
        }
        candidates += ["/usr/local/bin/moto_server", "/usr/bin/moto_server"]
        return candidates.first { access($0, X_OK) == 0 }
    }

    init(harness: Harness) throws {
        guard let binary = Self.binary() else { throw XCTSkip("moto_server (pip install 'moto[server]') is not installed") }
        port = try harness.freePort()
        process = try BackgroundCommand(binary, ["-H", "127.0.0.1", "-p", String(port)], workDir: try harness.makeDir("moto"))
        let up = poll(timeout: 60, every: 0.2) {
            ((try? runCommand("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/"], timeout: 5))?.stdout ?? "") == "200"
        }
        guard up else {
            process.signal(SIGKILL)
            throw CommandError(description: "moto_server did not come up on port \(port)")
        }
    }

    func stop() {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        _ = try? process.wait(timeout: 10)
        if process.isRunning { process.signal(SIGKILL); _ = try? process.wait(timeout: 10) }
    }

    /// A raw request with the curl tool (moto takes unsigned requests): the body from a file,
    /// the response body to a file or returned.
    @discardableResult
    func http(_ method: String, _ path: String, bodyFile: String? = nil, outputFile: String? = nil) throws -> String {
        // Signed like the store's own requests: moto refuses anonymous reads of private objects.
        var arguments = ["-s", "-S", "-f", "-X", method, "--aws-sigv4", "aws:amz:eu-central-1:s3",
                         "--user", "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"]
        if let bodyFile { arguments += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@\(bodyFile)"] }
        if let outputFile { arguments += ["-o", outputFile] }
        let result = try runCommand("curl", arguments + [url + path], timeout: 60)
        guard result.status == 0 else { throw CommandError(description: "curl \(method) \(path): \(result)") }
        return result.stdout
    }
}

extension BackupSidecarTests {
    static let bucket = "pcbk-test"
    static let prefix = "pg/"

    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

    func s3Section(endpoint: String, secret: String = secret, partSize: Int = 5) -> String {
        """
        storage = s3
        s3_endpoint = \(endpoint)
        s3_bucket = \(Self.bucket)
        s3_prefix = \(Self.prefix)
        s3_region = eu-central-1
        s3_access_key = AKIDEXAMPLE
        s3_secret_key = \(secret)
        s3_part_size = \(partSize)
        """
    }

    func uploadsXML(_ moto: MotoServer) throws -> String {
        try moto.http("GET", "/\(Self.bucket)?uploads&prefix=\(Self.prefix)")
    }

    func objectKeys(_ moto: MotoServer) throws -> [String] {
        // Follows continuation tokens itself, so the test does not rely on the code under test.
        let script = """
            import sys, urllib.request, urllib.parse, re
            base, bucket, prefix = sys.argv[1:4]
            keys, token = [], None
            while True:
                q = {"list-type": "2", "prefix": prefix}
                if token: q["continuation-token"] = token
                body = urllib.request.urlopen(f"{base}/{bucket}?" + urllib.parse.urlencode(q)).read().decode()
                keys += re.findall(r"<Key>([^<]*)</Key>", body)
                m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", body)
                if "<IsTruncated>true</IsTruncated>" not in body or not m: break
                token = m.group(1)
            print("\\n".join(keys))
            """
        let result = try runCommand("/usr/bin/python3", ["-c", script, moto.url, Self.bucket, Self.prefix], timeout: 120)
        assertSucceeded(result, "listing the bucket")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// 1005 small objects under the prefix that sort before every backup key ('.' < '0'), so
    /// every manifest is beyond the first page of 1000 keys: listing must paginate.
    private func addJunk(_ moto: MotoServer, count: Int) throws {
        let script = """
            import sys, http.client
            host, port, bucket, prefix, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
            c = http.client.HTTPConnection(host, port)
            for i in range(count):
                c.request("PUT", f"/{bucket}/{prefix}.junk-{i:05d}", body=b"junk", headers={"Content-Type": "application/octet-stream"})
                r = c.getresponse(); r.read()
                assert r.status == 200, r.status
            """
        assertSucceeded(try runCommand("/usr/bin/python3", ["-c", script, "127.0.0.1", String(moto.port), Self.bucket, Self.prefix,
                                                             String(count)], timeout: 300), "adding junk objects")
    }

    /// moto with the test bucket made (in eu-central-1), and a scratch directory.
    func motoWithBucket(_ h: Harness, scratch name: String) throws -> (MotoServer, String) {
        let moto = try MotoServer(harness: h)
        do {
            let scratch = try h.makeDir(name)
            try Data("<CreateBucketConfiguration><LocationConstraint>eu-central-1</LocationConstraint></CreateBucketConfiguration>".utf8)
                .write(to: URL(fileURLWithPath: "\(scratch)/bucket.xml"))
            try moto.http("PUT", "/\(Self.bucket)", bodyFile: "\(scratch)/bucket.xml")
            return (moto, scratch)
        } catch {
            moto.stop()
            throw error
        }
    }

    /// The S3 round trip, leftovers, a kill mid-upload, a failing pg_dump, prune, and the
    /// storage unreachable; the dump always through the proxy as the read-only identity.
    func testS3RoundTripLeftoversKillPruneUnreachable() throws {
        try requireProxyTarget("backups are taken through the proxy")
        let h = try harness
        let cluster = h.cluster
        try makeSourceDatabase(cluster)
        // ~19 MB more of half-compressible text, so a backup spans several 5 MiB parts.
        _ = try cluster.query("CREATE TABLE public.bulk AS SELECT g, md5(g::text) || md5((g * 3)::text) AS t "
                              + "FROM generate_series(1, 300000) g", dbname: "bk_src")
        let (moto, scratch) = try motoWithBucket(h, scratch: "s3-scratch")
        defer { moto.stop() }

        // Leftovers of earlier, interrupted runs: an incomplete upload and a .pcbk without manifest.
        let strayUpload = String(repeating: "ab", count: 16) + ".pcbk"
        let strayObject = String(repeating: "cd", count: 16) + ".pcbk"
        try Data(repeating: 9, count: 1000).write(to: URL(fileURLWithPath: "\(scratch)/stray"))
        try moto.http("POST", "/\(Self.bucket)/\(Self.prefix)\(strayUpload)?uploads")
        try moto.http("PUT", "/\(Self.bucket)/\(Self.prefix)\(strayObject)", bodyFile: "\(scratch)/stray")
        try addJunk(moto, count: 1005)
        XCTAssertTrue(try uploadsXML(moto).contains(strayUpload))

        // Every request of the store goes through a proxy that checks its SigV4 signature as
        // S3 does (moto does not) and refuses it otherwise (scripts/sigv4-proxy.py).
        let sigPort = try h.freePort()
        let verifier = try BackgroundCommand("/usr/bin/python3", ["\(h.repoRoot)/scripts/sigv4-proxy.py", String(sigPort),
                                                                  String(moto.port), "AKIDEXAMPLE", Self.secret,
                                                                  // step 4: the second CompleteMultipartUpload is held
                                                                  "complete=1+1:hold"], workDir: scratch)
        defer { verifier.signal(SIGKILL) }
        XCTAssertTrue(poll(timeout: 30, every: 0.2) {
            ((try? runCommand("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(sigPort)/"], timeout: 5))?.stdout ?? "") == "403"
        }, "the signature-checking proxy is up")
        let endpointURL = "http://127.0.0.1:\(sigPort)"
        let (proxy, dir, _) = try startBackupProxy(h, extraBackupLines: s3Section(endpoint: endpointURL))
        let config = proxy.configPath

        // 1. A good backup in the bucket; the leftovers are gone, the junk (not ours) is not.
        let run = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(run, "backup run to S3")
        let id = try XCTUnwrap(backupID(run), "\(run)")
        let keys = try objectKeys(moto)
        XCTAssertTrue(keys.contains("\(Self.prefix)\(id).pcbk") && keys.contains("\(Self.prefix)\(id).json"), "\(keys.suffix(5))")
        XCTAssertFalse(keys.contains("\(Self.prefix)\(strayObject)"), "the .pcbk without manifest was removed")
        XCTAssertEqual(keys.filter { $0.contains(".junk-") }.count, 1005)
        XCTAssertFalse(try uploadsXML(moto).contains("<Upload>"), "the incomplete upload was aborted")
        let manifest = try moto.http("GET", "/\(Self.bucket)/\(Self.prefix)\(id).json")
        XCTAssertTrue(manifest.contains("\"status\": \"good\"") && manifest.contains("\"sha256\": \""), manifest)

        // 2. list (its manifest is beyond the first 1000 keys), verify, restore, identical dumps.
        let list = try portcullis(["list"], config: config)
        assertSucceeded(list, "backup list")
        XCTAssertTrue(list.stdout.contains(id) && list.stdout.contains("good"), "\(list)")
        assertSucceeded(try portcullis(["verify", id], config: config), "backup verify from S3")
        _ = try cluster.query("DROP DATABASE IF EXISTS bk_s3_restored")
        _ = try cluster.query("CREATE DATABASE bk_s3_restored")
        let restore = try portcullis(["restore", id, "--target",
                                      "host=\(cluster.dir) port=\(cluster.port) dbname=bk_s3_restored user=postgres"], config: config)
        assertSucceeded(restore, "backup restore from S3")
        let original = try plainDump(cluster, "bk_src"), restored = try plainDump(cluster, "bk_s3_restored")
        XCTAssertTrue(original == restored, "the dumps differ")

        // 3. A flipped bit in the stored object: verify fails clearly; undone, it verifies.
        let objectPath = "/\(Self.bucket)/\(Self.prefix)\(id).pcbk"
        try moto.http("GET", objectPath, outputFile: "\(scratch)/pristine")
        let pristine = try Data(contentsOf: URL(fileURLWithPath: "\(scratch)/pristine"))
        XCTAssertGreaterThan(pristine.count, 5 << 20, "more than one part")
        var tampered = pristine
        tampered[pristine.count / 2] ^= 0x10
        try tampered.write(to: URL(fileURLWithPath: "\(scratch)/tampered"))
        try moto.http("PUT", objectPath, bodyFile: "\(scratch)/tampered")
        let badVerify = try portcullis(["verify", id], config: config)
        XCTAssertNotEqual(badVerify.status, 0, "\(badVerify)")
        XCTAssertTrue(badVerify.stderr.contains("damaged"), "\(badVerify)")
        try moto.http("PUT", objectPath, bodyFile: "\(scratch)/pristine")
        assertSucceeded(try portcullis(["verify", id], config: config), "verify after undoing the flip")

        // 4. SIGKILL mid-upload: nothing new is good; the next run aborts the upload and succeeds.
        // The relay holds this run's CompleteMultipartUpload (the fault above), so the kill
        // comes with every part uploaded and the upload provably not completed.
        let killed = try BackgroundCommand(try binary, ["backup", "run", "--database", "bk_src", "--config", config], workDir: dir)
        let caught = poll(timeout: 120, every: 0.05) {
            verifier.stdoutText().contains(": FAULT hold") || !killed.isRunning
        }
        XCTAssertTrue(caught && killed.isRunning, "the run is waiting on its CompleteMultipartUpload: \(verifier.stdoutText().suffix(2000))")
        killed.signal(SIGKILL)
        _ = try? killed.wait(timeout: 30)
        let inFlight = try uploadsXML(moto).contains("<Upload>")
        XCTAssertTrue(inFlight, "the run was killed with an upload in flight")
        let afterKill = try portcullis(["list"], config: config)
        XCTAssertEqual(afterKill.stdout.split(separator: "\n").filter { $0.hasSuffix("good") }.count, 1, "\(afterKill)")
        let second = try portcullis(["run", "--database", "bk_src"], config: config)
        assertSucceeded(second, "the run after the kill")
        let secondID = try XCTUnwrap(backupID(second))
        XCTAssertFalse(try uploadsXML(moto).contains("<Upload>"), "the killed run's upload was aborted")

        // 5. pg_dump fails: a failed manifest, no stored object.
        let failing = try portcullis(["run", "--database", "bk_nosuch"], config: config)
        XCTAssertNotEqual(failing.status, 0, "\(failing)")
        let failedRow = try portcullis(["list"], config: config).stdout.split(separator: "\n").first { $0.contains("bk_nosuch") }
        XCTAssertTrue(failedRow?.hasSuffix("failed") ?? false, "\(String(describing: failedRow))")
        XCTAssertEqual(try objectKeys(moto).filter { $0.hasSuffix(".pcbk") }.sorted(),
                       ["\(Self.prefix)\(id).pcbk", "\(Self.prefix)\(secondID).pcbk"].sorted())

        // 6. prune keep_last = 1: the older good backup goes (object and manifest).
        let pruneConfig = "\(dir)/prune-s3.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8) + "\nkeep_last = 1\n", to: pruneConfig)
        let prune = try portcullis(["prune"], config: pruneConfig)
        assertSucceeded(prune, "prune on S3")
        let remaining = try objectKeys(moto).filter { !$0.contains(".junk-") }
        XCTAssertFalse(remaining.contains { $0.contains(id) }, "\(remaining)")
        XCTAssertTrue(remaining.contains("\(Self.prefix)\(secondID).pcbk"), "\(remaining)")

        // Every request so far carried a valid signature; a wrong secret is refused.
        // (Its first line is the readiness probe above, unsigned on purpose.)
        let checked = verifier.stdoutText().split(separator: "\n").filter { !$0.hasPrefix("GET /: ") && !$0.hasSuffix(": FAULT hold") }
        XCTAssertGreaterThan(checked.count, 30, "the store's requests went through the checker")
        XCTAssertEqual(checked.filter { !$0.hasSuffix(": OK") }, [], "every request was signed correctly")
        XCTAssertTrue(checked.contains { $0.contains("?uploads=") } && checked.contains { $0.contains("prefix=pg%2F") }
                      && checked.contains { $0.contains("partNumber=") } && checked.contains { $0.hasPrefix("HEAD ") },
                      "the checked requests include flags, encoded values, parts and HEAD: \(checked.prefix(10))")
        let wrongConfig = "\(dir)/wrong-secret.ini"
        try writePrivateConfig(try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "s3_secret_key = \(Self.secret)", with: "s3_secret_key = not-the-secret"), to: wrongConfig)
        let refused = try portcullis(["list"], config: wrongConfig)
        XCTAssertNotEqual(refused.status, 0, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("SignatureDoesNotMatch"), "\(refused)")

        // 7. The storage unreachable: the run fails clearly; clients of the proxy are unaffected.
        verifier.signal(SIGKILL)
        moto.stop()
        let unreachable = try portcullis(["run", "--database", "bk_src"], config: config)
        XCTAssertEqual(unreachable.status, 1, "\(unreachable)")
        XCTAssertTrue(unreachable.stderr.contains("onnect"), "\(unreachable)")
        XCTAssertFalse(unreachable.stderr.contains("wJalrXUtnFEMI"), "the secret key never appears")
        let endpoint = Endpoint(port: proxy.port, caFile: h.caFile, proxyPID: proxy.pid)
        let client = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT 40 + 2", env: endpoint.env())
        assertSucceeded(client, "a client after the failed backup")
    }
}
