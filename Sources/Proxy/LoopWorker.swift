import EventLoop
import Glibc
import Logging
import Wire
import Synchronization

/// Control messages between loops (posted through the loop mailboxes).
enum LoopControl: Sendable {
    /// Stop accepting; let sessions finish until the deadline, then close them.
    case beginShutdown(drainTimeout: Duration)
    /// New configuration for new sessions; running sessions keep theirs.
    case reload(RuntimeConfig)
    /// A connection accepted by loop 0 for this loop to own from now on.
    case adopt(fd: Int32, remote: SocketAddress)
}

/// How many sessions each loop owns, so the accepting loop can hand a new connection to the
/// least-loaded one (SO_REUSEPORT's hash can put most connections on one loop).
final class LoopLoads: Sendable {
    final class Load: Sendable { let sessions = Atomic<Int>(0) }
    let loads: [Load]
    init(count: Int) { loads = (0..<count).map { _ in Load() } }

    func leastLoaded(preferring index: Int) -> Int {
        var best = index
        var bestLoad = loads[index].sessions.load(ordering: .relaxed)
        for (i, load) in loads.enumerated() {
            let value = load.sessions.load(ordering: .relaxed)
            if value < bestLoad { best = i; bestLoad = value }
        }
        return best
    }
}

/// Counts client connections across loops for max_client_connections.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Everything one event loop owns: its listeners and its sessions.
final class LoopWorker {
    let loop: EventLoop
    private(set) var runtime: RuntimeConfig
    let shared: ProxyShared
    let counter: ConnectionCounter
    var logger: Logger
    private var listeners: [Listener] = []
    private var sessions: [ObjectIdentifier: ClientSession] = [:]
    private var nextSessionID: UInt64
    private var draining = false
    let pool: PoolManager
    let policy: LoopPolicy
    /// Loop 0 handles process signals and tells the others.
    var onSignal: ((Int32) -> Void)?

    let loads: LoopLoads
    let mailboxes: MailboxDirectory

    init(loop: EventLoop, runtime: RuntimeConfig, shared: ProxyShared, counter: ConnectionCounter, loads: LoopLoads, mailboxes: MailboxDirectory) {
        self.loads = loads
        self.mailboxes = mailboxes
        self.loop = loop
        self.runtime = runtime
        self.shared = shared
        self.counter = counter
        logger = runtime.logger
        logger[metadataKey: "loop"] = "\(loop.index)"
        pool = PoolManager(loop: loop, runtime: runtime, logger: runtime.logger)
        policy = LoopPolicy(pool: shared.classifiers, largeStatementPool: shared.largeStatementClassifiers, mailbox: loop.mailbox)
        // Session ids are unique across loops: the loop index sits in the high bits.
        nextSessionID = UInt64(loop.index) << 48 | 1
        loop.controlMessageReceived = { [unowned self] message in
            if let control = message as? LoopControl { self.controlReceived(control) }
            else if let done = message as? ClassificationDone { self.policy.deliver(done) }
        }
    }

    /// One sweeper per loop: client_idle_timeout (PostgreSQL's idle_session_timeout semantics:
    /// only sessions idle outside a transaction, with nothing in flight, are ended).
    func startSweeper() {
        loop.scheduleTimer(at: loop.now() + .seconds(1)) { [weak self] in
            guard let self else { return }
            for session in self.sessions.values where session.isIdle { session.releaseIdleBuffers() }
            self.pool.releaseIdleBuffers()
            if let timeout = self.runtime.config.general.clientIdleTimeout {
                let now = self.loop.now()
                for session in Array(self.sessions.values) where session.isIdle && now.duration(since: session.lastClientActivity) >= timeout {
                    session.terminate(sqlState: SQLState.idleSessionTimeout, message: "terminating connection due to idle-session timeout")
                }
            }
            self.pool.tick()
            if !self.draining { self.startSweeper() }
        }
    }

