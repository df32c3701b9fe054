import Foundation
import Glibc

/// What a finished child process left behind.
struct CommandResult: Sendable, CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String
    /// Wall-clock seconds from launch to exit; a sanity bound for tests, never a speed measure.
    let elapsed: Double

    var description: String {
        "exit status \(status) after \(String(format: "%.1f", elapsed)) s\n--- stdout ---\n\(stdout.suffix(4000))\n--- stderr ---\n\(stderr.suffix(4000))"
    }
}

struct CommandError: Error, CustomStringConvertible {
    let description: String
}

/// A child process whose output goes to files (never pipes, so a chatty child cannot block on
/// a full pipe while the test waits for it). Executables without a slash are looked up on PATH.
///
/// Spawned with posix_spawn and reaped with waitpid rather than Foundation's Process: on Linux,
/// Process notices termination through a descriptor the child inherits, so a script that
/// starts a daemon (pg_ctl start) never "exits" while the daemon holds it.
final class BackgroundCommand: @unchecked Sendable {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    let arguments: [String]
    private var stdinWriteFD: Int32 = -1
    private let started = Date()
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// - Parameters:
    ///   - stdinFile: a file to feed as standard input; `nil` with `interactiveStdin` false means /dev/null.
    ///   - interactiveStdin: keep a pipe open to write commands with `send(_:)`.
    ///   - stdoutFile: where standard output goes (defaults to a fresh file in `workDir`).
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
         workDir: String, stdinFile: String? = nil, interactiveStdin: Bool = false,
         stdoutFile: String? = nil) throws {
        let tag = "\(URL(fileURLWithPath: executable).lastPathComponent)-\(UUID().uuidString.prefix(8))"
        stdoutPath = stdoutFile ?? "\(workDir)/\(tag).stdout"
        stderrPath = "\(workDir)/\(tag).stderr"
        self.arguments = [executable] + arguments

        var env = ProcessInfo.processInfo.environment
        // Tests choose every connection parameter explicitly; stray PG* variables must not leak in.
        for key in env.keys where key.hasPrefix("PG") { env.removeValue(forKey: key) }
        env.merge(environment) { _, new in new }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var stdinReadFD: Int32 = -1
        if interactiveStdin {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw CommandError(description: "pipe: errno \(errno)") }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            stdinReadFD = fds[0]
            stdinWriteFD = fds[1]
            posix_spawn_file_actions_adddup2(&actions, stdinReadFD, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, stdinFile ?? "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        // The test process ignores SIGPIPE; children get default dispositions and an empty mask.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = self.arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, executable, &actions, &attributes, argv, envp)
        if stdinReadFD >= 0 { close(stdinReadFD) }
        guard rc == 0 else {
            if stdinWriteFD >= 0 { close(stdinWriteFD) }
            throw CommandError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    deinit {
        if stdinWriteFD >= 0 { close(stdinWriteFD) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(5_000) }
        }
    }

    /// Reaps the child if it has exited; true while it runs.
    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid {
            let signal = status & 0x7f
            exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            return false
        }
        return reaped == 0
    }

    /// Exit code, or 128 + signal number when killed by a signal; nil while running.
    var terminationStatus: Int32? {
        _ = isRunning
        lock.lock()
        defer { lock.unlock() }
        return exitStatus
    }

    func send(_ text: String) {
        guard stdinWriteFD >= 0 else { return }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(stdinWriteFD, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    func closeStdin() {
        if stdinWriteFD >= 0 { close(stdinWriteFD) }
        stdinWriteFD = -1
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    func stdoutText() -> String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    func stderrText() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for exit; on timeout kills the child and throws.
    @discardableResult
    func wait(timeout: Double) throws -> CommandResult {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(10_000) }
            throw CommandError(description: "\(arguments) did not finish within \(timeout) s; killed.\n\(stderrText().suffix(2000))")
        }
        return CommandResult(status: terminationStatus ?? -1, stdout: stdoutText(), stderr: stderrText(),
                             elapsed: Date().timeIntervalSince(started))
    }
}

/// Runs a command to completion.
func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                stdinFile: String? = nil, stdoutFile: String? = nil, timeout: Double = 300) throws -> CommandResult {
    let command = try BackgroundCommand(executable, arguments, environment: environment,
                                        workDir: try Harness.shared().scratchDir,
                                        stdinFile: stdinFile, stdoutFile: stdoutFile)
    return try command.wait(timeout: timeout)
}

/// Flags every psql invocation uses: no psqlrc, unaligned tuples-only output, stop on error.
let psqlFlags = ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]

/// `psql -X -A -t -v ON_ERROR_STOP=1 -d CONNINFO -c SQL`; the password travels in `env` (PGPASSWORD).
func runPsql(conninfo: String, sql: String, env: [String: String] = [:],
             stdinFile: String? = nil, stdoutFile: String? = nil, timeout: Double = 300) throws -> CommandResult {
    try runCommand("psql", psqlFlags + ["-d", conninfo, "-c", sql], environment: env,
                   stdinFile: stdinFile, stdoutFile: stdoutFile, timeout: timeout)
}

/// `pgbench ARGS` against `conninfo` (passed as the database name, which libpq expands).
func runPgbench(conninfo: String, arguments: [String], env: [String: String] = [:],
                timeout: Double = 600) throws -> CommandResult {
    try runCommand("pgbench", arguments + [conninfo], environment: env, timeout: timeout)
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func poll(timeout: Double, every interval: Double = 0.1, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(UInt32(interval * 1_000_000))
    } while Date() < deadline
    return try condition()
}

/// Children of `parent` running `executable` (by /proc/PID/comm) whose command line contains
/// `argumentContaining`: how a test finds the pg_dump a backup run spawned, to pause it.
func childProcesses(of parent: pid_t, executable: String, argumentContaining: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { name -> pid_t? in
        guard let pid = pid_t(name),
              let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
              // "PID (comm) STATE PPID ...": comm may hold spaces, so split after its ")".
              let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 1,
              pid_t(fields[1]) == parent,
              let comm = try? String(contentsOfFile: "/proc/\(name)/comm", encoding: .utf8),
              comm.trimmingCharacters(in: .whitespacesAndNewlines) == executable,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
              String(decoding: cmdline, as: UTF8.self).contains(argumentContaining) else { return nil }
        return pid
    }
}
