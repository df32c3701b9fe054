import Foundation
import Glibc

/// A `portcullis run --config FILE` child with its own config, ports and stderr file.
/// Binary: $PORTCULLIS_BIN, else `portcullis` next to the test bundle (same scratch path),
/// else <repo>/.build/debug/portcullis.
final class ProxyProcess: @unchecked Sendable {
    struct Options: Sendable {
        var upstream: Cluster
        var certName = "server"
        var loginTimeout = "60s"
        var logLevel = "info"
        /// More `[portcullis]` lines, e.g. "server_reset = discard".
        var extraSettings: [String] = []
        var clientTLS = "require"
        /// More `[databases]` lines ("name = conninfo"); `upstreamConninfo` gives the base.
        var extraDatabases: [String] = []
        /// More `[identities]` lines.
        var extraIdentities: [String] = []
        /// More upstream databases, each served under its own name like `app`.
        var extraDatabaseNames: [String] = []
        /// Whole sections appended at the end (e.g. "[backup]\ndirectory = ...").
        var extraSections: [String] = []
        /// Environment of the proxy process (test hooks such as PORTCULLIS_TEST_RESOLVER_DELAY_MS).
        var environment: [String: String] = [:]
    }

    /// The `[databases]` connection string for a database on `cluster`, as the harness writes it.
    static func upstreamConninfo(_ cluster: Cluster, certDir: String) -> String {
        "host=127.0.0.1 port=\(cluster.port) sslmode=verify-full sslrootcert=\(certDir)/ca.crt"
    }

    let dir: String
    let configPath: String
    let port: Int
    let endpoint: Endpoint
    private let command: BackgroundCommand
    private let lock = NSLock()
    private var stopped = false

    private static let liveLock = NSLock()
    private nonisolated(unsafe) static var live: [Int32: ProxyProcess] = [:]

    init(harness: Harness, options: Options) throws {
        dir = try harness.makeDir("proxy")
        port = try harness.freePort()
        configPath = "\(dir)/portcullis.ini"
        try writePrivateConfig(ProxyProcess.config(harness: harness, options: options, port: port), to: configPath)

        let binary = ProxyProcess.binaryPath(repoRoot: harness.repoRoot)
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CommandError(description: "no portcullis binary at \(binary); run `swift build` or set PORTCULLIS_BIN")
        }
        command = try BackgroundCommand(binary, ["run", "--config", configPath], environment: options.environment, workDir: dir)
        endpoint = Endpoint(port: port, caFile: harness.caFile, proxyPID: command.pid)
        try "\(command.pid)\n".write(toFile: "\(dir)/portcullis.pid", atomically: true, encoding: .utf8)
        ProxyProcess.liveLock.lock(); ProxyProcess.live[command.pid] = self; ProxyProcess.liveLock.unlock()
        do {
            try waitUntilReady(timeout: 20)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    static func binaryPath(repoRoot: String) -> String {
        if let explicit = ProcessInfo.processInfo.environment["PORTCULLIS_BIN"] { return explicit }
        // The xctest bundle lives in <scratch>/debug/; so does the portcullis built with it.
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent().path
        for candidate in [Bundle.main.bundlePath, bundleDir].map({ "\($0)/portcullis" })
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent().path
        if FileManager.default.isExecutableFile(atPath: "\(testBinary)/portcullis") { return "\(testBinary)/portcullis" }
        return "\(repoRoot)/.build/debug/portcullis"
    }

    private static func config(harness: Harness, options: Options, port: Int) throws -> String {
        let upstream = options.upstream
        let rw = try upstream.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'")
        let ro = try upstream.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_ro'")
        let certs = harness.certDir
        let server = upstreamConninfo(upstream, certDir: certs)
        return """
            ; Written by the integration test harness.
            [portcullis]
            listen_addresses = 127.0.0.1, ::1
            listen_port = \(port)
            login_timeout = \(options.loginTimeout)
            local_auth_method = trust
            host_auth_method = scram-sha-256
            log_level = \(options.logLevel)
            \(options.extraSettings.joined(separator: "\n"))
            \(auditOverride(harness: harness, options: options, port: port))

            [tls]
            client_tls = \(options.clientTLS)
            client_tls_cert_file = \(certs)/\(options.certName).crt
            client_tls_key_file = \(certs)/\(options.certName).key
            client_tls_ca_file = \(certs)/ca.crt

            [databases]
            app = \(server) dbname=app
            postgres = \(server) dbname=postgres
            \(options.extraDatabases.joined(separator: "\n"))
            \(options.extraDatabaseNames.map { "\($0) = \(server) dbname=\($0)" }.joined(separator: "\n"))

            [identities]
            app_rw = mode=read-write password='\(rw)' server_user=app_rw server_password='app_rw_pw'
            app_ro = mode=read-only password='\(ro)' server_user=app_ro server_password='app_ro_pw'
            \(options.extraIdentities.joined(separator: "\n"))

            \(options.extraSections.joined(separator: "\n\n"))

            """
    }

    /// PORTCULLIS_IT_AUDIT=1 runs every proxy the tests start with the audit stream on (to a
    /// JSON file kept after the run, /tmp/portcullis-it-audit.<pid>.<port>.json, to look at),
    /// so the byte-path tests also run with it.
    private static func auditOverride(harness: Harness, options: Options, port: Int) -> String {
        guard ProcessInfo.processInfo.environment["PORTCULLIS_IT_AUDIT"] == "1",
              !options.extraSettings.contains(where: { $0.hasPrefix("audit") }) else { return "" }
        return "audit = on\naudit_sinks = json:/tmp/portcullis-it-audit.\(getpid()).\(port).json"
    }

    /// Readiness wait, not a speed assertion: `pg_isready` exits 0 once something answers the
    /// PostgreSQL protocol on the port (1 = rejecting, 2 = no response).
    private func waitUntilReady(timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard command.isRunning else {
                throw CommandError(description: "portcullis exited with status \(command.terminationStatus ?? -1) before becoming ready\n--- stderr ---\n\(stderrText.suffix(4000))\n--- stdout ---\n\(command.stdoutText().suffix(2000))")
            }
            let probe = try BackgroundCommand("pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "2",
                                                              "-U", "app_rw", "-d", "app"], workDir: dir)
            if try probe.wait(timeout: 10).status == 0 { return }
            usleep(100_000)
        }
        throw CommandError(description: "portcullis did not accept connections on port \(port) within \(timeout) s\n\(stderrText.suffix(4000))")
    }

    var pid: Int32 { command.pid }
    var isAlive: Bool { command.isRunning && kill(command.pid, 0) == 0 }
    var stderrText: String { command.stderrText() }

    /// Peak resident set size (VmHWM) in bytes, from /proc/PID/status.
    func peakRSS() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return kib.map { $0 * 1024 }
        }
        return nil
    }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        lock.unlock()
        if command.isRunning {
            command.signal(SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while command.isRunning && Date() < deadline { usleep(20_000) }
            command.signal(SIGKILL)
            while command.isRunning { usleep(10_000) }
        }
        ProxyProcess.liveLock.lock(); ProxyProcess.live.removeValue(forKey: command.pid); ProxyProcess.liveLock.unlock()
    }

    static func stopAllLive() {
        liveLock.lock()
        let all = Array(live.values)
        liveLock.unlock()
        for proxy in all { proxy.stop() }
    }
}

/// Writes a configuration file readable by its owner only: the proxy refuses one that others
/// can read while it holds plaintext passwords (the harness's do).
func writePrivateConfig(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    guard chmod(path, 0o600) == 0 else { throw CommandError(description: "chmod \(path): errno \(errno)") }
}
