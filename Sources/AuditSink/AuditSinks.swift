import Audit
import CPortcullisShims
import EventLoop
import Glibc

/// Where audit events go. Called only on the writer thread.
public protocol AuditSink: AnyObject {
    var name: String { get }
    /// Writes one event. Throws when it could not be written; the writer keeps it and retries.
    func write(_ event: AuditEvent) throws(Errno)
    /// Writes events in order: how many were written whole, and the error that stopped it.
    /// A sink may write several in one system call (the default writes them one by one).
    func write(batch: ArraySlice<AuditEvent>) -> (written: Int, error: Errno?)
    /// After a SIGHUP: reopen files (logrotate moved them).
    func reopen() throws(Errno)
    /// Called every `sync` interval and before exit.
    func sync()
}

extension AuditSink {
    public func write(batch: ArraySlice<AuditEvent>) -> (written: Int, error: Errno?) {
        var written = 0
        for event in batch {
            do throws(Errno) { try write(event) } catch { return (written, error) }
            written += 1
        }
        return (written, nil)
    }
}

/// systemd-journald through `sd_journal_sendv` (sd-journal(3)): one entry per event with the
/// event's fields. Values may hold newlines; journald stores them as they are.
///
/// Each entry is rendered into one buffer kept from event to event, and the iovecs point into
/// it: no allocation per event or per field.
public final class JournalSink: AuditSink {
    public let name = "journald"
    /// `audit_journald_fields`: every field, or statement records without what their MESSAGE
    /// and their session's other records already hold.
    public let fields: AuditFieldSet
    private let buffer = AuditRenderBuffer(capacity: 4096)
    private var ranges: [(Int, Int)] = []
    private var iovecs: [iovec] = []

    public init(fields: AuditFieldSet = .full) {
        self.fields = fields
    }

    public func write(_ event: AuditEvent) throws(Errno) {
        buffer.removeAll()
        event.appendJournalEntry(to: buffer, fields: fields, ranges: &ranges)
        iovecs.removeAll(keepingCapacity: true)
        for (start, length) in ranges {
            iovecs.append(iovec(iov_base: buffer.address(at: start), iov_len: length))
        }
        let result = iovecs.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        if result < 0 { throw Errno(rawValue: -result) }
        // sd_journal_sendv reports success when journald's socket does not exist ("fail
        // silently if the journal is not available", journal-send.c): the entry is gone. That
        // is the window while journald is restarted without a socket unit holding its socket.
        // Looked at after the send, so an entry sent as the socket vanished is kept and sent
        // again (at most once twice) rather than lost.
        _ = try syscallValue { access(Self.socketPath, F_OK) }
    }

    /// Where sd_journal_sendv sends (the default journal namespace).
    static let socketPath = "/run/systemd/journal/socket"

    public func reopen() throws(Errno) {}
    public func sync() {}
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
    /// write(2), replaceable by tests (a disk that fills mid-line), setting errno as it does.
    package var systemWrite: (Int32, UnsafeRawPointer?, Int) -> Int = { Glibc.write($0, $1, $2) }

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

    /// Lines are gathered into one buffer of up to this many bytes per write(2).
    static let batchBytes = 256 * 1024
    /// The batch's lines, kept from batch to batch (its storage is allocated once).
    private let buffer = AuditRenderBuffer(capacity: batchBytes + 16 * 1024)
    /// Where each buffered line ends in `buffer`.
    private var ends: [Int] = []

    /// The batch's lines in few write(2) calls. A line a failed or short write left partly
    /// written stays in `carry`; the batch's first event on the retry is that line's event,
    /// and only its rest is written.
    public func write(batch: ArraySlice<AuditEvent>) -> (written: Int, error: Errno?) {
        var written = 0
        var index = batch.startIndex
        while index < batch.endIndex {
            buffer.removeAll()
            ends.removeAll(keepingCapacity: true)
            // The buffer starts with the rest of a line already partly in the file.
            let startsWithCarry = !carry.isEmpty
            if startsWithCarry {
                carry.withUnsafeBytes { buffer.append($0) }
                ends.append(buffer.count)
                index += 1
            }
            while index < batch.endIndex, buffer.count < Self.batchBytes {
                batch[index].appendJSONLine(to: buffer)
                buffer.append(10)
                ends.append(buffer.count)
                index += 1
            }
            var offset = 0
            var failure: Errno?
            let bytes = buffer.bytes
            let base = buffer.address(at: 0)
            while offset < bytes.count {
                let descriptor = fd
                do throws(Errno) {
                    offset += try syscallValue { systemWrite(descriptor, base + offset, bytes.count - offset) }
                } catch {
                    failure = error
                    break
                }
            }
            let whole = ends.prefix { $0 <= offset }.count
            written += whole
            if whole > 0 || offset > 0 { dirty = true }
            if let failure {
                // The first line not written whole: its unwritten rest is kept.
                let lineStart = whole > 0 ? ends[whole - 1] : 0
                carry = whole < ends.count ? Array(bytes[max(lineStart, offset)..<ends[whole]]) : []
                // Nothing of it went out: rebuilt on retry — unless it is the carried rest of a
                // line whose beginning is already in the file, which must be completed, not
                // written again whole.
                if offset <= lineStart && !(whole == 0 && startsWithCarry) { carry = [] }
                return (written, failure)
            }
            carry = []
        }
        if case .interval(let every) = fsync, MonotonicInstant.now().duration(since: lastSync) >= every { sync() }
        return (written, nil)
    }

    public func write(_ event: AuditEvent) throws(Errno) {
        if carry.isEmpty {
            event.appendJSONLine(to: &carry)
            carry.append(10)
        }
        // All or nothing per line as far as the caller knows: on failure the rest stays in
        // `carry` and this event is retried, which then writes only the rest.
        while !carry.isEmpty {
            let descriptor = fd
            let result: Result<Int, Errno> = carry.withUnsafeBytes { raw in
                do throws(Errno) { return .success(try syscallValue { systemWrite(descriptor, raw.baseAddress, raw.count) }) }
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
        _ = try? syscallValue { Glibc.fsync(fd) }
        dirty = false
        lastSync = MonotonicInstant.now()
    }
}
