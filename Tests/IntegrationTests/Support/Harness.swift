import Foundation
import Glibc

/// Which server the integration tests talk to. `PORTCULLIS_IT_TARGET=direct` points the same
/// tests at PostgreSQL itself, which validates the harness and the tests' expectations; the
/// default is the proxy.
enum Target: String, Sendable {
    case proxy
    case direct

    static let current: Target = Target(rawValue: ProcessInfo.processInfo.environment["PORTCULLIS_IT_TARGET"] ?? "proxy") ?? .proxy
}

/// Where a client connects: `host=localhost` so `sslmode=verify-full` checks the name.
struct Endpoint: Sendable {
    let port: Int
    let caFile: String
    /// The proxy's process id when the endpoint is a proxy.
    let proxyPID: Int32?

    func conninfo(user: String = "app_rw", dbname: String = "app", sslmode: String = "verify-full",
                  extra: String = "") -> String {
        "host=localhost port=\(port) dbname=\(dbname) user=\(user) sslmode=\(sslmode) sslrootcert=\(caFile) connect_timeout=10 \(extra)"
    }

    static let passwords = ["app_rw": "app_rw_pw", "app_ro": "app_ro_pw", "postgres": "postgres_pw"]

    func env(user: String = "app_rw") -> [String: String] {
        ["PGPASSWORD": Endpoint.passwords[user] ?? ""]
    }
}

/// A cluster started by scripts/pg-cluster.sh.
struct Cluster: Sendable {
    let dir: String
    let port: Int

    /// Runs SQL as the superuser over the Unix socket (trust), bypassing any proxy.
    func superuserPsql(_ sql: String, dbname: String = "postgres") throws -> CommandResult {
        try runPsql(conninfo: "host=\(dir) port=\(port) dbname=\(dbname) user=postgres", sql: sql)
    }

    /// `superuserPsql` that must succeed; returns trimmed stdout.
    @discardableResult
    func query(_ sql: String, dbname: String = "postgres") throws -> String {
        let result = try superuserPsql(sql, dbname: dbname)
        guard result.status == 0 else { throw CommandError(description: "superuser query failed: \(sql)\n\(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    var logText: String {
        (try? String(contentsOfFile: "\(dir)/log/postgresql.log", encoding: .utf8)) ?? ""
    }
}

/// Shared per test process: certificates, one PostgreSQL cluster, and (in proxy mode) one
/// default proxy in front of it. Everything it starts is stopped at process exit.
final class Harness: @unchecked Sendable {
    let repoRoot: String
    let certDir: String
    /// Per-process temp root, /tmp/portcullis-it.PID.XXXXXX (scripts/stop-test-clusters.sh
    /// cleans roots whose owner died).
    let root: String
    let scratchDir: String
    let cluster: Cluster

    private let lock = NSLock()
    /// Serialises creating the default proxy; separate from `lock`, which proxy setup takes.
    private let proxyLock = NSLock()
    private var clusters: [Cluster] = []
    private var defaultProxy: ProxyProcess?
    private var usedPorts: Set<Int> = []

    private nonisolated(unsafe) static var instance: Result<Harness, Error>?
    private static let instanceLock = NSLock()

    static func shared() throws -> Harness {
        instanceLock.lock()
        defer { instanceLock.unlock() }
        if instance == nil {
            instance = Result { try Harness() }
            if case .success = instance { atexit { Harness.stopEverything() } }
        }
        return try instance!.get()
    }

    private static func stopEverything() {
        guard case .success(let harness)? = instance else { return }
        harness.shutDown()
    }

    private init() throws {
        // A write to a peer that went away must be an error, not a process-killing signal.
        signal(SIGPIPE, SIG_IGN)
        repoRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        certDir = "\(repoRoot)/certs-example/generated"

        var template = Array("/tmp/portcullis-it.\(getpid()).XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CommandError(description: "mkdtemp failed") }
        root = String(cString: made)
        chmod(root, 0o755)  // the postgres OS user must reach the cluster directories
        try "\(getpid())\n".write(toFile: "\(root)/owner.pid", atomically: true, encoding: .utf8)
        scratchDir = "\(root)/scratch"
        try FileManager.default.createDirectory(atPath: scratchDir, withIntermediateDirectories: true)

        try Harness.script(repoRoot, "certs-example/generate.sh", [certDir], scratch: scratchDir)
        let port = try Harness.pickFreePort(excluding: [])
        usedPorts.insert(port)
        cluster = Cluster(dir: "\(root)/pg-main", port: port)
        clusters.append(cluster)
        try Harness.script(repoRoot, "scripts/pg-cluster.sh", ["start", cluster.dir, String(port), certDir], scratch: scratchDir)
    }

    private static func script(_ repo: String, _ path: String, _ args: [String], scratch: String) throws {
        let command = try BackgroundCommand("\(repo)/\(path)", args, workDir: scratch)
        let result = try command.wait(timeout: 180)
        guard result.status == 0 else { throw CommandError(description: "\(path) \(args) failed: \(result)") }
    }

    var caFile: String { "\(certDir)/ca.crt" }

    /// A fresh directory under the per-process root.
    func makeDir(_ prefix: String) throws -> String {
        let dir = "\(root)/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        return dir
    }

    /// A TCP port free on both 127.0.0.1 and ::1, never handed out twice in this process.
    func freePort() throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        let port = try Harness.pickFreePort(excluding: usedPorts)
        usedPorts.insert(port)
        return port
    }

    private static func pickFreePort(excluding used: Set<Int>) throws -> Int {
        for _ in 0..<50 {
            guard let port = RawSocket.ephemeralPortOnLoopback() else { continue }
            if !used.contains(port) && RawSocket.canBind(port: port, ipv6: true) { return port }
        }
        throw CommandError(description: "no free port found")
    }

    /// Starts another cluster (e.g. serving `upstream-wrong-name`); stopped at process exit.
    func startExtraCluster(certName: String) throws -> Cluster {
        let extra = Cluster(dir: "\(root)/pg-\(certName)-\(UUID().uuidString.prefix(4))", port: try freePort())
        lock.lock(); clusters.append(extra); lock.unlock()
        try Harness.script(repoRoot, "scripts/pg-cluster.sh", ["start", extra.dir, String(extra.port), certDir, certName],
                           scratch: scratchDir)
        return extra
    }

    /// The endpoint tests use by default: the shared proxy, or the cluster itself in direct mode.
    func endpoint() throws -> Endpoint {
        switch Target.current {
        case .direct:
            return Endpoint(port: cluster.port, caFile: caFile, proxyPID: nil)
        case .proxy:
            proxyLock.lock()
            defer { proxyLock.unlock() }
            lock.lock()
            let existing = defaultProxy
            lock.unlock()
            if let existing, existing.isAlive { return existing.endpoint }
            let proxy = try ProxyProcess(harness: self, options: ProxyProcess.Options(upstream: cluster))
            lock.lock()
            defaultProxy = proxy
            lock.unlock()
            return proxy.endpoint
        }
    }

    private func shutDown() {
        lock.lock()
        let proxy = defaultProxy
        defaultProxy = nil
        let all = clusters
        lock.unlock()
        proxy?.stop()
        ProxyProcess.stopAllLive()
        for cluster in all {
            _ = try? BackgroundCommand("\(repoRoot)/scripts/pg-cluster.sh", ["stop", cluster.dir], workDir: scratchDir)
                .wait(timeout: 60)
        }
        if ProcessInfo.processInfo.environment["PORTCULLIS_IT_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}
