import Foundation
import Glibc
import XCTest

/// A container whose PID 1 is a real systemd (scripts/systemd-container.sh: systemd-nspawn -b
/// over a cached Debian 12 root, sharing the host's network), with conf/portcullis.service and
/// conf/portcullis.socket installed the way docs/SYSTEMD.md tells an administrator to.
final class SystemdContainer {
    let name: String
    let script: String
    /// Host directory bind-mounted read-only at /stage: configuration, certificates, units.
    let stage: String
    private var stopped = false

    private nonisolated(unsafe) static var counter = 0
    private static let counterLock = NSLock()
    private static let buildLock = NSLock()
    private nonisolated(unsafe) static var buildResult: Result<Void, Error>?

    /// Builds the cached root once per test process (minutes the first time on a machine,
    /// instant afterwards); a machine where that cannot be done skips the test with the reason.
    static func requireRoot(script: String) throws {
        buildLock.lock()
        defer { buildLock.unlock() }
        if buildResult == nil {
            buildResult = Result {
                guard getuid() == 0 else { throw XCTSkip("systemd container tests need root (systemd-nspawn)") }
                let result = try runCommand(script, ["build"], timeout: 900)
                guard result.status == 0 else {
                    throw XCTSkip("no systemd container on this machine (scripts/systemd-container.sh build): \(result.stderr.suffix(1500))")
                }
            }
        }
        try buildResult?.get()
    }

    /// Boots a fresh container (every change made in it is gone at `stop`).
    init(harness: Harness, binary: String) throws {
        script = "\(harness.repoRoot)/scripts/systemd-container.sh"
        try SystemdContainer.requireRoot(script: script)
        SystemdContainer.counterLock.lock()
        SystemdContainer.counter += 1
        name = "pcit-\(getpid())-\(SystemdContainer.counter)"
        SystemdContainer.counterLock.unlock()
        stage = try harness.makeDir("systemd-stage")
        let result = try runCommand(script, ["start", name, "--bind-ro=\(binary):/usr/local/bin/portcullis",
                                             "--bind-ro=\(stage):/stage"], timeout: 120)
        guard result.status == 0 else {
            if result.status == 2 { throw XCTSkip("systemd container did not boot: \(result.stderr.suffix(1500))") }
            throw CommandError(description: "systemd-container.sh start: \(result)")
        }
    }

    deinit { stop() }

    func stop() {
        if stopped { return }
        stopped = true
        _ = try? runCommand(script, ["stop", name], timeout: 60)
    }

    /// Runs a command inside the container (as root, in all its namespaces).
    @discardableResult
    func run(_ arguments: [String], timeout: Double = 120) throws -> CommandResult {
        try runCommand(script, ["exec", name] + arguments, timeout: timeout)
    }

    /// `run` that must succeed; returns stdout.
    @discardableResult
    func must(_ arguments: [String], timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try run(arguments, timeout: timeout)
        guard result.status == 0 else {
            throw CommandError(description: "in container: \(arguments.joined(separator: " ")): \(result)")
        }
        return result.stdout
    }

    func shell(_ command: String) throws -> String { try must(["sh", "-ec", command]) }

