import Audit
import CPortcullisShims
import EventLoop
import Glibc

/// Where audit events go. Called only on the writer thread.
public protocol AuditSink: AnyObject {
    var name: String { get }
    /// Writes one event. Throws when it could not be written; the writer keeps it and retries.
    func write(_ event: AuditEvent) throws(Errno)
    /// After a SIGHUP: reopen files (logrotate moved them).
    func reopen() throws(Errno)
    /// Called every `sync` interval and before exit.
    func sync()
}

/// systemd-journald through `sd_journal_sendv` (sd-journal(3)): one entry per event with the
/// event's fields. Values may hold newlines; journald stores them as they are.
public final class JournalSink: AuditSink {
    public let name = "journald"
    public init() {}

    public func write(_ event: AuditEvent) throws(Errno) {
        let entries = event.journalFields.map { Array("\($0.0)=\($0.1)".utf8) }
        let result: Int32 = withPinnedBuffers(entries) { iovecs in
            iovecs.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        if result < 0 { throw Errno(rawValue: -result) }
    }

    public func reopen() throws(Errno) {}
    public func sync() {}

    /// iovecs pointing into `entries`, valid for the duration of `body`.
    private func withPinnedBuffers<R>(_ entries: [[UInt8]], _ body: ([iovec]) -> R) -> R {
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(entries.count)
        func pin(_ index: Int) -> R {
            if index == entries.count { return body(iovecs) }
            return entries[index].withUnsafeBytes { raw in
                iovecs.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count))
                return pin(index + 1)
            }
        }
        return pin(0)
    }
}

/// How often the JSON file is fsync'ed.
public enum AuditFsync: Sendable, Equatable {
    /// Left to the kernel.
    case off
    /// After every batch the writer takes from the queues.
    case batch
    /// At most once per interval.
    case interval(Duration)
}

/// JSON lines to a file (opened O_APPEND, reopened on SIGHUP for logrotate) or to standard output.
public final class JSONLinesSink: AuditSink {
    public let name: String
    private let path: String?
    private var fd: Int32
    private let fsync: AuditFsync
    private var dirty = false
    private var lastSync = MonotonicInstant.now()
    /// Bytes of a line that a short write left unwritten (written first next time).
    private var carry: [UInt8] = []

    /// `path` nil means standard output.
    public init(path: String?, fsync: AuditFsync) throws(Errno) {
        self.path = path
        self.fsync = fsync
        name = path.map { "json:\($0)" } ?? "json:stdout"
        fd = try path.map { (p) throws(Errno) -> Int32 in try Self.open(p) } ?? STDOUT_FILENO
    }

    deinit { if path != nil { closeDescriptor(fd) } }

    private static func open(_ path: String) throws(Errno) -> Int32 {
        try syscallValue { Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
    }

    public func write(_ event: AuditEvent) throws(Errno) {
        if carry.isEmpty { carry = Array((event.jsonLine + "\n").utf8) }
        // All or nothing per line as far as the caller knows: on failure the rest stays in
        // `carry` and this event is retried, which then writes only the rest.
        while !carry.isEmpty {
            let descriptor = fd
            let result: Result<Int, Errno> = carry.withUnsafeBytes { raw in
                do throws(Errno) { return .success(try syscallValue { Glibc.write(descriptor, raw.baseAddress, raw.count) }) }
                catch { return .failure(error) }
            }
            carry.removeFirst(try result.get())
        }
        dirty = true
        if case .batch = fsync { } else if case .interval(let every) = fsync, MonotonicInstant.now().duration(since: lastSync) >= every {
            sync()
        }
    }

    public func reopen() throws(Errno) {
        guard let path else { return }
        let fresh = try Self.open(path)
        sync()
        closeDescriptor(fd)
        fd = fresh
    }

    public func sync() {
        guard dirty, fsync != .off else { return }
        _ = Glibc.fsync(fd)
        dirty = false
        lastSync = MonotonicInstant.now()
    }
}
