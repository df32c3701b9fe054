import EventLoop
import Glibc
import Logging
import Wire
import Synchronization

/// Control messages between loops (posted through the loop mailboxes).
enum LoopControl: Sendable {
    /// Stop accepting; let sessions finish until the deadline, then close them.
    case beginShutdown(drainTimeout: Duration)
    /// New configuration for new sessions and the loop's pools; running sessions keep theirs.
    /// The loop tells `applied` once it is in force here.
    case reload(RuntimeConfig, applied: ReloadBarrier)
    /// A connection accepted by loop 0 for this loop to own from now on.
    /// Its startup slot travels with it.
    case adopt(fd: Int32, remote: SocketAddress, slot: StartupSlot)
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
final class LoopWorker: SessionHost {
    let loop: EventLoop
    private(set) var runtime: RuntimeConfig
    let shared: ProxyShared
    let counter: ConnectionCounter
    var logger: Logger
    private var listeners: [Listener] = []
    private var sessions: [ObjectIdentifier: ClientSession] = [:]
    private var nextSessionID: UInt64
    private var draining = false
    /// Accepted connections waiting for their first byte, by descriptor.
    private var waiting: [Int32: FirstByteWait] = [:]
    private var nextWaitSequence: UInt64 = 0
    /// Handed-off connections whose lookups (``SessionPrestart``) are running, by descriptor.
    private var prestarting: [Int32: (ticket: UInt64, timer: TimerID, slot: StartupSlot)] = [:]
    /// Sessions that have not authenticated yet hold a place in the startup limits.
    private var startupSlots: [ObjectIdentifier: StartupSlot] = [:]
    private var refusalLog = RepeatedLogLimiter(burst: 5, interval: .seconds(60))
    private var evictionLog = RepeatedLogLimiter(burst: 5, interval: .seconds(60))
    let pool: PoolManager
    let policy: LoopPolicy
    /// This loop's audit queue when `audit = on` (set before the loop runs).
    var audit: LoopAudit? {
        didSet { pool.audit = audit }
    }

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
            else if let done = message as? LookupDone { self.pool.lookups.deliver(done) }
            else if message is AuditRoom { self.audit?.roomAvailable() }
            else if let probe = message as? WatchdogProbe { probe.answer(loop: self.loop.index) }
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

    /// A new connection from a listener. It counts against max_client_connections and the
    /// limits on connections that have not authenticated yet (total, per client address), and
    /// waits on this loop for its first byte. When a limit is reached, the oldest connection
    /// that has not said a word yet (from the same address, for the per-address limit) makes
    /// room: every real client speaks at once, so silent connections cannot lock anyone out,
    /// even from their own address. Only when none is left is the newcomer refused, as
    /// PostgreSQL refuses one over max_connections (postmaster.c: a plaintext 53300 FATAL
    /// before any negotiation, then close).
    func accepted(fd: Int32, remote: SocketAddress) {
        if draining {
            closeDescriptor(fd)
            return
        }
        let general = runtime.config.general
        let address = StartupAddressKey.key(forHost: remote.host, isUnix: remote.isUnix)
        while counter.value.add(1, ordering: .relaxed).newValue > general.maxClientConnections {
            counter.value.subtract(1, ordering: .relaxed)
            guard evictOldestSilent(from: nil, reason: "max_client_connections (\(general.maxClientConnections)) reached") else {
                refuseTooManyClients(fd: fd, remote: remote, reason: "max_client_connections (\(general.maxClientConnections)) reached")
                return
            }
        }
        var admitted: StartupSlot?
        while admitted == nil {
            switch shared.startupLimits.admit(address: address, totalLimit: general.effectiveMaxStartupConnections,
                                              perAddressLimit: general.maxStartupConnectionsPerAddress) {
            case .success(let slot):
                admitted = slot
            case .failure(let refused):
                let (scope, reason): (SilentScope, String) = switch refused.refusal {
                case .total(let limit):
                    (.any, "max_startup_connections (\(limit)) connections are still authenticating")
                case .perAddress(let limit):
                    (.address(address), "max_startup_connections_per_address (\(limit)) connections from \(address ?? "[local]") are still authenticating")
                }
                guard evictOldestSilent(from: scope, reason: reason) else {
                    counter.value.subtract(1, ordering: .relaxed)
                    refuseTooManyClients(fd: fd, remote: remote, reason: reason)
                    return
                }
            }
        }
        guard let slot = admitted else { return }
        if !remote.isUnix {
            try? Socket.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            try? Socket.setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
        }
        awaitFirstByte(fd: fd, remote: remote, address: address, slot: slot)
    }