    /// `systemctl show UNIT -p NAME...` as a dictionary.
    func properties(_ unit: String, _ names: [String]) throws -> [String: String] {
        let output = try must(["systemctl", "show", unit] + names.flatMap { ["-p", $0] })
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    func property(_ unit: String, _ name: String) throws -> String {
        try properties(unit, [name])[name] ?? ""
    }

    /// The unit's journal since boot (systemd's own lines about it included).
    func journal(_ unit: String) throws -> String {
        try must(["journalctl", "--no-pager", "-o", "cat", "-u", unit])
    }

    /// `journal` for failure messages (which cannot throw).
    func log(_ unit: String) -> String { (try? journal(unit)) ?? "(no journal)" }

    /// The host's PID of a process whose PID inside the container is `pid` (the container has
    /// its own PID namespace; /proc/N/status NSpid lists the PID in each namespace).
    func hostPID(ofContainerPID pid: String) throws -> pid_t? {
        let leader = try runCommand(script, ["leader", name], timeout: 10).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let namespace = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(leader)/ns/pid")
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let candidate = pid_t(entry),
                  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/ns/pid")) == namespace,
                  let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }),
                  line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.map(String.init) == pid
            else { continue }
            return candidate
        }
        return nil
    }

    /// Writes the stage: portcullis.ini (readable by root and the service's group only, as
    /// docs/SYSTEMD.md says), the server certificate, key and CA, the two shipped units, and
    /// optional drop-ins; then installs them inside the container and runs daemon-reload.
    func install(config: String, certDir: String, repoRoot: String,
                 serviceDropIn: String? = nil, socketDropIn: String? = nil) throws {
        try writePrivateConfig(config, to: "\(stage)/portcullis.ini")
        for file in ["server.crt", "server.key", "ca.crt"] {
            try FileManager.default.copyItem(atPath: "\(certDir)/\(file)", toPath: "\(stage)/\(file)")
        }
        for unit in ["portcullis.service", "portcullis.socket"] {
            try FileManager.default.copyItem(atPath: "\(repoRoot)/conf/\(unit)", toPath: "\(stage)/\(unit)")
        }
        var commands = [
            "useradd --system --no-create-home --shell /usr/sbin/nologin portcullis",
            "install -d -m 0750 -o root -g portcullis /etc/portcullis",
            "for f in portcullis.ini server.crt server.key ca.crt; do install -m 0640 -o root -g portcullis /stage/$f /etc/portcullis/$f; done",
            "install -m 0644 /stage/portcullis.service /stage/portcullis.socket /etc/systemd/system/",
        ]
        if let serviceDropIn {
            try serviceDropIn.write(toFile: "\(stage)/service-dropin.conf", atomically: true, encoding: .utf8)
            commands.append("install -D -m 0644 /stage/service-dropin.conf /etc/systemd/system/portcullis.service.d/test.conf")
        }
        if let socketDropIn {
            try socketDropIn.write(toFile: "\(stage)/socket-dropin.conf", atomically: true, encoding: .utf8)
            commands.append("install -D -m 0644 /stage/socket-dropin.conf /etc/systemd/system/portcullis.socket.d/test.conf")
        }
        // systemd logs every sd_notify message it receives at debug level ("Got notification
        // message from PID N (READY=1, ...)"): the journal then shows what reached it.
        commands += ["systemctl daemon-reload", "systemd-analyze log-level debug"]
        _ = try shell(commands.joined(separator: "\n"))
    }

    /// Replaces the installed configuration (for reload tests).
    func replaceConfig(_ config: String) throws {
        try writePrivateConfig(config, to: "\(stage)/portcullis.ini.new")
        _ = try shell("install -m 0640 -o root -g portcullis /stage/portcullis.ini.new /etc/portcullis/portcullis.ini")
    }
}

/// Stops one thread of another process (PTRACE_SEIZE + PTRACE_INTERRUPT: only that thread
/// stops, the others run on) for as long as this helper lives. Through python3's ctypes since
/// ptrace(2) is variadic in C and cannot be called from Swift.
final class ThreadStopper {
    private let command: BackgroundCommand

    init(tid: pid_t, workDir: String) throws {
        let program = """
            import ctypes, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            tid = int(sys.argv[1])
            if libc.ptrace(0x4206, tid, None, None) != 0 or libc.ptrace(0x4207, tid, None, None) != 0:
                sys.exit("ptrace: errno %d" % ctypes.get_errno())
            print("stopped", flush=True)
            time.sleep(600)
            """
        command = try BackgroundCommand("python3", ["-c", program, String(tid)], workDir: workDir)
        let stopped = poll(timeout: 10) { command.stdoutText().contains("stopped") || !command.isRunning }
        guard stopped, command.isRunning else {
            throw CommandError(description: "could not stop thread \(tid): \(command.stderrText())")
        }
    }

    /// Detaches (the tracer's exit resumes the thread).
    func release() {
        command.signal(SIGKILL)
        _ = try? command.wait(timeout: 10)
    }

    deinit { release() }
}
