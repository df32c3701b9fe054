import EventLoop
import Glibc
import Synchronization

/// A probe posted to every loop's mailbox; the loop answers from its own thread, which proves
/// it is turning (see ``WatchdogHeartbeat``).
struct WatchdogProbe: Sendable {
    let round: UInt64
    let monitor: ServiceMonitor

    func answer(loop: Int) { monitor.acknowledged(loop: loop, round: round) }
}

/// Under systemd (NOTIFY_SOCKET set): a thread of its own that, every half `WatchdogSec`
/// (or every 30 s without a watchdog), reports STATUS= with the connection count and sends
/// WATCHDOG=1 only when every loop answered the previous probe. Sleeping here never touches a
/// loop thread.
final class ServiceMonitor: Sendable {
    private let heartbeat: Mutex<WatchdogHeartbeat>
    private let mailboxes: MailboxDirectory
    private let counter: ConnectionCounter
    private let watchdog: Duration?
    private let stopped = Atomic<Bool>(false)
    private let loops: Int
    /// Loops whose mailbox did not exist yet when the current round was posted.
    private let unprobed = Mutex<[Int]>([])

    private init(loops: Int, mailboxes: MailboxDirectory, counter: ConnectionCounter, watchdog: Duration?) {
        heartbeat = Mutex(WatchdogHeartbeat(loops: loops))
        self.loops = loops
        self.mailboxes = mailboxes
        self.counter = counter
        self.watchdog = watchdog
    }

    /// Starts the monitor thread when a service manager listens; nil otherwise.
    static func start(loops: Int, mailboxes: MailboxDirectory, counter: ConnectionCounter) -> ServiceMonitor? {
        guard ServiceNotifier.isSupervised else { return nil }
        let monitor = ServiceMonitor(loops: loops, mailboxes: mailboxes, counter: counter, watchdog: ServiceNotifier.watchdogInterval())
        let period: Duration = monitor.watchdog.map { $0 / 2 } ?? .seconds(30)
        monitor.probe(round: 1)
        LoopThread.detach(LoopThread.start(name: "portcullis-sd") {
            var pause = period - monitor.probeLoopsAsTheyStart(within: period / 2)
            while !monitor.stopped.load(ordering: .relaxed) {
                pauseThread(for: pause)
                pause = period
                if monitor.stopped.load(ordering: .relaxed) { return }
                monitor.tick()
            }
        })
        return monitor
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func acknowledged(loop: Int, round: UInt64) {
        heartbeat.withLock { $0.acknowledged(loop: loop, round: round) }
    }

    private func tick() {
        let status = "\(counter.value.load(ordering: .relaxed)) client connections"
        guard watchdog != nil else {
            ServiceNotifier.status(status)
            return
        }
        switch heartbeat.withLock({ $0.tick() }) {
        case .ping(let next):
            ServiceNotifier.watchdog(status: status)
            probe(round: next)
        case .withhold(let silent):
            probeLateLoops()
            ServiceNotifier.status("\(status); event loop(s) \(silent.map(String.init).joined(separator: ", ")) not answering")
        }
    }

    /// Posts the round's probe to every loop (not through `broadcast`, which keeps messages for
    /// loops yet to start). A loop whose mailbox is not set yet gets it at a later tick.
    private func probe(round: UInt64) {
        let missing = (0..<loops).filter { index in
            guard let box = mailboxes.box(index) else { return true }
            box.post(WatchdogProbe(round: round, monitor: self))
            return false
        }
        unprobed.withLock { $0 = missing }
    }

    /// READY=1 goes out as soon as the loop threads are started, and each loop sets its mailbox
    /// from its own thread, so some may not have one yet when round 1 is posted. systemd's
    /// watchdog timer is running by the time READY=1 arrives: were those loops only probed at
    /// the first tick, the first WATCHDOG=1 could come no earlier than the second tick, a whole
    /// `WatchdogSec` after this start and so after systemd's deadline (sd_watchdog_enabled(3)).
    /// So the first round is posted to each loop as its mailbox appears (for at most `limit`),
    /// and the first ping comes at the first tick; returns the time spent.
    private func probeLoopsAsTheyStart(within limit: Duration) -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        while !unprobed.withLock({ $0.isEmpty }), clock.now - start < limit, !stopped.load(ordering: .relaxed) {
            pauseThread(for: .milliseconds(2))
            probeLateLoops()
        }
        return clock.now - start
    }

    private func probeLateLoops() {
        let round = heartbeat.withLock { $0.round }
        let late = unprobed.withLock { $0 }
        guard !late.isEmpty else { return }
        let still = late.filter { index in
            guard let box = mailboxes.box(index) else { return true }
            box.post(WatchdogProbe(round: round, monitor: self))
            return false
        }
        unprobed.withLock { $0 = still }
    }
}
