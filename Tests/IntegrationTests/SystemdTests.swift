import Foundation
import Glibc
import XCTest

/// systemd integration without systemd as PID 1: the watchdog through a NOTIFY_SOCKET we own,
/// socket activation through `systemd-socket-activate` (Debian's systemd package).
final class SystemdTests: IntegrationTestCase {
    /// The harness's own configuration, for a proxy started here by hand.
    private func harnessConfig(in dir: String) throws -> String {
        let harness = try harness
        let source = try ProxyProcess(harness: harness, options: ProxyProcess.Options(upstream: harness.cluster))
        let config = try String(contentsOfFile: source.configPath, encoding: .utf8)
        source.stop()
        let path = "\(dir)/portcullis.ini"
        try writePrivateConfig(config, to: path)
        return path
    }

    /// Type=notify: READY once listening, RELOADING/READY around SIGHUP, STOPPING on SIGTERM.
    func testSystemdReadinessNotifications() throws {
        try requireProxyTarget("the proxy's sd_notify messages")
        let harness = try harness
        let dir = try harness.makeDir("notify")
        let notify = try NotifySocket(dir: dir)
        let configPath = try harnessConfig(in: dir)
        let proxy = try BackgroundCommand(ProxyProcess.binaryPath(repoRoot: harness.repoRoot), ["run", "--config", configPath],
                                          environment: ["NOTIFY_SOCKET": notify.path], workDir: dir)
        defer { proxy.signal(SIGKILL) }
        XCTAssertTrue(notify.receive().hasPrefix("READY=1"))
        proxy.signal(SIGHUP)
        XCTAssertEqual(notify.receive(), "RELOADING=1")
        XCTAssertTrue(notify.receive().hasPrefix("READY=1"))
        proxy.signal(SIGTERM)
        XCTAssertTrue(notify.receive().hasPrefix("STOPPING=1"))
        XCTAssertEqual(try proxy.wait(timeout: 30).status, 0)
    }

    /// WatchdogSec: with WATCHDOG_USEC set, WATCHDOG=1 arrives (every loop answered its probe),
    /// with STATUS= carrying the connection count.
    func testWatchdogPingsWhileLoopsAnswer() throws {
        try requireProxyTarget("the proxy's sd_notify watchdog")
        let harness = try harness
        let dir = try harness.makeDir("watchdog")
        let notify = try NotifySocket(dir: dir)
        let configPath = try harnessConfig(in: dir)
        let proxy = try BackgroundCommand(ProxyProcess.binaryPath(repoRoot: harness.repoRoot),
                                          ["run", "--config", configPath],
                                          environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"], workDir: dir)
        defer { proxy.signal(SIGKILL) }
        XCTAssertTrue(notify.receive().hasPrefix("READY=1"))
        var pings: [String] = []
        while pings.count < 3 {
            let message = notify.receive()
            guard !message.isEmpty else { break }
            if message.hasPrefix("WATCHDOG=1") { pings.append(message) }
        }
        XCTAssertEqual(pings.count, 3, proxy.stderrText())
        XCTAssertTrue(pings.allSatisfy { $0.contains("STATUS=") && $0.contains("client connections") }, "\(pings)")
        proxy.signal(SIGTERM)
        XCTAssertEqual(try proxy.wait(timeout: 30).status, 0)
    }

    /// sd_listen_fds: started by `systemd-socket-activate -l 127.0.0.1:PORT`, the proxy serves
    /// clients on PORT (passed by the activator) and does not bind its configured listen_port.
    func testSocketActivation() throws {
        try requireProxyTarget("socket activation")
        let activator = "/usr/bin/systemd-socket-activate"
        guard FileManager.default.isExecutableFile(atPath: activator) else { throw XCTSkip("no \(activator)") }
        let harness = try harness
        let dir = try harness.makeDir("socket-activation")
        let configPath = try harnessConfig(in: dir)
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        let configuredPort = try XCTUnwrap(config.split(separator: "\n").first { $0.hasPrefix("listen_port") }
            .flatMap { Int($0.split(separator: "=").last?.trimmingCharacters(in: .whitespaces) ?? "") })
        let port = try harness.freePort()
        XCTAssertNotEqual(port, configuredPort)
        let proxy = try BackgroundCommand(activator, ["-l", "127.0.0.1:\(port)", ProxyProcess.binaryPath(repoRoot: harness.repoRoot),
                                                      "run", "--config", configPath], workDir: dir)
        defer { proxy.signal(SIGKILL) }
        let endpoint = Endpoint(port: port, caFile: harness.caFile, proxyPID: proxy.pid)
        let result = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT current_user", env: endpoint.env(), timeout: 30)
        XCTAssertEqual(result.status, 0, "\(result)\n\(proxy.stderrText())")
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "app_rw")
        XCTAssertTrue(proxy.stderrText().contains("passed by systemd"), proxy.stderrText())
        // MemoryDenyWriteExecute=yes in portcullis.service: after a TLS session and a query,
        // no mapping is writable and executable at once (no JIT in the Swift runtime or OpenSSL).
        let maps = try String(contentsOfFile: "/proc/\(proxy.pid)/maps", encoding: .utf8)
        let writableExecutable = maps.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first?.hasPrefix("rwx") == true }
        XCTAssertEqual(writableExecutable, [], "W+X mappings would break under MemoryDenyWriteExecute")
        // Its own listen_port stays unbound.
        let own = Endpoint(port: configuredPort, caFile: harness.caFile, proxyPID: proxy.pid)
        XCTAssertNotEqual(try runPsql(conninfo: own.conninfo(), sql: "SELECT 1", env: own.env(), timeout: 30).status, 0)
        proxy.signal(SIGTERM)
        XCTAssertEqual(try proxy.wait(timeout: 30).status, 0)
    }
}
