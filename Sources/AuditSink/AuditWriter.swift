import Audit
import CPortcullisShims
import EventLoop
import Glibc
import Synchronization

/// What happens when a loop's queue is full.
public enum AuditQueueFullPolicy: String, Sendable {
    /// The session that produced the event stops reading from its client until there is room
    /// (`AuditQueue.submit` returns false; the session waits for `onRoom`). Nothing is lost.
    case backpressure
    /// The event is dropped and counted; the count is reported as an `audit_dropped` event.
    case drop
}

/// One event loop's bounded queue to the writer thread. The loop submits, the writer takes.
public final class AuditQueue: Sendable {
    let capacity: Int
    let events = Mutex<[AuditEvent]>([])
    /// Events dropped under `.drop` since the writer last reported them.
    let dropped = Atomic<Int>(0)
    /// Set when a submit found the queue full: the writer calls `onRoom` after taking from it.
    let sawFull = Atomic<Bool>(false)
    private let wake: Int32

    init(capacity: Int, wake: Int32) {
        self.capacity = capacity
        self.wake = wake
    }

    /// Queues the event; false when the queue is full (the event was not queued).
    public func submit(_ event: AuditEvent) -> Bool {
        // The writer is woken only when the queue turns non-empty: it takes everything queued
        // each time, so later submits before it does need no syscall of their own.
        let (queued, wasEmpty) = events.withLock { queue -> (Bool, Bool) in
            guard queue.count < capacity else { return (false, false) }
            queue.append(event)
            return (true, queue.count == 1)
        }
        if queued {
            if wasEmpty {
                var one: UInt64 = 1
                _ = try? syscall { Glibc.write(wake, &one, 8) }
            }
        } else {
            sawFull.store(true, ordering: .releasing)
        }
        return queued
    }

    /// Queues the event or counts it as dropped.
    public func submitOrDrop(_ event: AuditEvent) {
        if !submit(event) { dropped.add(1, ordering: .relaxed) }
    }

    /// Whether a submit would succeed now (for sessions waiting under backpressure).
    public var hasRoom: Bool { events.withLock { $0.count < capacity } }
}

/// The writer thread: takes events from every loop's queue and writes them to every sink, in
/// the order each loop submitted them. A sink that fails keeps its events: the writer retries
/// with a growing pause (100 ms to 5 s) and takes nothing new until the failed batch is written,
/// so the queues fill and the loops see backpressure (or drop, as configured) — events already
/// queued are never lost to a sink failure. `stop` writes out what is queued before returning.
public final class AuditWriter: @unchecked Sendable {
    public let policy: AuditQueueFullPolicy
    private let sinks: [any AuditSink]
    private let wake: Int32
    private let state = Mutex<State>(State())
    private var queues: [AuditQueue] = []
    private var thread: pthread_t?
    /// Called on the writer thread after it took events from a queue that had been full.
    public var onRoom: (@Sendable () -> Void)?
    /// Called on the writer thread for every event before it is written: finishes its
    /// ``AuditPreparation`` (parsing, masking); false leaves the event out (class filter).
    public var prepare: (@Sendable (inout AuditEvent) -> Bool)?
    /// Called on the writer thread when a sink fails or recovers (for the process log).
    public var onSinkStatus: (@Sendable (_ sink: String, _ error: Errno?) -> Void)?
    private let clock: @Sendable () -> Int64

    struct State {
        var stopping = false
        var reopenRequested = false
        var written = 0
    }

