import EventLoop
import Wire
import Config
import Pool
import Session
import Logging
import Glibc

/// The answer to a checkout — one narrow callback with an event kind, as ``LegEvent`` and
/// ``UpstreamLinkEvent``.
enum PoolEvent {
    /// The user holds the link now (and must check it in); the link's leg still reports to
    /// the link until the user makes itself the leg's owner.
    case granted(UpstreamLink)
    /// No connection: the server's own error, or the pool closing.
    case refused(ErrorFields)
    /// No connection became free within pool_wait_timeout (the pool was at pool_max_size).
    case waitTimedOut(ErrorFields, PoolExhaustion)
    /// A reload retired the pool while the user waited: nothing was granted; the user asks
    /// again under the configuration now in force.
    case withdrawn
}

/// Someone waiting for a server connection: a client session or an internal user (backups).
/// Told once per checkout, after the current batch of events — never from inside its own
/// `checkout`, `cancelCheckout` or `checkin` call, nor inside another user's. A grant already
/// on its way when the user cancelled still arrives: the user gives the link back.
protocol PoolUser: AnyObject {
    func poolEvent(_ event: PoolEvent)
}

/// The shell around the pure ServerPool: one per loop, one ServerPool per UpstreamSpec. It opens
/// links, resets returned ones with DISCARD ALL (server_reset=discard) or closes them
/// (server_reset=close, with min_idle spares opened ahead), and hands them to waiting users.
final class PoolManager: UpstreamLinkOwner {
    final class Entry {
        var state: ServerPool
        var target: DatabaseTarget
        var password: Secret?
        var links: [ServerPool.ConnectionID: UpstreamLink] = [:]
        var users: [ServerPool.RequestID: PoolUser] = [:]
        /// A client had to wait because the pool was at pool_max_size and the waiters have not
        /// all been served since: pool_exhausted is reported once per such episode.
        var exhausted = false
        init(state: ServerPool, target: DatabaseTarget, password: Secret?) {
            self.state = state
            self.target = target
            self.password = password
        }
    }

    private let loop: EventLoop
    var runtime: RuntimeConfig
    private var entries: [UpstreamSpec: Entry] = [:]
    /// Transaction pooling: one request per spec, shared by all its clients (an idle client
    /// holds a reference, not its own copy of spec, target and password). Forgotten with the
    /// spec's pool; clients that hold one keep it.
    private var transactionRequests: [UpstreamSpec: TransactionPoolRequest] = [:]
    /// Session configurations, one per identity and mode (``sharedSessionConfiguration(_:)``).
    private var sessionConfigurations: [SessionMachine.Configuration.Key: SessionMachine.Configuration] = [:]
    /// Bound on that table: forgotten whole beyond it (sessions keep theirs), so logins of
    /// ever new user names (pg_ident maps, auth_query) cannot grow it without end.
    static let sessionConfigurationLimit = 1024
    /// Pools whose [databases] entry a reload removed: they serve no checkout; idle connections
    /// closed at once, checked-out ones close when returned; forgotten once empty.
    private var retired: [Entry] = []
    /// The loop's blocking-lookup seam (host names, passwd): answers come through the mailbox.
    let lookups: LoopLookups
    private var nextRequest: UInt64 = 1
    private var nextConnectionBase: UInt64
    let logger: Logger
    private var resetting: Set<ServerPool.ConnectionID> = []
    /// Resetting links whose server answered the reset's CommandComplete "DISCARD ALL".
    private var resetAnswered: Set<ServerPool.ConnectionID> = []
    /// This loop's audit queue when `audit = on` (pool_exhausted events).
    var audit: LoopAudit?
    private static let resetQuery = "DISCARD ALL"

    init(loop: EventLoop, runtime: RuntimeConfig, logger: Logger) {
        self.loop = loop
        self.runtime = runtime
        self.logger = logger
        lookups = LoopLookups(mailbox: loop.mailbox)
        nextConnectionBase = UInt64(loop.index) << 48 | 1
    }

    var now: Duration { .nanoseconds(Int64(loop.now().nanoseconds)) }

    private func settings() -> ServerPool.Settings { Self.settings(runtime) }

    static func settings(_ runtime: RuntimeConfig) -> ServerPool.Settings {
        let general = runtime.config.general
        return ServerPool.Settings(
            maxSize: general.pool.maxSize, minIdle: general.pool.minIdle,
            idleTimeout: general.pool.idleTimeout, maxLifetime: general.pool.maxLifetime,
            waitTimeout: general.pool.waitTimeout, reuse: general.serverReset == .discard, spareLinger: general.pool.spareLinger,
            spareMaxAge: general.pool.spareMaxAge)
    }