    /// As PostgreSQL, before any negotiation: a plaintext FATAL, then close. Logged, but at
    /// most a few lines per minute per loop however many are refused.
    private func refuseTooManyClients(fd: Int32, remote: SocketAddress, reason: String) {
        var out = ByteBuffer()
        BackendMessage.errorResponse(.error(sqlState: SQLState.tooManyConnections, message: "sorry, too many clients already", severity: "FATAL")).encode(into: &out)
        _ = out.readableBytesView.withUnsafeBytes { try? Socket.write(fd, from: $0) }
        closeDescriptor(fd)
        switch refusalLog.occurred(at: loop.now()) {
        case .log:
            logger.warning("connection from \(remote.host) refused: \(reason)")
        case .suppress:
            break
        case .summary(let suppressed, let total):
            logger.warning("\(suppressed) more connection(s) refused for too many clients since the last report (\(total) on this loop since start); latest from \(remote.host): \(reason)")
        }
    }

    /// Waits on the accepting loop for the connection's first byte (startup_first_byte_timeout,
    /// never longer than login_timeout), then hands it to the least-loaded loop.
    private func awaitFirstByte(fd: Int32, remote: SocketAddress, address: String?, slot: StartupSlot) {
        // Often the client has spoken by the time it is accepted: no registration needed.
        if Socket.hasPendingInput(fd) {
            handOff(fd: fd, remote: remote, slot: slot)
            return
        }
        let general = runtime.config.general
        let timeout = min(general.startupFirstByteTimeout ?? general.loginTimeout, general.loginTimeout)
        let wait = FirstByteWait(loop: loop, fd: fd, address: address, sequence: nextWaitSequence, slot: slot)
        nextWaitSequence += 1
        waiting[fd] = wait
        do {
            try wait.start(timeout: timeout) { [unowned self] outcome in
                self.waiting.removeValue(forKey: fd)
                switch outcome {
                case .readable:
                    self.handOff(fd: fd, remote: remote, slot: slot)
                case .timedOut:
                    // As PostgreSQL when the startup packet never comes: closed without a word.
                    self.logger.debug("closing connection from \(remote.host): nothing received within startup_first_byte_timeout")
                    self.dropSilent(fd: fd, slot: slot)
                }
            }
        } catch {
            waiting.removeValue(forKey: fd)
            logger.warning("could not register connection: \(error)")
            dropSilent(fd: fd, slot: slot)
        }
    }

    /// Which waiting connections may make room: any, or those from one address.
    private enum SilentScope {
        case any
        case address(String?)
    }

    /// Closes the oldest connection still waiting for its first byte within `scope`; false
    /// when there is none. A candidate whose bytes have arrived but not been handled yet
    /// (accepts and reads share a batch) is handed on instead, not closed. (Only this loop's
    /// connections: loop 0 accepts every connection.)
    private func evictOldestSilent(from scope: SilentScope?, reason: String) -> Bool {
        let candidates = waiting.values.filter { wait in
            switch scope {
            case .address(let address)?: wait.address == address
            case .any?, nil: true
            }
        }.sorted { $0.sequence < $1.sequence }
        for candidate in candidates {
            if Socket.hasPendingInput(candidate.fd) {
                candidate.readableNow()
                continue
            }
            waiting.removeValue(forKey: candidate.fd)
            candidate.cancel()
            dropSilent(fd: candidate.fd, slot: candidate.slot)
            switch evictionLog.occurred(at: loop.now()) {
            case .log:
                logger.info("closed a connection that had sent nothing, to make room: \(reason)")
            case .suppress:
                break
            case .summary(let suppressed, let total):
                logger.info("closed \(suppressed) more connection(s) that had sent nothing, to make room (\(total) on this loop since start): \(reason)")
            }
            return true
        }
        return false
    }

    /// A connection that never spoke: counted in `counter` and the startup limits, not in loads.
    private func dropSilent(fd: Int32, slot: StartupSlot) {
        counter.value.subtract(1, ordering: .relaxed)
        slot.release()
        closeDescriptor(fd)
    }

    private func handOff(fd: Int32, remote: SocketAddress, slot: StartupSlot) {
        if draining {
            dropSilent(fd: fd, slot: slot)
            return
        }
        let target = loads.leastLoaded(preferring: loop.index)
        if target != loop.index, let box = mailboxes.box(target) {
            // Counted on the target now, so the next hand-off sees it.
            loads.loads[target].sessions.add(1, ordering: .relaxed)
            box.post(LoopControl.adopt(fd: fd, remote: remote, slot: slot))
            return
        }
        loads.loads[loop.index].sessions.add(1, ordering: .relaxed)
        runSession(fd: fd, remote: remote, slot: slot)
    }

