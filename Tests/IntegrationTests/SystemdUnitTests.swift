import Foundation
import Glibc
import XCTest

/// conf/portcullis.service and conf/portcullis.socket, unchanged, under a real systemd as PID 1
/// (a systemd-nspawn container, scripts/systemd-container.sh; skipped where none can be made).
/// Only the port and, where a test says so, a drop-in (`WatchdogSec=3`, the socket's
/// `ListenStream=`) differ from what docs/SYSTEMD.md tells an administrator to install.
final class SystemdUnitTests: IntegrationTestCase {
    private func bootContainer() throws -> SystemdContainer {
        try requireProxyTarget("the systemd unit")
        let harness = try harness
        return try SystemdContainer(harness: harness, binary: ProxyProcess.binaryPath(repoRoot: harness.repoRoot))
    }

    /// The service's configuration: certificates under /etc/portcullis, the harness's cluster
    /// (on the host; the container shares its network) as upstream.
    private func unitConfig(listenPort: Int, extra: String = "") throws -> String {
        let harness = try harness
        let cluster = harness.cluster
        let rw = try cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'")
        let server = "host=127.0.0.1 port=\(cluster.port) sslmode=verify-full sslrootcert=/etc/portcullis/ca.crt"
        return """
            [portcullis]
            listen_addresses = 127.0.0.1
            listen_port = \(listenPort)
            host_auth_method = scram-sha-256
            log_level = info
            \(extra)

            [tls]
            client_tls = require
            client_tls_cert_file = /etc/portcullis/server.crt
            client_tls_key_file = /etc/portcullis/server.key
            client_tls_ca_file = /etc/portcullis/ca.crt

            [databases]
            app = \(server) dbname=app

            [identities]
            app_rw = mode=read-write password='\(rw)' server_user=app_rw server_password='app_rw_pw'

            """
    }

    private func install(_ container: SystemdContainer, config: String,
                         serviceDropIn: String? = nil, socketDropIn: String? = nil) throws {
        let harness = try harness
        try container.install(config: config, certDir: harness.certDir, repoRoot: harness.repoRoot,
                              serviceDropIn: serviceDropIn, socketDropIn: socketDropIn)
    }

    /// psql, TLS verify-full against the test CA, through `port`; returns current_user or the failure.
    private func currentUser(port: Int) throws -> CommandResult {
        let endpoint = Endpoint(port: port, caFile: try harness.caFile, proxyPID: nil)
        return try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT current_user", env: endpoint.env(), timeout: 60)
    }