    /// - Parameter clock: wall-clock microseconds, for the writer's own `audit_dropped` events.
    public init(sinks: [any AuditSink], policy: AuditQueueFullPolicy, clock: @escaping @Sendable () -> Int64) throws(Errno) {
        self.sinks = sinks
        self.policy = policy
        self.clock = clock
        wake = try syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }
    }

    deinit { closeDescriptor(wake) }

    /// One queue per event loop; all made before `start`.
    public func makeQueue(capacity: Int) -> AuditQueue {
        let queue = AuditQueue(capacity: capacity, wake: wake)
        queues.append(queue)
        return queue
    }

    /// Events written to every sink so far.
    public var writtenCount: Int { state.withLock { $0.written } }

    public func start() {
        let box = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        var handle = pthread_t()
        let made = pthread_create(&handle, &attributes, { raw in
            let writer = Unmanaged<AuditWriter>.fromOpaque(raw!).takeRetainedValue()
            writer.run()
            return nil
        }, box.toOpaque())
        pthread_attr_destroy(&attributes)
        if made == 0 { thread = handle } else { box.release() }
    }

    /// Reopen file sinks (SIGHUP).
    public func requestReopen() {
        state.withLock { $0.reopenRequested = true }
        signalWake()
    }

    /// Writes what is queued, then stops the thread (SIGTERM). Returns when done.
    public func stop() {
        state.withLock { $0.stopping = true }
        signalWake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = try? syscall { Glibc.write(wake, &one, 8) }
    }

    // MARK: - Writer thread

    private func run() {
        var pending: [AuditEvent] = []
        var failing: [String: Errno] = [:]
        var pause: Int32 = 100
        while true {
            let (stopping, reopen) = state.withLock { s -> (Bool, Bool) in
                let r = s.reopenRequested
                s.reopenRequested = false
                return (s.stopping, r)
            }
            if reopen {
                for sink in sinks { try? sink.reopen() }
            }
            if pending.isEmpty {
                pending = takeAll()
                if let prepare {
                    pending = pending.compactMap { event in
                        var prepared = event
                        return prepare(&prepared) ? prepared : nil
                    }
                }
            }
            if pending.isEmpty {
                if stopping { break }
                waitForWake(timeoutMilliseconds: 1000)
                for sink in sinks { sink.sync() }
                continue
            }
            var done = 0
            var failure: (String, Errno)?
            outer: for event in pending {
                for sink in sinks {
                    do {
                        try sink.write(event)
                    } catch {
                        failure = (sink.name, error)
                        break outer
                    }
                }
                done += 1
            }
            // A sink that failed part-way through an event has written that event to the sinks
            // before it: those see it again on retry (at-least-once per sink, never lost).
            pending.removeFirst(done)
            state.withLock { $0.written += done }
            for sink in sinks { sink.sync() }
            if let (name, error) = failure {
                if failing[name] == nil { onSinkStatus?(name, error) }
                failing[name] = error
                if stopping && pause > 2000 { break }  // give up on exit after a few tries
                waitForWake(timeoutMilliseconds: pause)
                pause = min(pause * 2, 5000)
            } else {
                for name in failing.keys { onSinkStatus?(name, nil) }
                failing.removeAll()
                pause = 100
            }
        }
    }

    /// Everything queued, loop by loop (each loop's order kept), plus a drop report.
    private func takeAll() -> [AuditEvent] {
        var taken: [AuditEvent] = []
        var dropped = 0
        var hadFull = false
        for queue in queues {
            taken += queue.events.withLock { q -> [AuditEvent] in
                let all = q
                q.removeAll(keepingCapacity: true)
                return all
            }
            dropped += queue.dropped.exchange(0, ordering: .relaxed)
            if queue.sawFull.exchange(false, ordering: .acquiring) { hadFull = true }
        }
        if dropped > 0 {
            taken.append(AuditEvent(kind: .auditDropped, timeMicroseconds: clock(), priority: .warning,
                                    details: [AuditDetail("DROPPED", String(dropped))],
                                    summary: "audit queue full: \(dropped) event(s) dropped"))
        }
        if hadFull { onRoom?() }
        return taken
    }

    private func waitForWake(timeoutMilliseconds: Int32) {
        var descriptor = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
        if case .processed(let ready)? = try? syscall({ poll(&descriptor, 1, timeoutMilliseconds) }), ready > 0 {
            var value: UInt64 = 0
            _ = try? syscall { Glibc.read(wake, &value, 8) }
        }
    }
}