    // MARK: API for users

    @discardableResult
    func checkout(_ spec: UpstreamSpec, target: DatabaseTarget, password: Secret?, user: PoolUser) -> ServerPool.RequestID {
        let request = ServerPool.RequestID(rawValue: nextRequest)
        nextRequest += 1
        let entry = entries[spec] ?? {
            // Connection ids are unique per loop across all pools.
            let e = Entry(state: ServerPool(settings: settings(), idBase: nextConnectionBase), target: target, password: password)
            nextConnectionBase += 1 << 32
            entries[spec] = e
            return e
        }()
        // The caller resolved target and password from the current configuration: new
        // connections use them, so a reload's new credentials take effect.
        entry.target = target
        entry.password = password
        entry.users[request] = user
        // No one was waiting: an earlier exhaustion episode is over.
        if entry.state.waiterCount == 0 { entry.exhausted = false }
        perform(entry.state.checkoutRequested(request, now: now), entry: entry, spec: spec)
        if entry.users[request] != nil { noteWaiting(entry, spec: spec) }
        return request
    }

    /// Transaction pooling: the start-up values of a server session `spec`'s pool already has,
    /// idle or serving another client, for a login to be answered from (nil: the pool has none
    /// yet, so the login takes a connection of its own). PgBouncer answers a transaction-mode
    /// login from its pool's values the same way; the backend PID a client sees is no more
    /// its own here than after its first transaction (docs/TRANSACTION_POOLING.md), and the
    /// values are the server's for this very server user, database and start-up packet, as
    /// the pool is one per ``UpstreamSpec``. So a login never waits behind busy transactions
    /// for a connection it would hand back at once, nor opens one only to learn them.
    func loginValues(_ spec: UpstreamSpec) -> ServerLoginValues? {
        guard let entry = entries[spec] else { return nil }
        for link in entry.links.values where link.hasStarted { return ServerLoginValues(link) }
        return nil
    }

    /// Transaction pooling: what a client of `spec` asks for at each checkout — the request
    /// another client of the same spec, target, password and configuration already holds,
    /// else a new one.
    func transactionRequest(_ spec: UpstreamSpec, target: DatabaseTarget, password: Secret?,
                            runtime: RuntimeConfig) -> TransactionPoolRequest {
        if let known = transactionRequests[spec], known.target == target, known.password == password,
           known.cancelDestination.runtime === runtime {
            return known
        }
        let request = TransactionPoolRequest(spec: spec, target: target, password: password, runtime: runtime)
        transactionRequests[spec] = request
        return request
    }

    /// After a reload: where a session that logged in as `login` (the login of `user` to
    /// `database` under an older configuration) goes now — the target the configuration in
    /// force gives that login, when it is the same login (``ServerLogin/isSameLogin(as:)``):
    /// the session's next server connection follows its entry to a new host, as PgBouncer's
    /// clients follow a changed entry after RELOAD (its FAQ's failover recipe). nil when the
    /// entry is gone, another entry (`*`, a new exact one) now serves the database, or the
    /// login itself changed (server user, database, password, client certificate, identity
    /// mode): the session cannot carry on as it logged in, and its credentials go nowhere new.
    func currentTarget(of login: ServerLogin, database: String, user: String) -> DatabaseTarget? {
        // Only keys from the client's own SCRAM proof stand in for a password the configuration
        // does not name; a configured password it dropped does not.
        let passThrough = login.serverPassword?.revealSCRAMKeys() != nil ? login.serverPassword : nil
        guard let now = ServerLogin.resolve(runtime.config, database: database, user: user, passThrough: passThrough),
              login.isSameLogin(as: now) else { return nil }
        return now.target
    }

    /// Transaction pooling: what a client that logged in under `request` asks for now — the
    /// request itself, or after a reload the one for ``currentTarget(of:database:user:)``
    /// (nil: the session cannot go on).
    func currentTransactionRequest(_ request: TransactionPoolRequest, database: String, user: String) -> TransactionPoolRequest? {
        if request.cancelDestination.runtime === runtime { return request }
        let login = ServerLogin(target: request.target, serverUser: request.spec.serverUser, serverPassword: request.password,
                                mode: request.spec.readOnly ? .readOnly : .readWrite)
        guard let target = currentTarget(of: login, database: database, user: user) else { return nil }
        var spec = request.spec
        spec.route = target.route
        return transactionRequest(spec, target: target, password: request.password, runtime: runtime)
    }

