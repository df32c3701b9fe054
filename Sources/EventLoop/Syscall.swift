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

    /// Whether at least one byte is waiting to be read (MSG_PEEK: nothing is consumed).
    /// EOF, errors and would-block all say no.
    public static func hasPendingInput(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        guard case .processed(let count)? = try? syscall({ Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) }) else { return false }
        return count > 0
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

    /// Starts a non-blocking connect; `.wouldBlock` means EINPROGRESS (wait for writability).
    public static func connect(to address: SocketAddress) throws(Errno) -> (fd: Int32, pending: Bool) {
        let fd = try syscallValue {
            socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }
        if address.family != AF_UNIX {
            try? setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        }
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if rc == 0 { return (fd, false) }
        let err = errno
        if err == EINPROGRESS || err == EINTR { return (fd, true) }
        closeDescriptor(fd)
        throw Errno(rawValue: err)
    }

    /// The pending error of a non-blocking connect (SO_ERROR); nil when connected.
    public static func pendingError(_ fd: Int32) -> Errno? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0 { return Errno.current }
        return value == 0 ? nil : Errno(rawValue: value)
    }
}
