import Glibc
import CPortcullisShims

/// A single-threaded, level-triggered epoll loop. Every object registered with it lives on its
/// thread; other threads reach it only through `mailbox`.
public final class EventLoop {
    private struct Registration {
        let fd: Int32
        var interest: Interest
        unowned(unsafe) let handler: any ReadinessHandler
        /// Keeps the handler alive while it is registered.
        let retained: AnyObject
    }

    private let epollFD: Int32
    public let mailbox: LoopMailbox
    public let index: Int
    private var registrations: [UInt64: Registration] = [:]
    private var nextRegistration: UInt64 = 1
    private var timers = TimerQueue()
    private var timerCallbacks: [UInt64: () -> Void] = [:]
    private var nextTimer: UInt64 = 1
    private var running = false
    /// Handles messages posted to `mailbox`.
    public var controlMessageReceived: ((any Sendable) -> Void)?
    /// Work to run once the current batch of events is processed (e.g. deferred closes).
    private var deferred: [() -> Void] = []

    private static let mailboxToken: UInt64 = 0

    /// One read buffer per loop: sockets are read here and only the bytes that arrived are
    /// copied into a connection's own buffer, so an idle connection holds no read buffer.
    public let readScratch: UnsafeMutableRawBufferPointer

    public init(index: Int) throws(Errno) {
        self.index = index
        epollFD = try syscallValue { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        mailbox = try LoopMailbox()
        readScratch = .allocate(byteCount: 64 * 1024, alignment: 16)
        _ = try syscallValue { pc_epoll_ctl(epollFD, EPOLL_CTL_ADD, mailbox.wakeFD, EPOLLIN.rawValue, Self.mailboxToken) }
    }

    deinit {
        closeDescriptor(epollFD)
        readScratch.deallocate()
    }

    public var registrationCount: Int { registrations.count }

    /// The loop's clock. Read once per wake-up batch by callers that need it.
    public func now() -> MonotonicInstant { MonotonicInstant.now() }

    // MARK: Registrations

    public func register(fd: Int32, interest: Interest, handler: any ReadinessHandler) throws(Errno) -> RegistrationID {
        let id = nextRegistration
        nextRegistration += 1
        _ = try syscallValue { pc_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, interest.rawValue, id) }
        registrations[id] = Registration(fd: fd, interest: interest, handler: handler, retained: handler)
        return RegistrationID(rawValue: id)
    }

    public func setInterest(_ interest: Interest, for id: RegistrationID) {
        guard var registration = registrations[id.rawValue], registration.interest != interest else { return }
        registration.interest = interest
        registrations[id.rawValue] = registration
        _ = pc_epoll_ctl(epollFD, EPOLL_CTL_MOD, registration.fd, interest.rawValue, id.rawValue)
    }

    public func interest(for id: RegistrationID) -> Interest? { registrations[id.rawValue]?.interest }

    /// Removes the registration. The caller still owns (and closes) the descriptor. Events
    /// already fetched for it in this batch are dropped because the id no longer resolves.
    public func deregister(_ id: RegistrationID) {
        guard let registration = registrations.removeValue(forKey: id.rawValue) else { return }
        _ = pc_epoll_ctl(epollFD, EPOLL_CTL_DEL, registration.fd, 0, 0)
        // Release the handler after this batch so a handler may deregister itself safely.
        let retained = registration.retained
        deferred.append { _ = retained }
    }

    // MARK: Timers

    @discardableResult
    public func scheduleTimer(at deadline: MonotonicInstant, _ callback: @escaping () -> Void) -> TimerID {
        let id = nextTimer
        nextTimer += 1
        timerCallbacks[id] = callback
        timers.insert(.init(deadline: deadline, id: TimerID(rawValue: id)))
        return TimerID(rawValue: id)
    }

    public func cancelTimer(_ id: TimerID) {
        timerCallbacks[id.rawValue] = nil
    }

    public func execute(afterCurrentBatch work: @escaping () -> Void) {
        deferred.append(work)
    }

    // MARK: Running

    public func stop() { running = false }

    public func run() {
        running = true
        let capacity = 128
        var datas = [UInt64](repeating: 0, count: capacity)
        var events = [UInt32](repeating: 0, count: capacity)
        while running {
            let timeout = timeoutMilliseconds()
            let count = datas.withUnsafeMutableBufferPointer { d in
                events.withUnsafeMutableBufferPointer { e in
                    pc_epoll_wait(epollFD, d.baseAddress, e.baseAddress, Int32(capacity), timeout)
                }
            }
            if count < 0 {
                let err = errno
                if err == EINTR { continue }
                fatalError("epoll_wait failed: \(Errno(rawValue: err))")
            }
            for i in 0..<Int(count) {
                let token = datas[i]
                if token == Self.mailboxToken {
                    for message in mailbox.drain() { controlMessageReceived?(message) }
                    continue
                }
                guard let registration = registrations[token] else { continue }
                registration.handler.readinessReceived(ReadinessEvents(rawValue: events[i]), id: RegistrationID(rawValue: token))
            }
            fireDueTimers()
            runDeferred()
        }
        runDeferred()
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let work = deferred
            deferred.removeAll()
            for item in work { item() }
        }
    }

    private func fireDueTimers() {
        guard !timers.isEmpty else { return }
        let now = MonotonicInstant.now()
        while let entry = timers.popDue(now: now) {
            if let callback = timerCallbacks.removeValue(forKey: entry.id.rawValue) { callback() }
        }
    }

    private func timeoutMilliseconds() -> Int32 {
        if !deferred.isEmpty { return 0 }
        while let next = timers.nextDeadline {
            let now = MonotonicInstant.now()
            if next <= now { return 0 }
            let ms = (next.nanoseconds - now.nanoseconds + 999_999) / 1_000_000
            return Int32(min(ms, 60_000))
        }
        return -1
    }
}