    func addListener(fd: Int32, label: String) throws(Errno) {
        let listener = Listener(fd: fd, label: label, owner: self)
        try listener.register()
        listeners.append(listener)
    }

    func accepted(fd: Int32, remote: SocketAddress) {
        if draining {
            closeDescriptor(fd)
            return
        }
        let limit = runtime.config.general.maxClientConnections
        if counter.value.add(1, ordering: .relaxed).newValue > limit {
            counter.value.subtract(1, ordering: .relaxed)
            // As PostgreSQL, before any negotiation: a plaintext FATAL, then close.
            var out = ByteBuffer()
            BackendMessage.errorResponse(.error(sqlState: SQLState.tooManyConnections, message: "sorry, too many clients already", severity: "FATAL")).encode(into: &out)
            _ = out.readableBytesView.withUnsafeBytes { try? Socket.write(fd, from: $0) }
            closeDescriptor(fd)
            return
        }
        if !remote.isUnix {
            try? Socket.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            try? Socket.setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
        }
        let target = loads.leastLoaded(preferring: loop.index)
        if target != loop.index, let box = mailboxes.box(target) {
            // Counted on the target now, so the next accept sees it.
            loads.loads[target].sessions.add(1, ordering: .relaxed)
            box.post(LoopControl.adopt(fd: fd, remote: remote))
            return
        }
        loads.loads[loop.index].sessions.add(1, ordering: .relaxed)
        startSession(fd: fd, remote: remote)
    }

    /// Runs a connection on this loop (already counted in `counter` and in this loop's load).
    private func startSession(fd: Int32, remote: SocketAddress) {
        if draining {
            loads.loads[loop.index].sessions.subtract(1, ordering: .relaxed)
            counter.value.subtract(1, ordering: .relaxed)
            closeDescriptor(fd)
            return
        }
        let session = ClientSession(loop: loop, fd: fd, remote: remote, runtime: runtime, shared: shared, pool: pool,
                                    policy: policy, sessionID: nextSessionID)
        nextSessionID += 1
        session.onFinish = { [unowned self] session in self.sessionFinished(session) }
        do {
            try session.start()
            sessions[ObjectIdentifier(session)] = session
        } catch {
            loads.loads[loop.index].sessions.subtract(1, ordering: .relaxed)
            counter.value.subtract(1, ordering: .relaxed)
            closeDescriptor(fd)
            logger.warning("could not register connection: \(error)")
        }
    }

    private func sessionFinished(_ session: ClientSession) {
        guard sessions.removeValue(forKey: ObjectIdentifier(session)) != nil else { return }
        counter.value.subtract(1, ordering: .relaxed)
        loads.loads[loop.index].sessions.subtract(1, ordering: .relaxed)
        if draining && sessions.isEmpty { loop.stop() }
    }

    private func controlReceived(_ control: LoopControl) {
        switch control {
        case .beginShutdown(let drainTimeout):
            guard !draining else { return }
            draining = true
            for listener in listeners { listener.close() }
            listeners.removeAll()
            pool.shutdown()
            if sessions.isEmpty {
                loop.stop()
                return
            }
            logger.info("waiting up to \(drainTimeout) for \(sessions.count) session(s) to finish")
            loop.scheduleTimer(at: loop.now() + drainTimeout) { [unowned self] in
                for session in Array(self.sessions.values) {
                    session.terminateForShutdown()
                }
                self.loop.stop()
            }
        case .adopt(let fd, let remote):
            startSession(fd: fd, remote: remote)
        case .reload(let newRuntime):
            runtime = newRuntime
            pool.reloaded(newRuntime)
        }
    }
}

extension ClientSession {
    /// As PostgreSQL's fast shutdown: 57P01 to the client, then close.
    func terminateForShutdown() {
        terminate(sqlState: SQLState.adminShutdown, message: "terminating connection due to administrator command")
    }
}
