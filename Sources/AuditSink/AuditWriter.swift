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
///
/// Bounded twice: in events (`audit_queue_size`) and in the bytes the events hold
/// (`audit_queue_max_bytes`, ``AuditEvent/heldBytes``). The event bound alone let four clients
/// sending 1 MiB Query strings queue 10,000 of them per loop (2.4 GB in 42 s, measured in
/// review): each event carries its whole text, and the writer needs far longer per such event
/// than the loop needs to make one. A queue always accepts an event when it is empty, so one
/// event larger than the bound still passes (alone).
public final class AuditQueue: Sendable {
    let capacity: Int
    let maxBytes: Int
    let held = Mutex<Held>(Held())
    /// Events dropped under `.drop` since the writer last reported them.
    let dropped = Atomic<Int>(0)
    /// Set when a submit found the queue full: the writer calls `onRoom` after taking from it.
    let sawFull = Atomic<Bool>(false)
    private let wake: Int32

    struct Held {
        var events: [AuditEvent] = []
        /// What `events` hold, as ``AuditEvent/heldBytes`` counts it (text shared with the
        /// previous event counted once).
        var bytes = 0
        /// The previous event's text and parameters storage: the substatements of one Query
        /// string, and the Executes of one portal, share theirs, and are counted once.
        var lastShared = AuditEvent.SharedStorage()

        mutating func append(_ event: AuditEvent) {
            let shared = event.sharedStorage
            bytes += event.heldBytes(sharingWith: lastShared)
            lastShared = shared
            events.append(event)
        }

        mutating func reset() {
            bytes = 0
            lastShared = AuditEvent.SharedStorage()
        }
    }