    /// The loop's instance equal to `configuration` (made by the caller, dropped when one is
    /// known): idle sessions of one identity and mode hold one between them, not 104 bytes each.
    func sharedSessionConfiguration(_ configuration: SessionMachine.Configuration) -> SessionMachine.Configuration {
        let key = configuration.key
        if let known = sessionConfigurations[key] { return known }
        if sessionConfigurations.count >= Self.sessionConfigurationLimit { sessionConfigurations.removeAll() }
        sessionConfigurations[key] = configuration
        return configuration
    }

    /// Withdraws a checkout not answered yet. Found by its request ID among the loop's few
    /// pools, so the caller keeps no spec for it (an idle client holds none).
    func cancelCheckout(_ request: ServerPool.RequestID) {
        guard let (spec, entry) = entries.first(where: { $0.value.users[request] != nil }) else { return }
        entry.users[request] = nil
        perform(entry.state.checkoutCancelled(request), entry: entry, spec: spec)
    }

    /// A reload: pool settings (pool_*, server_reset) apply to every existing pool from now
    /// on; pools whose [databases] entry is gone drain (PgBouncer drops such pools the same
    /// way: no new clients, servers closed once released). Connections opened from now on use
    /// the new entry and credentials (the next checkout refreshes them); open ones carry on.
    func reloaded(_ newRuntime: RuntimeConfig) {
        let old = runtime
        runtime = newRuntime
        let fresh = settings()
        for (spec, entry) in entries {
            let current = newRuntime.config.database(named: spec.databaseEntry)
            let before = old.config.database(named: spec.databaseEntry)
            // Gone, now served by another entry (the `*` fallback, or a new exact one), or
            // pointing at another server: a new generation of connections starts; the old
            // pool drains.
            // Transaction mode hands connections on without a reset: a change of pool_mode
            // starts a new generation too.
            let modeChanged = (current?.poolMode ?? newRuntime.config.general.poolMode) != (before?.poolMode ?? old.config.general.poolMode)
            // A pool of a route the entry no longer has (opened for a login that raced an
            // earlier reload) goes too.
            if current?.entryName != entry.target.entryName || !Self.sameServer(current, before) || modeChanged
                || current?.route != spec.route {
                entries[spec] = nil
                transactionRequests[spec] = nil
                retired.append(entry)
                // Its waiters ask again, under the configuration now in force (a failover is
                // when clients wait: ending them would be the wrong answer).
                let waiting = entry.users
                entry.users = [:]
                for user in waiting.values { loop.execute(afterCurrentBatch: { user.poolEvent(.withdrawn) }) }
                perform(entry.state.shutdown(), entry: entry, spec: spec)
                logger.info("database entry \"\(spec.databaseEntry)\" was removed or changed: its server connections close as they are released")
            } else if entry.state.settings != fresh {
                perform(entry.state.settingsChanged(fresh, now: now), entry: entry, spec: spec)
            }
        }
        forgetEmptyRetired()
    }

    /// Whether connections made for `a` and `b` reach the same server the same way (the
    /// password is left out: sessions already authenticated stay valid, as in PostgreSQL).
    static func sameServer(_ a: DatabaseTarget?, _ b: DatabaseTarget?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return a.route == b.route && a.dbname == b.dbname && a.user == b.user && a.sslCert == b.sslCert && a.sslKey == b.sslKey
            && a.applicationName == b.applicationName
    }

    /// The pool holding this link: the current one for its spec, or a retired one; nil when
    /// no pool knows it any more (it was closed).
    private func entry(for link: UpstreamLink) -> Entry? {
        // The pool that opened it (a link never moves between pools; a reload retires the
        // whole pool), read from the link: no hashing of its spec at every release.
        guard let entry = link.poolEntry, entry.links[link.id] != nil else { return nil }
        return entry
    }

    private func forgetEmptyRetired() {
        retired.removeAll { $0.state.isIdleAndEmpty }
    }