    private func assertServes(port: Int, _ container: SystemdContainer, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try currentUser(port: port)
        XCTAssertEqual(result.status, 0, "\(result)\n\(container.log("portcullis.service").suffix(3000))", file: file, line: line)
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "app_rw", file: file, line: line)
    }

    /// Lines of the journal that are systemd's record of sd_notify messages from the service.
    private func notifications(_ journal: String) -> [String] {
        journal.split(separator: "\n").map(String.init).filter { $0.contains("Got notification message from PID") }
    }

    /// Start (Type=notify: READY=1 must reach systemd), serve psql verify-full, `systemctl
    /// status` with the STATUS= line, the hardening in force on the running process, reload
    /// (RELOADING=1 … READY=1; a refused reload keeps serving), clean stop (STOPPING=1, exit 0).
    func testServiceStartsReloadsAndStopsUnderSystemd() throws {
        let container = try bootContainer()
        defer { container.stop() }
        let port = try harness.freePort()
        try install(container, config: try unitConfig(listenPort: port))

        let start = try container.run(["systemctl", "start", "portcullis.service"])
        XCTAssertEqual(start.status, 0, "\(start)\n\(container.log("portcullis.service"))")
        let started = try container.properties("portcullis.service", ["ActiveState", "SubState", "MainPID", "StatusText", "User"])
        XCTAssertEqual(started["ActiveState"], "active")
        XCTAssertEqual(started["SubState"], "running")
        XCTAssertEqual(started["User"], "portcullis")
        // systemd logs the notification through journald, which may file it after `start` returns.
        XCTAssertTrue(poll(timeout: 10) {
            self.notifications((try? container.journal("portcullis.service")) ?? "").contains { $0.contains("(READY=1") }
        }, "READY=1 never reached systemd")
        try assertServes(port: port, container)

        // `systemctl status` shows what the service last sent as STATUS=.
        let statusText = try XCTUnwrap(started["StatusText"])
        XCTAssertFalse(statusText.isEmpty)
        let status = try container.run(["systemctl", "status", "--no-pager", "portcullis.service"])
        XCTAssertTrue(status.stdout.contains("Status: \"\(statusText)\""), status.stdout)

        // The hardening is in force on the running process (seen from the host's /proc).
        let mainPID = try XCTUnwrap(started["MainPID"])
        let hostPID = try XCTUnwrap(try container.hostPID(ofContainerPID: mainPID))
        let procStatus = try String(contentsOfFile: "/proc/\(hostPID)/status", encoding: .utf8)
        XCTAssertTrue(procStatus.contains("NoNewPrivs:\t1"), procStatus)
        XCTAssertTrue(procStatus.contains("Seccomp:\t2"), procStatus)
        XCTAssertTrue(procStatus.contains("CapEff:\t0000000000000000"), procStatus)
        XCTAssertTrue(procStatus.contains("CapBnd:\t0000000000000000"), procStatus)
        let limits = try String(contentsOfFile: "/proc/\(hostPID)/limits", encoding: .utf8)
        let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") }
        XCTAssertEqual(core?.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2).joined(separator: " "), "0 0")
        let serviceUserNamespace = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(hostPID)/ns/user")
        XCTAssertNotEqual(serviceUserNamespace, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user"),
                          "PrivateUsers=yes: the service has a user namespace of its own")

        // systemd-analyze security of the installed unit, by the systemd that runs it.
        let security = try container.must(["systemd-analyze", "security", "--no-pager", "portcullis.service"])
        let overall = try XCTUnwrap(security.split(separator: "\n").first { $0.contains("Overall exposure level for portcullis.service") })
        let score = overall.components(separatedBy: "portcullis.service:").last?
            .split(separator: " ").first.flatMap { Double($0) }
        XCTAssertLessThanOrEqual(try XCTUnwrap(score, String(overall)), 2.0, String(overall))

        // Reload: `systemctl reload` returns once the service sent READY=1 after RELOADING=1.
        try container.replaceConfig(try unitConfig(listenPort: port, extra: "login_timeout = 30s"))
        let before = notifications(try container.journal("portcullis.service")).count
        let reload = try container.run(["systemctl", "reload", "portcullis.service"])
        XCTAssertEqual(reload.status, 0, "\(reload)")
        var afterReload: ArraySlice<String> = []
        var reloading: Int?, ready: Int?
        _ = poll(timeout: 10) {
            afterReload = self.notifications((try? container.journal("portcullis.service")) ?? "").dropFirst(before)
            reloading = afterReload.firstIndex { $0.contains("RELOADING=1") }
            ready = afterReload.lastIndex { $0.contains("READY=1") }
            if let reloading, let ready { return reloading < ready }
            return false
        }
        XCTAssertNotNil(reloading, "\(afterReload)")
        XCTAssertNotNil(ready, "\(afterReload)")
        if let reloading, let ready { XCTAssertLessThan(reloading, ready) }
        XCTAssertEqual(try container.property("portcullis.service", "ActiveState"), "active")
        XCTAssertTrue(try container.journal("portcullis.service").contains("configuration reloaded"))
        try assertServes(port: port, container)

        // A refused reload (a broken file) ends the reload job too, and the old configuration serves on.
        try container.replaceConfig("[portcullis]\nlisten_port = not-a-port\n")
        let refused = try container.run(["systemctl", "reload", "portcullis.service"])
        XCTAssertEqual(refused.status, 0, "\(refused)")
        XCTAssertEqual(try container.property("portcullis.service", "ActiveState"), "active")
        XCTAssertEqual(try container.property("portcullis.service", "MainPID"), mainPID)
        XCTAssertTrue(try container.journal("portcullis.service").contains("/etc/portcullis/portcullis.ini:2: listen_port"),
                      "the refusal is logged with file:line")
        try assertServes(port: port, container)

        // Stop: SIGTERM, STOPPING=1, the drain, exit status 0 — "inactive", not "failed".
        let stop = try container.run(["systemctl", "stop", "portcullis.service"])
        XCTAssertEqual(stop.status, 0, "\(stop)")
        let stopped = try container.properties("portcullis.service", ["ActiveState", "Result"])
        XCTAssertEqual(stopped["ActiveState"], "inactive", "\(stopped)")
        XCTAssertEqual(stopped["Result"], "success", "\(stopped)")
        let journal = try container.journal("portcullis.service")
        XCTAssertTrue(notifications(journal).contains { $0.contains("STOPPING=1") }, journal.suffix(3000).description)
        XCTAssertTrue(journal.contains("Main process exited, code=exited, status=0/SUCCESS"), journal.suffix(3000).description)
        XCTAssertEqual(kill(hostPID, 0), -1, "the process is gone")
    }

    /// WatchdogSec: the first WATCHDOG=1 comes before systemd's deadline (its timer runs since
    /// the fork) and they keep arriving (systemd's WatchdogTimestamp advances) while every loop
    /// answers; one event loop thread stopped (ptrace), the pings stop, STATUS= names the loop,
    /// systemd's watchdog kills the service and Restart=on-failure brings it back.
    func testWatchdogKeepsItAliveAndRestartsAStalledLoop() throws {
        let container = try bootContainer()
        defer { container.stop() }
        let port = try harness.freePort()
        try install(container, config: try unitConfig(listenPort: port), serviceDropIn: "[Service]\nWatchdogSec=3\n")
        let start = try container.run(["systemctl", "start", "portcullis.service"])
        XCTAssertEqual(start.status, 0, "\(start)\n\(container.log("portcullis.service"))")

        // The first ping comes at the first tick (half of WatchdogSec after READY=1), well
        // before systemd's deadline: its debug log of the notifications, monotonic time stamps.
        var gap: Double?
        _ = try poll(timeout: 10, every: 0.1) {
            let lines = try container.must(["journalctl", "--no-pager", "-o", "short-monotonic", "-u", "portcullis.service"])
                .split(separator: "\n").filter { $0.contains("Got notification message from PID") }
            func time(_ line: Substring) -> Double? {
                line.split(separator: "]").first.flatMap { Double($0.dropFirst().trimmingCharacters(in: .whitespaces)) }
            }
            guard let ready = lines.firstIndex(where: { $0.contains("(READY=1") }),
                  let ping = lines[ready...].first(where: { $0.contains("WATCHDOG=1") }),
                  let readyAt = time(lines[ready]), let pingAt = time(ping) else { return false }
            gap = pingAt - readyAt
            return true
        }
        let firstPing = try XCTUnwrap(gap, "no WATCHDOG=1 after READY=1")
        XCTAssertLessThan(firstPing, 3.0, "first WATCHDOG=1 \(firstPing) s after READY=1: past WatchdogSec")
        // Then every 1.5 s (half of WatchdogSec): over 5 s at least 3 distinct timestamps.
        var stamps: Set<String> = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            stamps.insert(try container.property("portcullis.service", "WatchdogTimestampMonotonic"))
            usleep(250_000)
        }
        XCTAssertGreaterThanOrEqual(stamps.subtracting(["0", ""]).count, 3, "WATCHDOG=1 did not keep arriving: \(stamps)")
        XCTAssertEqual(try container.property("portcullis.service", "ActiveState"), "active")
        XCTAssertEqual(try container.property("portcullis.service", "NRestarts"), "0")
        let status = try container.must(["systemctl", "status", "--no-pager", "portcullis.service"])
        XCTAssertTrue(status.contains("client connections"), status)
        try assertServes(port: port, container)
        // STATUS= counts the client connections: one held open shows within a ping interval.
        let endpoint = Endpoint(port: port, caFile: try harness.caFile, proxyPID: nil)
        let held = try BackgroundCommand("psql", psqlFlags + ["-d", endpoint.conninfo(), "-c", "SELECT pg_sleep(4)"],
                                         environment: endpoint.env(), workDir: try harness.makeDir("watchdog-held"))
        let counted = try poll(timeout: 3.5, every: 0.1) {
            try container.property("portcullis.service", "StatusText").hasPrefix("1 client connections")
        }
        XCTAssertTrue(counted, (try? container.property("portcullis.service", "StatusText")) ?? "")
        XCTAssertEqual(try held.wait(timeout: 30).status, 0, held.stderrText())

        // Stop one event loop thread ("portcullis-N"; the others and the monitor run on).
        let mainPID = try container.property("portcullis.service", "MainPID")
        let hostPID = try XCTUnwrap(try container.hostPID(ofContainerPID: mainPID))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(hostPID)/task")
        let loops = tasks.filter { task in
            let comm = ((try? String(contentsOfFile: "/proc/\(hostPID)/task/\(task)/comm", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return comm.hasPrefix("portcullis-") && Int(comm.dropFirst("portcullis-".count)) != nil
        }
        let loop = try XCTUnwrap(loops.compactMap { pid_t($0) }.max(), "no event loop thread in \(tasks)")
        let notifiedBefore = notifications(try container.journal("portcullis.service")).count
        let stopper = try ThreadStopper(tid: loop, workDir: try harness.makeDir("watchdog-stall"))
        let timedOut = try poll(timeout: 20, every: 0.25) {
            try container.journal("portcullis.service").contains("Watchdog timeout")
        }
        stopper.release()
        let journal = try container.journal("portcullis.service")
        XCTAssertTrue(timedOut, journal.suffix(3000).description)
        let duringStall = notifications(journal).dropFirst(notifiedBefore)
        XCTAssertTrue(duringStall.contains { $0.contains("not answering") }, "STATUS= should name the silent loop: \(duringStall)")

        // Restart=on-failure: a new process, serving again.
        let restarted = try poll(timeout: 30, every: 0.25) {
            let now = try container.properties("portcullis.service", ["ActiveState", "SubState", "NRestarts", "MainPID"])
            return now["ActiveState"] == "active" && now["SubState"] == "running" && now["NRestarts"] == "1" && now["MainPID"] != mainPID
        }
        XCTAssertTrue(restarted, container.log("portcullis.service").suffix(3000).description)
        XCTAssertTrue(try container.journal("portcullis.service").contains("status=6/ABRT"), "ended by the watchdog's SIGABRT")
        try assertServes(port: port, container)
        XCTAssertEqual(try container.run(["systemctl", "stop", "portcullis.service"]).status, 0)
    }

    /// The audit stream from the hardened unit: to the container's journald (structured fields,
    /// nothing extra in the unit) and to a JSON file under the drop-in docs/SYSTEMD.md gives for
    /// it (`LogsDirectory=portcullis`); SIGTERM at `systemctl stop` flushes the disconnect record.
    func testAuditStreamFromTheUnit() throws {
        let container = try bootContainer()
        defer { container.stop() }
        let port = try harness.freePort()
        let config = try unitConfig(listenPort: port, extra: "audit = on\naudit_sinks = journald, json:/var/log/portcullis/audit.json")
        try install(container, config: config,
                    serviceDropIn: "[Service]\nReadWritePaths=/var/log/portcullis\nLogsDirectory=portcullis\nLogsDirectoryMode=0750\n")
        let start = try container.run(["systemctl", "start", "portcullis.service"])
        XCTAssertEqual(start.status, 0, "\(start)\n\(container.log("portcullis.service"))")
        let tag = marker("systemd_audit")
        let endpoint = Endpoint(port: port, caFile: try harness.caFile, proxyPID: nil)
        let query = try runPsql(conninfo: endpoint.conninfo(), sql: "SELECT '\(tag)'", env: endpoint.env(), timeout: 60)
        XCTAssertEqual(query.status, 0, "\(query)")

        // journald: the statement record with its structured fields.
        var record: [String: Any] = [:]
        let found = try poll(timeout: 10, every: 0.2) {
            let output = try container.must(["journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=portcullis",
                                             "AUDIT_EVENT=statement"])
            for line in output.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      (object["MESSAGE"] as? String)?.contains(tag) == true else { continue }
                record = object
                return true
            }
            return false
        }
        XCTAssertTrue(found, "no statement record in the container's journal")
        XCTAssertEqual(record["AUDIT_CLASS"] as? String, "READ", "\(record)")
        XCTAssertEqual(record["DB_USER"] as? String, "app_rw", "\(record)")
        XCTAssertEqual(record["DB_NAME"] as? String, "app", "\(record)")
        XCTAssertEqual(record["OUTCOME"] as? String, "ok", "\(record)")
        XCTAssertEqual(record["CLIENT_ADDR"] as? String, "127.0.0.1", "\(record)")
        XCTAssertEqual(record["_SYSTEMD_UNIT"] as? String, "portcullis.service", "\(record)")

        // The JSON file, in the service's logs directory, private to it (UMask=0077, mode 0600).
        XCTAssertEqual(try container.run(["systemctl", "stop", "portcullis.service"]).status, 0)
        XCTAssertEqual(try container.property("portcullis.service", "Result"), "success")
        let listing = try container.must(["stat", "-c", "%U %a", "/var/log/portcullis", "/var/log/portcullis/audit.json"])
        XCTAssertEqual(listing.split(separator: "\n"), ["portcullis 750", "portcullis 600"], listing)
        let json = try container.must(["cat", "/var/log/portcullis/audit.json"])
        XCTAssertTrue(json.contains(tag), json.suffix(2000).description)
        XCTAssertTrue(json.contains("\"audit_event\":\"disconnect\""), json.suffix(2000).description)
    }

    /// portcullis.socket: systemd binds the port, the first client starts the service, which
    /// accepts on the passed socket and leaves its own listen_port unbound; after the service
    /// is stopped the socket stays and the next client starts it again.
    func testSocketUnitActivatesTheService() throws {
        let container = try bootContainer()
        defer { container.stop() }
        let configuredPort = try harness.freePort()
        let socketPort = try harness.freePort()
        try install(container, config: try unitConfig(listenPort: configuredPort),
                    socketDropIn: "[Socket]\nListenStream=\nListenStream=127.0.0.1:\(socketPort)\n")
        let start = try container.run(["systemctl", "start", "portcullis.socket"])
        XCTAssertEqual(start.status, 0, "\(start)\n\(container.log("portcullis.socket"))")
        XCTAssertEqual(try container.property("portcullis.socket", "ActiveState"), "active")
        XCTAssertEqual(try container.property("portcullis.service", "ActiveState"), "inactive")

        try assertServes(port: socketPort, container)
        let first = try container.properties("portcullis.service", ["ActiveState", "MainPID"])
        XCTAssertEqual(first["ActiveState"], "active")
        XCTAssertTrue(try container.journal("portcullis.service").contains("passed by systemd"))
        XCTAssertNotEqual(try currentUser(port: configuredPort).status, 0, "its own listen_port must stay unbound")

        XCTAssertEqual(try container.run(["systemctl", "stop", "portcullis.service"]).status, 0)
        XCTAssertEqual(try container.property("portcullis.socket", "ActiveState"), "active")
        try assertServes(port: socketPort, container)
        let second = try container.properties("portcullis.service", ["ActiveState", "MainPID"])
        XCTAssertEqual(second["ActiveState"], "active")
        XCTAssertNotEqual(second["MainPID"], first["MainPID"], "started again by the socket")

        XCTAssertEqual(try container.run(["systemctl", "stop", "portcullis.socket", "portcullis.service"]).status, 0)
        XCTAssertEqual(try container.property("portcullis.service", "Result"), "success")
    }
}
