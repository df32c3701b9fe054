import CPortcullisShims

/// What a registration wants to hear about. Level-triggered: an event repeats until handled.
public struct Interest: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = Interest(rawValue: EPOLLIN.rawValue)
    public static let writable = Interest(rawValue: EPOLLOUT.rawValue)
    /// The peer shut down its sending side (EPOLLRDHUP). Only ask while reading: it is level-triggered.
    public static let peerHangUp = Interest(rawValue: EPOLLRDHUP.rawValue)
    public static let none: Interest = []
}

/// What epoll reported for a registration.
public struct ReadinessEvents: Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public var isReadable: Bool { rawValue & (EPOLLIN.rawValue | EPOLLPRI.rawValue) != 0 }
    public var isWritable: Bool { rawValue & EPOLLOUT.rawValue != 0 }
    /// Error or hang-up: reading will return the error or EOF.
    public var isHangUp: Bool { rawValue & (EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue) != 0 }
    /// Error or full hang-up: always reported by epoll, whatever the interest, so it must be
    /// acted on even while reading is paused.
    public var isErrorOrFullHangUp: Bool { rawValue & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 }
}

/// Identifies one registration. It goes into `epoll_event.data`, so an event that was queued for
/// a descriptor which has since been closed and reused finds no registration and is dropped.
public struct RegistrationID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public var description: String { "reg#\(rawValue)" }
}

public struct TimerID: Hashable, Sendable {
    public let rawValue: UInt64
}

/// Anything the loop delivers readiness to. Called on the loop's own thread only.
public protocol ReadinessHandler: AnyObject {
    func readinessReceived(_ events: ReadinessEvents, id: RegistrationID)
}
