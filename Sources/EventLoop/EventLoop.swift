import Glibc
import CPortcullisShims

/// An object on a loop that has work of its own to do once the current batch of events is
/// handled (a leg's flush, its drained report). Queued as the object itself plus a kind, not as
/// a closure: a closure capturing the object is one heap allocation per call, and the forwarding
/// path queues several per transaction (docs/PERFORMANCE.md).
public protocol BatchWork: AnyObject {
    func runAfterBatch(_ kind: UInt8)
}

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
    private enum Deferred {
        case closure(() -> Void)
        case work(any BatchWork, UInt8)
    }
    /// Work to run once the current batch of events is processed (e.g. deferred closes).
    private var deferred: [Deferred] = []
    /// The batch being run: swapped with `deferred` so neither array is reallocated per batch.
    private var runningBatch: [Deferred] = []
    /// Work for after the next `epoll_wait` (which then does not block): a connection's share
    /// of one wake-up is used up, and others go first (``execute(afterNextWait:kind:)``).
    private var afterNextWait: [Deferred] = []
    /// Counts the loop's wake-ups (returns from `epoll_wait`).
    public private(set) var wakeups: UInt64 = 0
    /// CLOCK_MONOTONIC read once when the current batch of events began (see `batchNow`).
    private var batchStart = MonotonicInstant(nanoseconds: 0)

    private static let mailboxToken: UInt64 = 0

    /// One read buffer per loop: sockets are read here and only the bytes that arrived are
    /// copied into a connection's own buffer, so an idle connection holds no read buffer.
    public let readScratch: UnsafeMutableRawBufferPointer

    public init(index: Int) throws(Errno) {
        self.index = index
        epollFD = try syscallValue { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        mailbox = try LoopMailbox()
        readScratch = .allocate(byteCount: 64 * 1024, alignment: 16)
        batchStart = MonotonicInstant.now()
        _ = try syscallValue { pc_epoll_ctl(epollFD, EPOLL_CTL_ADD, mailbox.wakeFD, EPOLLIN.rawValue, Self.mailboxToken) }
    }

    deinit {
        closeDescriptor(epollFD)
        readScratch.deallocate()
    }

    public var registrationCount: Int { registrations.count }

    /// The loop's clock. Read once per wake-up batch by callers that need it.
    public func now() -> MonotonicInstant { MonotonicInstant.now() }

    /// The clock as read when the current batch of events began: for the per-message hot path
    /// (statement timing, activity stamps), where a fresh reading per message and leg costs a
    /// clock_gettime each and the events of one batch happened at the same wake-up anyway.
    /// Timers and deadlines use ``now()``.
    public var batchNow: MonotonicInstant { batchStart }

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
        // Fails only for a descriptor that is no longer registered (a bug, not a runtime state).
        _ = try? syscallValue { pc_epoll_ctl(epollFD, EPOLL_CTL_MOD, registration.fd, interest.rawValue, id.rawValue) }
    }

    public func interest(for id: RegistrationID) -> Interest? { registrations[id.rawValue]?.interest }

    /// Removes the registration. The caller still owns (and closes) the descriptor. Events
    /// already fetched for it in this batch are dropped because the id no longer resolves.
    public func deregister(_ id: RegistrationID) {
        guard let registration = registrations.removeValue(forKey: id.rawValue) else { return }
        _ = try? syscallValue { pc_epoll_ctl(epollFD, EPOLL_CTL_DEL, registration.fd, 0, 0) }
        // Release the handler after this batch so a handler may deregister itself safely.
        let retained = registration.retained
        deferred.append(.closure { _ = retained })
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
        deferred.append(.closure(work))
    }

    /// `work.runAfterBatch(kind)` once the current batch is processed, in order with the
    /// closures queued by ``execute(afterCurrentBatch:)``. The loop holds `work` until then.
    public func execute(afterCurrentBatch work: any BatchWork, kind: UInt8) {
        deferred.append(.work(work, kind))
    }

    /// `work.runAfterBatch(kind)` after the next batch of events, whose `epoll_wait` does not
    /// block: for work that has had its turn in this wake-up (a connection reading what OpenSSL
    /// holds), so that every other ready connection and due timer comes first.
    public func execute(afterNextWait work: any BatchWork, kind: UInt8) {
        afterNextWait.append(.work(work, kind))
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
            // An EINTR (signals are blocked in every thread, so only a stop/continue) is
            // retried by the helper with the same timeout: a timer fires at most that late.
            let count: Int32
            do throws(Errno) {
                count = try syscallValue {
                    datas.withUnsafeMutableBufferPointer { d in
                        events.withUnsafeMutableBufferPointer { e in
                            pc_epoll_wait(epollFD, d.baseAddress, e.baseAddress, Int32(capacity), timeout)
                        }
                    }
                }
            } catch {
                fatalError("epoll_wait failed: \(error)")
            }
            batchStart = MonotonicInstant.now()
            wakeups &+= 1
            if !afterNextWait.isEmpty {
                deferred.append(contentsOf: afterNextWait)
                afterNextWait.removeAll(keepingCapacity: true)
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
        runDeferred(rounds: 1_000)
    }

    /// Rounds of deferred work (work queued by deferred work) run per wake-up; the rest runs
    /// after the next `epoll_wait`, which then does not block. Bounded so that work that keeps
    /// queueing itself (a leg reading what OpenSSL holds, a little at a time) cannot keep the
    /// loop from its timers and its other connections (found in review: a TLS record flood did).
    static let deferredRoundsPerWakeup = 8

    private func runDeferred(rounds: Int = EventLoop.deferredRoundsPerWakeup) {
        var round = 0
        while !deferred.isEmpty && round < rounds {
            round += 1
            swap(&deferred, &runningBatch)
            for item in runningBatch {
                switch item {
                case .closure(let work): work()
                case .work(let work, let kind): work.runAfterBatch(kind)
                }
            }
            runningBatch.removeAll(keepingCapacity: runningBatch.capacity <= 1024)
        }
    }

    private func fireDueTimers() {
        guard !timers.isEmpty else { return }
        // The batch's own clock reading: a timer due by the time epoll_wait returned fires now;
        // one due during the batch fires after the next (zero-timeout) wait.
        while let entry = timers.popDue(now: batchStart) {
            if let callback = timerCallbacks.removeValue(forKey: entry.id.rawValue) { callback() }
        }
    }

    private func timeoutMilliseconds() -> Int32 {
        if !deferred.isEmpty || !afterNextWait.isEmpty { return 0 }
        while let next = timers.nextDeadline {
            let now = MonotonicInstant.now()
            if next <= now { return 0 }
            let ms = (next.nanoseconds - now.nanoseconds + 999_999) / 1_000_000
            return Int32(min(ms, 60_000))
        }
        return -1
    }
}
