import EventLoop
import Glibc

/// A pg_dump or pg_restore child: spawned with posix_spawn, its standard streams on pipes, and
/// driven by one `poll(2)` loop (`pump`) so that neither side can stall the other: a child
/// blocked writing a full stderr pipe while we block feeding its stdin would deadlock.
final class ChildProcess {
    let pid: pid_t
    let name: String
    private var stdinFD: Int32 = -1
    private var stdoutFD: Int32 = -1
    private var stderrFD: Int32 = -1
    private var reaped: Int32?
    /// The child's stderr, capped (it explains a failure; it never holds dump data).
    private(set) var stderrText: [UInt8] = []
    static let stderrCap = 64 * 1024
    /// Bytes read from the pipe at once: the dump is streamed in bounded pieces.
    static let readSize = 1 << 20
    /// F_SETPIPE_SZ (linux/fcntl.h: F_LINUX_SPECIFIC_BASE + 7; Glibc's module leaves it out).
    static let setPipeSize: Int32 = 1031

    /// `feedsStdin`: a pipe to the child's stdin (else /dev/null).
    init(path: String, arguments: [String], environment: [String: String], feedsStdin: Bool) throws(BackupError) {
        name = path.split(separator: "/").last.map(String.init) ?? path
        // A child that stops reading (pg_restore --list after the table of contents) must make
        // our write fail with EPIPE, not kill this process.
        if feedsStdin { signal(SIGPIPE, SIG_IGN) }
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard makePipe(&outPipe), makePipe(&errPipe), !feedsStdin || makePipe(&inPipe) else {
            let message = String(cString: strerror(errno))
            for fd in inPipe + outPipe + errPipe where fd >= 0 { closeDescriptor(fd) }
            throw BackupError("could not create pipes for \(path): \(message)")
        }
        // A 1 MiB stdout pipe instead of the default 64 KiB: pg_dump writes its output in
        // 4 KiB stdio blocks and would block after 16 of them whenever the reading thread is
        // not scheduled (2 cores shared with PostgreSQL, the proxy and our compressor); with
        // more room it runs ahead, and our reads come back larger. Best effort: a smaller
        // /proc/sys/fs/pipe-max-size just leaves the default.
        _ = fcntl(outPipe[0], Self.setPipeSize, Int32(Self.readSize))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if feedsStdin {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        // The daemon blocks its signals (they go to a signalfd) and ignores SIGPIPE; a child
        // inherits both, so pg_dump would be deaf to SIGTERM. Reset both for the child.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signo in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signo) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        for fd in [inPipe[0], outPipe[1], errPipe[1]] where fd >= 0 { closeDescriptor(fd) }
        guard rc == 0 else {
            for fd in [inPipe[1], outPipe[0], errPipe[0]] where fd >= 0 { closeDescriptor(fd) }
            throw BackupError("could not start \(path): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdinFD = inPipe[1]
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
        if stdinFD >= 0 { try? Socket.setNonBlocking(stdinFD) }
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD] where fd >= 0 { closeDescriptor(fd) }
        if reaped == nil {
            Glibc.kill(pid, SIGKILL)
            _ = waitStatus()
        }
    }

    /// Runs until the child closed stdout and stderr. `produce` supplies stdin bytes (nil =
    /// end of input, stdin is closed); `consume` gets stdout in pieces of at most `readSize`.
    /// A throw from either kills the child (SIGKILL, so it cannot act on a partial input, e.g.
    /// commit a restore) and is rethrown. A child that stops reading its stdin (it exited) ends
    /// the feeding; its exit status tells why.
    func pump(produce: (() throws(BackupError) -> [UInt8]?)?, consume: ([UInt8]) throws(BackupError) -> Void) throws(BackupError) {
        var pending: [UInt8] = []
        var pendingOffset = 0
        var buffer = [UInt8](repeating: 0, count: Self.readSize)
        if produce == nil, stdinFD >= 0 { closeDescriptor(stdinFD); stdinFD = -1 }
        do throws(BackupError) {
            while stdoutFD >= 0 || stderrFD >= 0 {
                if stdinFD >= 0, pendingOffset == pending.count, let produce {
                    if let next = try produce() {
                        pending = next
                        pendingOffset = 0
                        if next.isEmpty { continue }
                    } else {
                        closeDescriptor(stdinFD)
                        stdinFD = -1
                    }
                }
                var fds: [pollfd] = []
                if stdoutFD >= 0 { fds.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
                if stderrFD >= 0 { fds.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
                if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
                do {
                    _ = try syscallValue { poll(&fds, nfds_t(fds.count), -1) }
                } catch {
                    throw BackupError("poll: \(error)")
                }
                for entry in fds where entry.revents != 0 {
                    if entry.fd == stdinFD {
                        try writePending(&pending, &pendingOffset)
                    } else {
                        let isStdout = entry.fd == stdoutFD
                        let count = try readSome(entry.fd, into: &buffer)
                        if count == 0 {
                            closeDescriptor(entry.fd)
                            if isStdout { stdoutFD = -1 } else { stderrFD = -1 }
                        } else if isStdout {
                            try consume(Array(buffer[0..<count]))
                        } else if stderrText.count < Self.stderrCap {
                            stderrText += buffer[0..<min(count, Self.stderrCap - stderrText.count)]
                        }
                    }
                }
            }
        } catch {
            Glibc.kill(pid, SIGKILL)
            _ = waitStatus()
            throw error
        }
        if stdinFD >= 0 { closeDescriptor(stdinFD); stdinFD = -1 }
    }

    /// For callers that run their own poll loop (the directory format, which also follows
    /// files and FIFOs): the child's output descriptors still open; none once it exited.
    var outputDescriptors: [Int32] { [stdoutFD, stderrFD].filter { $0 >= 0 } }

    /// Reads what is ready on one of `outputDescriptors`: stdout to `consume`, stderr kept
    /// (capped); end of file closes it.
    func readOutput(_ fd: Int32, consume: ([UInt8]) -> Void) throws(BackupError) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = try readSome(fd, into: &buffer)
        let isStdout = fd == stdoutFD
        if count == 0 {
            closeDescriptor(fd)
            if isStdout { stdoutFD = -1 } else { stderrFD = -1 }
        } else if isStdout {
            consume(Array(buffer[0..<count]))
        } else if stderrText.count < Self.stderrCap {
            stderrText += buffer[0..<min(count, Self.stderrCap - stderrText.count)]
        }
    }

    /// SIGKILL (a restore must not act on partial input) and reap.
    func killNow() {
        if reaped == nil { Glibc.kill(pid, SIGKILL) }
        _ = waitStatus()
    }

    private func readSome(_ fd: Int32, into buffer: inout [UInt8]) throws(BackupError) -> Int {
        let result: Result<Int, Errno> = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try syscallValue { Glibc.read(fd, raw.baseAddress, raw.count) } }
        }
        switch result {
        case .success(let count): return count
        case .failure(let error): throw BackupError("reading from \(name): \(error)")
        }
    }

    private func writePending(_ pending: inout [UInt8], _ offset: inout Int) throws(BackupError) {
        guard offset < pending.count else { return }
        let start = offset
        let fd = stdinFD
        let attempt: Result<IOResult<Int>, Errno> = pending.withUnsafeBytes { raw in
            Result { () throws(Errno) -> IOResult<Int> in try syscall { Glibc.write(fd, raw.baseAddress! + start, raw.count - start) } }
        }
        guard case .success(let result) = attempt else {
            // EPIPE: the child exited without reading everything; its status says why.
            closeDescriptor(stdinFD)
            stdinFD = -1
            pending = []
            offset = 0
            return
        }
        if case .processed(let count) = result { offset += count }
    }

    /// Waits for the child; the exit code, or 128 + the signal that ended it.
    @discardableResult
    func waitStatus() -> Int32 {
        if let reaped { return reaped }
        var status: Int32 = 0
        _ = try? syscallValue { waitpid(pid, &status, 0) }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        reaped = code
        return code
    }

    var stderrString: String {
        String(decoding: stderrText, as: UTF8.self).trimmingSpaces()
    }
}

extension String {
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// The environment for pg_dump/pg_restore: this process's, for pg_dump minus libpq variables
/// that could redirect the connection or supply another password (the conninfo names
/// everything), plus what the caller sets.
func childEnvironment(_ extra: [String: String], withoutLibpqVariables: Bool) -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            let key = String(text[..<equals])
            if !withoutLibpqVariables || !key.hasPrefix("PG") { result[key] = String(text[text.index(after: equals)...]) }
        }
        pointer += 1
    }
    for (key, value) in extra { result[key] = value }
    return result
}

/// pg_dump or pg_restore: `pg_bin_dir`, else PostgreSQL 15's Debian directory, else PATH.
func findTool(_ name: String, binDir: String?) throws(BackupError) -> String {
    var candidates: [String] = []
    if let binDir { candidates.append("\(binDir)/\(name)") } else {
        candidates.append("/usr/lib/postgresql/15/bin/\(name)")
        if let path = getenv("PATH").map({ String(cString: $0) }) {
            candidates += path.split(separator: ":").map { "\($0)/\(name)" }
        }
    }
    for candidate in candidates where access(candidate, X_OK) == 0 { return candidate }
    throw BackupError("\(name) not found (looked in \(binDir ?? "/usr/lib/postgresql/15/bin and PATH"))")
}

/// pipe(2) with both ends close-on-exec (Glibc's module lacks pipe2): the child gets only the
/// ends posix_spawn's dup2 gives it.
private func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return true
}