    /// Gives back everything a handed-off connection without a session holds.
    private func abandon(fd: Int32, slot: StartupSlot) {
        loads.loads[loop.index].sessions.subtract(1, ordering: .relaxed)
        counter.value.subtract(1, ordering: .relaxed)
        slot.release()
        closeDescriptor(fd)
    }

    /// Lookups the rules in force need (peer user, client host name) run on a lookup thread
    /// first: the connection waits (its bytes stay in the kernel), the loop does not. The
    /// wait counts against login_timeout, as PostgreSQL's host-name checks count against
    /// authentication_timeout; a connection whose lookups outlast it is closed without a word.
    private func runSession(fd: Int32, remote: SocketAddress, slot: StartupSlot) {
        let rules = runtime.accessFiles.rules
        guard let needed = SessionPrestart.needed(rules: rules, remote: remote) else {
            return startSession(fd: fd, remote: remote, slot: slot, prestart: nil)
        }
        let ticket = pool.lookups.run({ SessionPrestart.perform(fd: fd, remote: remote, rules: rules, peer: needed.peer, hostName: needed.hostName) }) {
            [unowned self] prestart in
            guard let waiting = self.prestarting.removeValue(forKey: fd) else { return }
            self.loop.cancelTimer(waiting.timer)
            if self.draining { self.abandon(fd: fd, slot: slot) } else { self.startSession(fd: fd, remote: remote, slot: slot, prestart: prestart) }
        }
        let timer = loop.scheduleTimer(at: loop.now() + runtime.config.general.loginTimeout) { [unowned self] in
            guard let waiting = self.prestarting.removeValue(forKey: fd) else { return }
            self.pool.lookups.cancel(waiting.ticket)
            self.logger.info("closing connection from \(remote.host): its host-name or peer lookups did not finish within login_timeout")
            self.abandon(fd: fd, slot: slot)
        }
        prestarting[fd] = (ticket, timer, slot)
    }

    private func startSession(fd: Int32, remote: SocketAddress, slot: StartupSlot, prestart: SessionPrestart?) {
        let session = ClientSession(loop: loop, fd: fd, remote: remote, runtime: runtime, shared: shared, pool: pool,
                                    policy: policy, sessionID: nextSessionID, prestart: prestart)
        nextSessionID += 1
        session.host = self
        if let audit { session.enableAudit(audit) }
        do {
            try session.start()
            sessions[ObjectIdentifier(session)] = session
            startupSlots[ObjectIdentifier(session)] = slot
        } catch {
            logger.warning("could not register connection: \(error)")
            abandon(fd: fd, slot: slot)
        }
    }

    /// Authenticated: no longer counted as a connection in start-up, and the address's
    /// failed-login history is forgiven.
    func sessionAuthenticated(_ session: ClientSession, remote: SocketAddress) {
        startupSlots.removeValue(forKey: ObjectIdentifier(session))?.release()
        if runtime.config.general.authFailureDelay != nil,
           let address = StartupAddressKey.key(forHost: remote.host, isUnix: remote.isUnix) {
            shared.authFailures.succeeded(address: address)
        }
    }

    func sessionFinished(_ session: ClientSession) {
        guard sessions.removeValue(forKey: ObjectIdentifier(session)) != nil else { return }
        startupSlots.removeValue(forKey: ObjectIdentifier(session))?.release()
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
            // Connections that never spoke have no session to drain.
            for wait in Array(waiting.values) {
                wait.cancel()
                dropSilent(fd: wait.fd, slot: wait.slot)
            }
            waiting.removeAll()
            for (fd, prestart) in prestarting {
                pool.lookups.cancel(prestart.ticket)
                loop.cancelTimer(prestart.timer)
                abandon(fd: fd, slot: prestart.slot)
            }
            prestarting.removeAll()
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
        case .adopt(let fd, let remote, let slot):
            if draining { abandon(fd: fd, slot: slot) } else { runSession(fd: fd, remote: remote, slot: slot) }
        case .reload(let newRuntime, let applied):
            runtime = newRuntime
            pool.reloaded(newRuntime)
            applied.loopApplied()
        }
    }
}

extension ClientSession {
    /// As PostgreSQL's fast shutdown: 57P01 to the client, then close.
    func terminateForShutdown() {
        terminate(sqlState: SQLState.adminShutdown, message: "terminating connection due to administrator command")
    }
}