    /// The user is done. `reusable`: the session was at rest (``ClientSession/isAtRest``, the
    /// one place that decides it); a link whose server went away is never reused.
    func checkin(_ link: UpstreamLink, reusable: Bool) {
        guard let entry = entry(for: link) else { return link.close() }
        link.owner = self
        link.leg?.owner = link
        // The server ended the session (``ClientSession`` saw its leg close: FATAL, shutdown,
        // pg_terminate_backend): the pool hears it as a server close, which holds spares back.
        if link.leg?.isClosed ?? true {
            entry.links[link.id] = nil
            link.close()
            return perform(entry.state.connectionClosed(link.id, now: now), entry: entry, spec: link.spec)
        }
        perform(entry.state.connectionReturned(link.id, reusable: reusable && link.isReady, now: now), entry: entry, spec: link.spec)
    }

    /// Transaction pooling: the user is done with the link for now; it was at rest and
    /// unpinned (``ClientSession/releaseServerIfDone()``), so it goes back without a reset.
    func release(_ link: UpstreamLink) {
        guard let entry = entry(for: link) else { return link.close() }
        link.owner = self
        link.leg?.owner = link
        guard link.isReady else {
            return perform(entry.state.connectionReturned(link.id, reusable: false, now: now), entry: entry, spec: link.spec)
        }
        perform(entry.state.connectionReleased(link.id, now: now), entry: entry, spec: link.spec)
    }

    /// Housekeeping from the loop's sweeper.
    func tick() {
        for (spec, entry) in entries {
            perform(entry.state.tick(now: now), entry: entry, spec: spec)
            if entry.state.isIdleAndEmpty {
                entries[spec] = nil
                transactionRequests[spec] = nil
            }
        }
        for entry in retired { perform(entry.state.tick(now: now), entry: entry, spec: nil) }
        forgetEmptyRetired()
    }

    func releaseIdleBuffers() {
        for entry in Array(entries.values) + retired {
            for (id, link) in entry.links where !resetting.contains(id) && link.owner === self { link.leg?.releaseIdleBuffers() }
        }
    }

    func shutdown() {
        for (spec, entry) in entries { perform(entry.state.shutdown(), entry: entry, spec: spec) }
        for entry in retired { perform(entry.state.shutdown(), entry: entry, spec: nil) }
    }

    // MARK: Actions

    /// `spec`: nil for a retired pool (closed: it never opens connections).
    private func perform(_ actions: [ServerPool.Action], entry: Entry, spec: UpstreamSpec?) {
        for action in actions {
            switch action {
            case .openConnection(let id):
                guard let spec else { continue }
                let link = UpstreamLink(id: id, spec: spec, target: entry.target, password: entry.password, loop: loop, runtime: runtime,
                                        lookups: lookups)
                link.owner = self
                link.poolEntry = entry
                entry.links[id] = link
                link.start()
            case .handOver(let id, let request, let check):
                guard let link = entry.links[id], let user = entry.users.removeValue(forKey: request) else {
                    // The waiter left meanwhile: give the connection back.
                    if let link = entry.links[id] { perform(entry.state.connectionReturned(id, reusable: link.isReady, now: now), entry: entry, spec: spec) }
                    continue
                }
                if check && !Self.looksHealthy(link) {
                    entry.links[id] = nil
                    link.close()
                    entry.users[request] = user
                    perform(entry.state.connectionClosed(id, now: now), entry: entry, spec: spec)
                    perform(entry.state.checkoutRequested(request, now: now), entry: entry, spec: spec)
                    continue
                }
                // After the batch: never inside the caller's own checkout, or inside another
                // session's checkin. A user that left meanwhile gives the link back.
                loop.execute(afterCurrentBatch: { user.poolEvent(.granted(link)) })
            case .resetConnection(let id):
                guard let link = entry.links[id], let leg = link.leg else { continue }
                resetting.insert(id)
                link.preparedStatements = .init()
                link.appliedSettings = [:]
                var query = ByteBuffer()
                FrontendMessage.query(Self.resetQuery).encode(into: &query)
                leg.send(query)
            case .closeConnection(let id):
                entry.links.removeValue(forKey: id)?.close()
            case .failRequest(let request, let failure):
                guard let user = entry.users.removeValue(forKey: request) else { continue }
                let fields = Self.fields(for: failure, database: entry.target.name)
                if failure == .waitTimeout {
                    let exhaustion = Self.exhaustion(entry, spec: spec)
                    loop.execute(afterCurrentBatch: { user.poolEvent(.waitTimedOut(fields, exhaustion)) })
                } else {
                    loop.execute(afterCurrentBatch: { user.poolEvent(.refused(fields)) })
                }
            }
        }
    }

