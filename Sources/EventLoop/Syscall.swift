import Glibc
import CPortcullisShims

/// The one place syscalls go through: EINTR is retried here and only here; EAGAIN becomes
/// `.wouldBlock`; every other failure is a typed `Errno`.
@inline(__always)
public func syscall<T: FixedWidthInteger>(
    blocking: Bool = false,
    _ body: () -> T
) throws(Errno) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .processed(result) }
        let err = errno
        switch err {
        case EINTR: continue
        case EAGAIN where !blocking: return .wouldBlock
        default: throw Errno(rawValue: err)
        }
    }
}

/// A syscall whose would-block outcome is impossible or uninteresting (setup calls).
@inline(__always)
public func syscallValue<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    switch try syscall(blocking: true, body) {
    case .processed(let value): return value
    case .wouldBlock: throw Errno.wouldBlock
    }
}

/// `close(2)` is never retried: on Linux the descriptor is released even when it reports EINTR,
/// and retrying could close a descriptor another thread has just been given.
public func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

public enum Socket {
    public static func setNonBlocking(_ fd: Int32) throws(Errno) {
        let flags = try syscallValue { fcntl(fd, F_GETFL, 0) }
        _ = try syscallValue { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    public static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(Errno) {
        var v = value
        _ = try syscallValue { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    public static func read(_ fd: Int32, into pointer: UnsafeMutableRawBufferPointer) throws(Errno) -> IOResult<Int> {
        try syscall { Glibc.read(fd, pointer.baseAddress, pointer.count) }
    }

    public static func write(_ fd: Int32, from pointer: UnsafeRawBufferPointer) throws(Errno) -> IOResult<Int> {
        try syscall { Glibc.send(fd, pointer.baseAddress, pointer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The next byte waiting to be read, left in the socket (MSG_PEEK, MSG_DONTWAIT): nil at
    /// EOF, `.wouldBlock` when nothing is there yet.
    public static func peekByte(_ fd: Int32) throws(Errno) -> IOResult<UInt8?> {
        var byte: UInt8 = 0
        switch try syscall({ Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) }) {
        case .processed(let count): return .processed(count > 0 ? byte : nil)
        case .wouldBlock: return .wouldBlock
        }
    }

    /// Whether at least one byte is waiting to be read (nothing is consumed).
    /// EOF, errors and would-block all say no.
    public static func hasPendingInput(_ fd: Int32) -> Bool {
        if case .processed(.some)? = try? peekByte(fd) { return true }
        return false
    }

    /// A new non-blocking, close-on-exec stream socket.
    public static func stream(family: Int32) throws(Errno) -> Int32 {
        try syscallValue { socket(family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0) }
    }

    public static func bind(_ fd: Int32, to address: SocketAddress) throws(Errno) {
        var storage = address.storage
        _ = try syscallValue {
            withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, address.length) }
            }
        }
    }

    public static func listen(_ fd: Int32, backlog: Int32) throws(Errno) {
        _ = try syscallValue { Glibc.listen(fd, backlog) }
    }

    /// Accepts one connection, non-blocking and close-on-exec.
    public static func accept(_ fd: Int32) throws(Errno) -> IOResult<(Int32, SocketAddress)> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try withUnsafeMutablePointer(to: &storage) { (p) throws(Errno) -> IOResult<Int32> in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(Errno) -> IOResult<Int32> in
                try syscall { pc_accept4(fd, sa, &length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)) }
            }
        }
        switch result {
        case .processed(let client): return .processed((client, SocketAddress(storage: storage)))
        case .wouldBlock: return .wouldBlock
        }
    }

    /// Starts a non-blocking connect; `pending` means EINPROGRESS (wait for writability).
    public static func connect(to address: SocketAddress) throws(Errno) -> (fd: Int32, pending: Bool) {
        let fd = try stream(family: address.family)
        if address.family != AF_UNIX {
            try? setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        }
        do throws(Errno) {
            return (fd, try connect(fd, to: address))
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// Connects `fd`; true when the connect goes on in the background (EINPROGRESS on a
    /// non-blocking socket, or EALREADY when the helper retried one interrupted by a signal —
    /// the kernel carries on with the first attempt). Blocking sockets (the stale Unix-socket
    /// probe) simply return when connected.
    public static func connect(_ fd: Int32, to address: SocketAddress) throws(Errno) -> Bool {
        var storage = address.storage
        do throws(Errno) {
            _ = try syscallValue {
                withUnsafePointer(to: &storage) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
                }
            }
            return false
        } catch where error == .inProgress || error.rawValue == EALREADY {
            return true
        }
    }

    /// The pending error of a non-blocking connect (SO_ERROR); nil when connected.
    public static func pendingError(_ fd: Int32) -> Errno? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        do throws(Errno) {
            _ = try syscallValue { getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) }
        } catch {
            return error
        }
        return value == 0 ? nil : Errno(rawValue: value)
    }
}

/// Whole small files and other blocking descriptors (never a loop's sockets).
public enum Descriptor {
    /// Opens `path` read-only, close-on-exec.
    public static func openForReading(_ path: String, flags: Int32 = 0) throws(Errno) -> Int32 {
        try syscallValue { open(path, O_RDONLY | O_CLOEXEC | flags) }
    }

    /// Everything up to EOF; nil when it is longer than `limit` bytes.
    public static func readAll(_ fd: Int32, limit: Int) throws(Errno) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let result = chunk.withUnsafeMutableBytes { p in Result { () throws(Errno) in try syscall(blocking: true, { read(fd, p.baseAddress, p.count) }) } }
            guard case .processed(let n) = try result.get(), n > 0 else { return bytes }
            bytes += chunk[0..<n]
            if bytes.count > limit { return nil }
        }
    }

    /// Writes all of `bytes` (a blocking descriptor: a file).
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let result = bytes[offset...].withUnsafeBytes { p in Result { () throws(Errno) in try syscallValue { write(fd, p.baseAddress, p.count) } } }
            offset += try result.get()
        }
    }

    /// Reads the file at `path` whole; nil when unreadable or longer than `limit` bytes.
    public static func readFile(_ path: String, limit: Int, flags: Int32 = 0) -> [UInt8]? {
        guard let fd = try? openForReading(path, flags: flags) else { return nil }
        defer { closeDescriptor(fd) }
        return (try? readAll(fd, limit: limit)) ?? nil
    }
}

/// Sleeps the calling thread (never a loop's) for `duration`, resuming after a signal with
/// the time that was left.
public func pauseThread(for duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    _ = try? syscall(blocking: true) {
        let rc = nanosleep(&request, &remaining)
        if rc != 0 { request = remaining }
        return rc
    }
}

/// Waits on a semaphore (a worker thread's job queue); a signal does not end the wait.
public func waitForSemaphore(_ semaphore: UnsafeMutablePointer<sem_t>) {
    _ = try? syscall(blocking: true) { sem_wait(semaphore) }
}