    init(capacity: Int, maxBytes: Int = .max, wake: Int32) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        self.wake = wake
    }

    /// Queues the event; false when the queue is full (the event was not queued).
    public func submit(_ event: AuditEvent) -> Bool {
        // The writer is woken only when the queue turns non-empty: it takes everything queued
        // each time, so later submits before it does need no syscall of their own.
        let (queued, wasEmpty) = held.withLock { queue -> (Bool, Bool) in
            guard queue.events.isEmpty || (queue.events.count < capacity
                && queue.bytes + event.heldBytes(sharingWith: queue.lastShared) <= maxBytes) else { return (false, false) }
            queue.append(event)
            return (true, queue.events.count == 1)
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

    /// Queues the event even when the queue is full: for the last events of a session that
    /// has ended (nothing can wait for room any more, and under backpressure nothing may be
    /// lost). The bound is exceeded by at most what one session held back.
    public func submitBeyondBound(_ event: AuditEvent) {
        let wasEmpty = held.withLock { queue -> Bool in
            queue.append(event)
            return queue.events.count == 1
        }
        if wasEmpty {
            var one: UInt64 = 1
            _ = try? syscall { Glibc.write(wake, &one, 8) }
        }
    }

    /// Whether a submit would succeed now (for sessions waiting under backpressure); a large
    /// event may still find no room in a queue that is not empty.
    public var hasRoom: Bool { held.withLock { $0.events.count < capacity && $0.bytes < maxBytes } }

    /// Events queued, and the bytes they hold (for tests and shutdown).
    public var queued: (events: Int, bytes: Int) { held.withLock { ($0.events.count, $0.bytes) } }
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
    /// Written once by the writer thread as it exits, so `stop` can wait for it with a bound.
    private let finished: Int32
    private let state = Mutex<State>(State())
    private var queues: [AuditQueue] = []
    private var thread: pthread_t?
    /// Called on the writer thread after it took events from a queue that had been full.
    public var onRoom: (@Sendable () -> Void)?
    /// Called on the writer thread for every event before it is written: finishes its
    /// ``AuditPreparation`` (parsing, masking) and appends the records to write to the array:
    /// none (class filter), the event, or one per relation (`audit_log_relation`).
    public var prepare: (@Sendable (AuditEvent, inout [AuditEvent]) -> Void)?
    /// Called on the writer thread when a sink fails or recovers (for the process log).
    public var onSinkStatus: (@Sendable (_ sink: String, _ error: Errno?) -> Void)?
    private let clock: @Sendable () -> Int64

    struct State {
        var stopping = false
        var reopenRequested = false
        var written = 0
        /// Events the writer has taken from the queues and not yet written to every sink.
        var pending = 0
    }

    /// - Parameter clock: wall-clock microseconds, for the writer's own `audit_dropped` events.
    public init(sinks: [any AuditSink], policy: AuditQueueFullPolicy, clock: @escaping @Sendable () -> Int64) throws(Errno) {
        self.sinks = sinks
        self.policy = policy
        self.clock = clock
        wake = try syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }
        do {
            finished = try syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }
        } catch {
            closeDescriptor(wake)
            throw error
        }
    }

    deinit {
        closeDescriptor(wake)
        closeDescriptor(finished)
    }

    /// One queue per event loop; all made before `start`. `maxBytes`: the bound on what its
    /// events hold (``AuditEvent/heldBytes``), besides the bound in events.
    public func makeQueue(capacity: Int, maxBytes: Int = .max) -> AuditQueue {
        let queue = AuditQueue(capacity: capacity, maxBytes: maxBytes, wake: wake)
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
            guard let raw else { return nil }
            let writer = Unmanaged<AuditWriter>.fromOpaque(raw).takeRetainedValue()
            writer.run()
            var one: UInt64 = 1
            _ = try? syscall { Glibc.write(writer.finished, &one, 8) }
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

    /// Writes what is queued, then stops the thread (SIGTERM). Waits at most `timeout`: a sink
    /// that blocks rather than fails must not keep the process from exiting. journald stopped
    /// (SIGSTOP, or wedged) is one: `sd_journal_sendv` sends on a blocking datagram socket and
    /// waits once journald's receive queue is full (`net.unix.max_dgram_qlen` datagrams); a
    /// JSON sink on a FIFO nobody reads is another. A sink that fails is already given up after
    /// a few retries (`run`).
    /// - Returns: how many events were left unwritten (taken but not written to every sink, or
    ///   still queued); 0 when the writer finished.
    @discardableResult
    public func stop(timeout: Duration = AuditWriter.stopTimeout) -> Int {
        state.withLock { $0.stopping = true }
        signalWake()
        guard let thread else { return 0 }
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        var descriptor = pollfd(fd: finished, events: Int16(POLLIN), revents: 0)
        if case .processed(let ready)? = try? syscall({ poll(&descriptor, 1, milliseconds) }), ready > 0 {
            pthread_join(thread, nil)
            self.thread = nil
            return 0
        }
        // The thread stays blocked in its sink; the process exits around it.
        let queued = queues.reduce(0) { total, queue in total + queue.queued.events }
        return state.withLock { $0.pending } + queued
    }

    /// How long shutdown waits for the writer to write what is queued (docs/AUDIT.md).
    public static let stopTimeout: Duration = .seconds(5)

    private func signalWake() {
        var one: UInt64 = 1
        _ = try? syscall { Glibc.write(wake, &one, 8) }
    }

    // MARK: - Writer thread

    private func run() {
        var pending: [AuditEvent] = []
        /// How many of `pending` each sink has written.
        var progress = [Int](repeating: 0, count: sinks.count)
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
                takeAll(into: &pending)
                if !pending.isEmpty { state.withLock { $0.pending = pending.count } }
            }
            if pending.isEmpty {
                if stopping { break }
                if waitForWake(timeoutMilliseconds: 1000), !state.withLock({ $0.stopping }) { linger() }
                for sink in sinks { sink.sync() }
                continue
            }
            // Each sink continues from where it stopped, so a sink that failed does not make
            // the others write the same events again.
            var failure: (String, Errno)?
            for (index, sink) in sinks.enumerated() where progress[index] < pending.count {
                let (written, error) = sink.write(batch: pending[progress[index]...])
                progress[index] += written
                if let error, failure == nil { failure = (sink.name, error) }
            }
            let done = progress.min() ?? pending.count
            for index in progress.indices { progress[index] -= done }
            pending.removeFirst(done)
            state.withLock {
                $0.written += done
                $0.pending = pending.count
            }
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
                if !stopping { linger() }
            }
        }
    }

    /// Each queue's events are taken by swapping its array with this one (emptied, capacity
    /// kept), so neither side allocates in the steady state.
    private var spare: [AuditEvent] = []

    /// Everything queued, loop by loop (each loop's order kept), prepared, plus a drop report,
    /// appended to `taken`.
    private func takeAll(into taken: inout [AuditEvent]) {
        var dropped = 0
        var hadFull = false
        for queue in queues {
            queue.held.withLock {
                swap(&$0.events, &spare)
                $0.reset()
            }
            if let prepare {
                for event in spare { prepare(event, &taken) }
            } else {
                taken.append(contentsOf: spare)
            }
            spare.removeAll(keepingCapacity: true)
            dropped += queue.dropped.exchange(0, ordering: .relaxed)
            if queue.sawFull.exchange(false, ordering: .acquiring) { hadFull = true }
        }
        if dropped > 0 {
            taken.append(AuditEvent(kind: .auditDropped, timeMicroseconds: clock(), priority: .warning,
                                    details: [AuditDetail("DROPPED", String(dropped))],
                                    summary: "audit queue full: \(dropped) event(s) dropped"))
        }
        if hadFull { onRoom?() }
    }

    /// How long the writer lets events gather after a wake-up (2 ms: at 20,000 events a
    /// second about 40 per batch; an event waits at most this much longer to be written).
    static let lingerNanoseconds = 2_000_000

    /// Lets events gather after a wake-up or a batch, so a busy proxy wakes this thread (and
    /// the loops pay an eventfd write) a few hundred times a second, not once per event.
    private func linger() {
        var pause = timespec(tv_sec: 0, tv_nsec: Self.lingerNanoseconds)
        _ = nanosleep(&pause, nil)
    }

    /// True when woken (rather than timed out).
    @discardableResult
    private func waitForWake(timeoutMilliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
        if case .processed(let ready)? = try? syscall({ poll(&descriptor, 1, timeoutMilliseconds) }), ready > 0 {
            var value: UInt64 = 0
            _ = try? syscall { Glibc.read(wake, &value, 8) }
            return true
        }
        return false
    }
}
