import EventLoop
import Glibc
import Logging
import Synchronization

/// The outcome of the last configuration load of a running process, as `<pid_file>.status`
/// reports it to `portcullis reload` (and to anyone else: it is plain `key = value` lines).
///
/// `started_at` is when the load began reading the files, on CLOCK_MONOTONIC, which on Linux
/// is one clock for every process of the machine: a reload command that read the clock just
/// before sending SIGHUP knows a status with a later `started_at` read the files after its
/// signal — even when the signal arrived during another reload and was folded into the next.
public struct ReloadStatus: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// Written at start-up: the configuration the process started with is in force.
        case started
        /// The new configuration is in force for new sessions and every pool.
        case applied
        /// It had errors: nothing of it was applied (`errors`: file:line diagnostics).
        case refused
        /// Applied, except pg_hba.conf or pg_ident.conf, which had errors and kept their
        /// previous rules (`errors`: which file, then its file:line diagnostics) — PostgreSQL
        /// reloads the two files independently the same way.
        case partial
        /// Valid and handed to the loops, but not every loop confirmed it in time.
        case unconfirmed
    }

    public var pid: Int32
    /// Loads completed since start-up (0: the start-up one).
    public var generation: UInt64
    public var startedAt: UInt64
    public var outcome: Outcome
    public var errors: [String]

    public init(pid: Int32, generation: UInt64, startedAt: UInt64, outcome: Outcome, errors: [String] = []) {
        self.pid = pid
        self.generation = generation
        self.startedAt = startedAt
        self.outcome = outcome
        self.errors = errors
    }

    public static func path(pidFile: String) -> String { pidFile + ".status" }

    /// Nanoseconds on CLOCK_MONOTONIC.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public var text: String {
        var lines = ["pid = \(pid)", "generation = \(generation)", "started_at = \(startedAt)", "outcome = \(outcome.rawValue)"]
        // One diagnostic per line; a newline inside one would forge a key.
        for error in errors {
            for line in error.split(separator: "\n", omittingEmptySubsequences: true) { lines.append("error = \(line)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public init?(text: String) {
        var pid: Int32?, generation: UInt64?, startedAt: UInt64?, outcome: Outcome?
        var errors: [String] = []
        for line in text.split(separator: "\n") {
            guard let range = line.firstRange(of: " = ") else { return nil }
            let key = line[..<range.lowerBound], value = String(line[range.upperBound...])
            switch key {
            case "pid": pid = Int32(value)
            case "generation": generation = UInt64(value)
            case "started_at": startedAt = UInt64(value)
            case "outcome": outcome = Outcome(rawValue: value)
            case "error": errors.append(value)
            default: continue
            }
        }
        guard let pid, let generation, let startedAt, let outcome else { return nil }
        self.init(pid: pid, generation: generation, startedAt: startedAt, outcome: outcome, errors: errors)
    }
}

/// Small files written whole: a temporary file in the same directory, then rename(2), so a
/// reader sees the old content or the new, never a part.
public enum AtomicFile {
    public static func write(_ text: String, to path: String) -> Errno? {
        let temporary = "\(path).tmp.\(getpid())"
        do throws(Errno) {
            let fd = try syscallValue { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
            defer { closeDescriptor(fd) }
            try Descriptor.writeAll(fd, Array(text.utf8))
        } catch {
            _ = try? syscallValue { unlink(temporary) }
            return error
        }
        do throws(Errno) {
            _ = try syscallValue { rename(temporary, path) }
        } catch {
            _ = try? syscallValue { unlink(temporary) }
            return error
        }
        return nil
    }

    public static func read(_ path: String) -> String? {
        Descriptor.readFile(path, limit: 1 << 20).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The running process's side: the pid file at start-up, a status after each load, both
/// removed at a clean exit. Written from the main thread and the reload thread only, never
/// from a loop.
final class ReloadReporter: Sendable {
    let pidFile: String?
    private let generation = Mutex<UInt64>(0)
    private let logger: Logger

    init(pidFile: String?, logger: Logger) {
        self.pidFile = pidFile
        self.logger = logger
    }

    func start() throws {
        guard let pidFile else { return }
        if let error = AtomicFile.write("\(getpid())\n", to: pidFile) {
            throw ProxyStartupError(description: "could not write pid_file \"\(pidFile)\": \(error)")
        }
        write(ReloadStatus(pid: getpid(), generation: 0, startedAt: ReloadStatus.now(), outcome: .started))
    }

    func report(startedAt: UInt64, outcome: ReloadStatus.Outcome, errors: [String] = []) {
        guard pidFile != nil else { return }
        let number = generation.withLock { value -> UInt64 in
            value += 1
            return value
        }
        write(ReloadStatus(pid: getpid(), generation: number, startedAt: startedAt, outcome: outcome, errors: errors))
    }

    /// Removes the pid file and status, unless they are no longer this process's: a newer
    /// instance started with the same pid_file while this one shut down has written its own
    /// pid (found in review: a quick restart left no pid file, so `portcullis reload` had
    /// nothing to signal), as PostgreSQL's postmaster checks its lock file is its own.
    func finish() {
        guard let pidFile else { return }
        guard Self.holdsOwnPID(Descriptor.readFile(pidFile, limit: 64)) else { return }
        _ = try? syscallValue { unlink(ReloadStatus.path(pidFile: pidFile)) }
        _ = try? syscallValue { unlink(pidFile) }
    }

    static func holdsOwnPID(_ bytes: [UInt8]?, pid: Int32 = getpid()) -> Bool {
        guard let bytes else { return false }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) == String(pid)
    }

    private func write(_ status: ReloadStatus) {
        guard let pidFile else { return }
        let path = ReloadStatus.path(pidFile: pidFile)
        if let error = AtomicFile.write(status.text, to: path) {
            logger.error("could not write \"\(path)\": \(error)")
        }
    }
}

/// Lets the reload thread wait until every loop has applied a new runtime, so "applied" in
/// the status means in force on every loop, not merely posted to their mailboxes.
final class ReloadBarrier: @unchecked Sendable {
    private let expected: Int
    private let semaphore: UnsafeMutablePointer<sem_t>

    init(loops: Int) {
        expected = loops
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Called by each loop once it has applied the runtime.
    func loopApplied() {
        sem_post(semaphore)
    }

    /// Off the loops only. False when some loop did not answer within `timeout`.
    func wait(timeout: Duration) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let (seconds, attoseconds) = timeout.components
        deadline.tv_sec += Int(seconds)
        deadline.tv_nsec += Int(attoseconds / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        for _ in 0..<expected {
            // ETIMEDOUT (or any other failure) ends the wait; EINTR is retried by the helper.
            guard (try? syscallValue { sem_timedwait(semaphore, &deadline) }) != nil else { return false }
        }
        return true
    }
}
