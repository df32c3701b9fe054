import CPortcullisShims
import EventLoop
import Glibc
import Synchronization

/// The process log's writer thread. Log lines are formatted where they are logged (an event
/// loop, usually) and handed over here; only this thread writes them to standard error, so a
/// slow or blocked stderr (a full pipe, a stalled journald behind `StandardError=journal`, a
/// terminal paused with ^S) never stalls a loop.
///
/// Bounded: at most `maxQueuedBytes` wait; beyond that lines are dropped and counted, and
/// the writer says how many when it catches up — a flood of log lines must not cost unbounded
/// memory either. `flush()` (also at process exit) writes out everything queued.
public final class LogWriter: Sendable {
    public static let shared = LogWriter(descriptor: STDERR_FILENO, maxQueuedBytes: 8 << 20)

    private struct State {
        var lines: [String] = []
        var bytes = 0
        var dropped = 0
        /// Lines taken by the writer but not yet written (for `flush`).
        var writing = false
        var started = false
    }

    private let descriptor: Int32
    private let maxQueuedBytes: Int
    private let state = Mutex(State())
    private let wake: Int32
    private let idle: Int32

    init(descriptor: Int32, maxQueuedBytes: Int) {
        self.descriptor = descriptor
        self.maxQueuedBytes = maxQueuedBytes
        wake = (try? syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }) ?? -1
        idle = (try? syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }) ?? -1
    }

    /// Queues one formatted line (with its newline). Never blocks on I/O.
    public func write(_ line: String) {
        guard wake >= 0 else { return writeNow(Array(line.utf8)) }
        let (queued, wasEmpty, startThread) = state.withLock { s -> (Bool, Bool, Bool) in
            let start = !s.started
            s.started = true
            guard s.bytes + line.utf8.count <= maxQueuedBytes else {
                s.dropped += 1
                return (false, false, start)
            }
            s.lines.append(line)
            s.bytes += line.utf8.count
            return (true, s.lines.count == 1, start)
        }
        if startThread { start() }
        if queued && wasEmpty { signal(wake) }
    }

    /// Waits until every line queued so far is written (process exit, tests), or `limit`
    /// passed: a standard error that never drains must not keep the process from exiting.
    public func flush(limit: Duration = .seconds(5)) {
        guard wake >= 0 else { return }
        let deadline = MonotonicInstant.now() + limit
        while state.withLock({ ($0.started && (!$0.lines.isEmpty || $0.writing || $0.dropped > 0)) }),
              MonotonicInstant.now() < deadline {
            signal(wake)
            var descriptor = pollfd(fd: idle, events: Int16(POLLIN), revents: 0)
            _ = try? syscall { poll(&descriptor, 1, 100) }
            var value: UInt64 = 0
            if descriptor.revents != 0 { _ = try? syscall { read(idle, &value, 8) } }
        }
    }

    private func start() {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let made = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let writer = Unmanaged<LogWriter>.fromOpaque(raw).takeRetainedValue()
            writer.run()
            return nil
        }, box.toOpaque())
        if made == 0 { pthread_detach(handle) } else { box.release() }
    }

    private func run() {
        while true {
            let (lines, dropped) = state.withLock { s -> ([String], Int) in
                let taken = (s.lines, s.dropped)
                s.lines.removeAll(keepingCapacity: true)
                s.bytes = 0
                s.dropped = 0
                s.writing = !taken.0.isEmpty || taken.1 > 0
                return taken
            }
            if lines.isEmpty && dropped == 0 {
                signal(idle)
                var descriptor = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
                _ = try? syscall { poll(&descriptor, 1, 1000) }
                var value: UInt64 = 0
                if descriptor.revents != 0 { _ = try? syscall { read(wake, &value, 8) } }
                continue
            }
            var bytes: [UInt8] = []
            for line in lines { bytes += line.utf8 }
            if dropped > 0 {
                bytes += "portcullis: \(dropped) log line(s) dropped: standard error did not keep up\n".utf8
            }
            writeNow(bytes)
            state.withLock { $0.writing = false }
        }
    }

    private func writeNow(_ bytes: [UInt8]) {
        // A failing stderr (closed, EPIPE) cannot be reported anywhere; the lines are lost.
        try? Descriptor.writeAll(descriptor, bytes)
    }

    private func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = try? syscall { Glibc.write(fd, &one, 8) }
    }
}

/// What `StreamLogHandler` writes its lines to: the ``LogWriter``'s queue.
public struct QueuedStandardError: TextOutputStream, Sendable {
    public init() {}
    public mutating func write(_ string: String) {
        LogWriter.shared.write(string)
    }
}
