import Glibc

/// A typed `errno` value. Would-block is deliberately *not* represented as an error:
/// the syscall helpers return it as a value (`IOResult.wouldBlock`).
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static var current: Errno { Errno(rawValue: errno) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let systemFileTableFull = Errno(rawValue: ENFILE)
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    public static let outOfMemory = Errno(rawValue: ENOMEM)

    public var description: String {
        guard let s = strerror(rawValue) else { return "errno \(rawValue)" }
        return String(cString: s)
    }
}

/// The outcome of a non-blocking syscall: done, or it would block (EAGAIN/EWOULDBLOCK).
public enum IOResult<Value> {
    case processed(Value)
    case wouldBlock
}

extension IOResult: Sendable where Value: Sendable {}
extension IOResult: Equatable where Value: Equatable {}