    /// Before reuse: the server must not have closed or sent anything while idle.
    private static func looksHealthy(_ link: UpstreamLink) -> Bool {
        guard link.isReady, let leg = link.leg, !leg.isClosed, leg.inbound.readableBytes == 0 else { return false }
        // Nothing to read and no EOF: a byte, EOF or an error all disqualify it.
        if case .wouldBlock? = try? Socket.peekByte(leg.fd) { return true }
        return false
    }

    private static func fields(for failure: ServerPool.PoolFailure, database: String) -> ErrorFields {
        switch failure {
        case .waitTimeout:
            .error(sqlState: SQLState.connectionFailure, message: "no server connection became free for database \"\(database)\" within pool_wait_timeout", severity: "FATAL")
        case .connectFailed(let reason):
            UpstreamStartupMachine.connectionError(database: database, reason: reason)
        case .poolClosed:
            .error(sqlState: SQLState.adminShutdown, message: "terminating connection due to administrator command", severity: "FATAL")
        }
    }

    // MARK: UpstreamLinkOwner (links the pool holds: opening, idle, resetting)

    func linkEvent(_ link: UpstreamLink, _ event: UpstreamLinkEvent) {
        switch event {
        case .ready: linkReady(link)
        case .failed(let fields): linkFailed(link, fields)
        case .received: linkReceivedBytes(link)
        case .drained: break
        case .closed: linkClosed(link)
        }
    }

    private func linkReady(_ link: UpstreamLink) {
        guard let entry = entry(for: link) else { return link.close() }
        perform(entry.state.connectionOpened(link.id, now: now), entry: entry, spec: link.spec)
    }

    private func linkFailed(_ link: UpstreamLink, _ fields: ErrorFields) {
        guard let entry = entry(for: link) else { return }
        entry.links[link.id] = nil
        let reason = fields.message ?? "connection failed"
        logger.warning("server connection failed: \(reason)")
        // The server's own error (e.g. 3D000, 28P01) reaches the waiter unchanged.
        let actions = entry.state.connectionFailedToOpen(link.id, reason: reason, now: now)
        for action in actions {
            if case .failRequest(let request, _) = action, let user = entry.users.removeValue(forKey: request) {
                // After the batch, as every answer: this runs inside the link's report.
                loop.execute(afterCurrentBatch: { user.poolEvent(.refused(fields)) })
            }
        }
    }

    private func linkReceivedBytes(_ link: UpstreamLink) {
        guard let leg = link.leg, let entry = entry(for: link) else { return }
        guard resetting.contains(link.id) else {
            // Anything from an idle server (a notice, a FATAL before it closes) disqualifies it.
            resetting.remove(link.id)
            entry.links[link.id] = nil
            link.close()
            perform(entry.state.connectionClosed(link.id, now: now), entry: entry, spec: link.spec)
            return
        }
        // Only the reset's own answer is accepted: ParameterStatus and notices, CommandComplete
        // "DISCARD ALL", then ReadyForQuery idle. Anything else — rows, another command's tag,
        // a ReadyForQuery before the tag — means the server was still answering something of
        // the previous client's, and the connection is not reused.
        let decoder = FrameDecoder(maxMessageLength: 1 << 20)
        func finishReset(success: Bool) {
            resetting.remove(link.id)
            resetAnswered.remove(link.id)
            perform(entry.state.connectionResetCompleted(link.id, success: success, now: now), entry: entry, spec: link.spec)
        }
        while let frame = try? decoder.peekFrame(in: leg.inbound), leg.inbound.readableBytes >= frame.totalLength {
            guard let message = try? BackendMessage.decode(frame: frame, from: &leg.inbound) else { return finishReset(success: false) }
            switch message {
            case .parameterStatus(let name, let value):
                if let index = link.parameters.firstIndex(where: { $0.0 == name }) { link.parameters[index].1 = value } else { link.parameters.append((name, value)) }
            case .noticeResponse:
                continue
            case .commandComplete(let tag) where tag == Self.resetQuery && !resetAnswered.contains(link.id):
                resetAnswered.insert(link.id)
            case .readyForQuery(let status):
                return finishReset(success: status == .idle && resetAnswered.contains(link.id) && leg.inbound.readableBytes == 0)
            default:
                return finishReset(success: false)
            }
        }
    }

    private func linkClosed(_ link: UpstreamLink) {
        resetting.remove(link.id)
        resetAnswered.remove(link.id)
        guard let entry = entry(for: link) else { return }
        entry.links[link.id] = nil
        perform(entry.state.connectionClosed(link.id, now: now), entry: entry, spec: link.spec)
        forgetEmptyRetired()
    }
}
