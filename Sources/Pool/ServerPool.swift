import Wire

/// Times are monotonic-clock readings expressed as a `Duration` since an arbitrary origin
/// (the driver passes the event loop's clock), so the pool itself never reads a clock.
///
/// Pool of upstream connections (session mode: one per client session, returned with a reset
/// or closed; transaction mode: released at rest without a reset, ``connectionReleased(_:now:)``) for one key (database entry, server role and
/// startup parameters), as PgBouncer keeps one pool per database/user pair. Pure: the driver
/// tells it what happened and when, and performs the actions it returns. Used by client
/// sessions and by internal users (the backup module) alike: a checkout is a checkout.
public struct ServerPool: Sendable {
    public struct Settings: Sendable, Equatable {
        public var maxSize: Int
        public var minIdle: Int
        public var idleTimeout: Duration?
        public var maxLifetime: Duration?
        public var waitTimeout: Duration
        /// Whether a returned connection may serve another checkout (server_reset=discard) or
        /// must be closed (server_reset=close, spares are then opened ahead to keep connects fast).
        public var reuse: Bool
        /// After a failed connect, spares are not opened again for this long (PgBouncer's
        /// server_login_retry), so an unreachable server is not hammered every sweep. Connects a
        /// client is waiting for are still attempted: that client deserves the real error.
        public var spareRetryDelay: Duration
        /// How long spares are kept after the pool's last user left (pool_spare_linger). Kept
        /// well under the 5 s PostgreSQL's DROP DATABASE, ALTER DATABASE RENAME and CREATE
        /// DATABASE … TEMPLATE wait for other sessions to leave, so a spare never makes them fail.
        public var spareLinger: Duration
        /// A spare (a connection no user has had) older than this is closed, not handed out,
        /// and another opened if one is still wanted (pool_spare_max_age; nil: up to
        /// maxLifetime). PostgreSQL checks a login (the role's LOGIN and VALID UNTIL, the
        /// CONNECT privilege) and applies the role's and database's settings when the session
        /// starts: a spare's are those of the moment it was opened, so its age bounds how long
        /// `ALTER ROLE … NOLOGIN` or `ALTER ROLE … SET` goes unnoticed by new clients (found
        /// in review).
        public var spareMaxAge: Duration?

        public init(maxSize: Int, minIdle: Int, idleTimeout: Duration?, maxLifetime: Duration?, waitTimeout: Duration, reuse: Bool,
                    spareRetryDelay: Duration = .seconds(15), spareLinger: Duration = .seconds(1), spareMaxAge: Duration? = nil) {
            self.maxSize = maxSize
            self.minIdle = minIdle
            self.idleTimeout = idleTimeout
            self.maxLifetime = maxLifetime
            self.waitTimeout = waitTimeout
            self.reuse = reuse
            self.spareRetryDelay = spareRetryDelay
            self.spareLinger = spareLinger
            self.spareMaxAge = spareMaxAge
        }
    }

    public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt64
        public var description: String { "server#\(rawValue)" }
    }

    public struct RequestID: Hashable, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
    }

    public enum Action: Equatable, Sendable {
        /// Start a new server connection (connect, TLS, authenticate) and report back.
        case openConnection(ConnectionID)
        /// Give this ready connection to this waiter; run the health check first if `check`.
        case handOver(ConnectionID, to: RequestID, check: Bool)
        /// Reset the connection (DISCARD ALL) before it goes back to the idle list.
        case resetConnection(ConnectionID)
        case closeConnection(ConnectionID)
        case failRequest(RequestID, PoolFailure)
    }

    public enum PoolFailure: Error, Equatable, Sendable {
        /// No connection became free within pool_wait_timeout (PgBouncer: query_wait_timeout).
        case waitTimeout
        /// Opening a server connection failed; the waiter that triggered it gets the reason.
        case connectFailed(String)
        case poolClosed
    }

    enum ConnectionState: Equatable {
        case opening
        case idle(since: Duration)
        case checkedOut(RequestID)
        case resetting
    }

    struct Connection {
        var state: ConnectionState
        let openedAt: Duration
        /// Never handed to a user yet: a spare opened ahead of demand (or for a waiter that
        /// left). Closed once the pool is cold, whatever pool_idle_timeout says.
        var unused = true
    }

    struct Waiter {
        let id: RequestID
        let deadline: Duration
    }

    /// Changed in place by a reload (``settingsChanged(_:now:)``): new checkouts use the new values.
    public private(set) var settings: Settings
    private var connections: [ConnectionID: Connection] = [:]
    /// Idle connections, most recently used last (LIFO reuse keeps the hot ones warm and lets
    /// the cold ones reach idle_timeout, as PgBouncer's server_round_robin=0).
    private var idle: [ConnectionID] = []
    private var waiters = FIFOQueue<Waiter>()
    /// Connections being opened for a specific waiter, so a connect error reaches that waiter.
    private var openingFor: [ConnectionID: RequestID] = [:]
    private var nextConnection: UInt64
    private var closed = false
    private var sparesBlockedUntil: Duration?
    /// When the pool last had a user (a checkout asked for, a connection given back): spares
    /// are kept only while it has users and for pool_spare_linger after the last one left.
    private var lastUse: Duration?

    public init(settings: Settings, idBase: UInt64 = 1) {
        self.settings = settings
        nextConnection = idBase
    }

    public var connectionCount: Int { connections.count }
    public var idleCount: Int { idle.count }
    public var waiterCount: Int { waiters.count }
    public var isIdleAndEmpty: Bool { connections.isEmpty && waiters.isEmpty }

    /// A connection idle this long is checked before it is handed out (``Action/handOver``):
    /// its loop watches it for reading while idle, so anything the server sent or a close is
    /// seen within a loop iteration, and only one that went idle a while ago is worth the
    /// extra system call per checkout (PgBouncer's server_check_delay, 30 s, for its query).
    public static let healthCheckAfterIdle: Duration = .seconds(1)

    // MARK: Events

    public mutating func checkoutRequested(_ request: RequestID, now: Duration) -> [Action] {
        if closed { return [.failRequest(request, .poolClosed)] }
        lastUse = now
        var actions: [Action] = []
        // Idle connections past their lifetime are closed here rather than handed out; the
        // rest of the idle housekeeping (pool_idle_timeout, cold spares) is the sweeper's
        // (``tick(now:)``), as PgBouncer's janitor: a walk over every idle connection at
        // every checkout costs more than the checkout itself.
        while let last = idle.last, pastLifetime(last, now: now) || staleSpare(last, now: now) {
            idle.removeLast()
            connections[last] = nil
            actions.append(.closeConnection(last))
        }
        if let connection = idle.popLast() {
            let check: Bool
            if case .idle(let since)? = connections[connection]?.state { check = since + Self.healthCheckAfterIdle <= now } else { check = true }
            connections[connection]?.state = .checkedOut(request)
            connections[connection]?.unused = false
            actions.append(.handOver(connection, to: request, check: check))
            topUpSpares(now: now, into: &actions)
            return actions
        }
        waiters.append(Waiter(id: request, deadline: now + settings.waitTimeout))
        if openingCount < waiters.count && connections.count < settings.maxSize {
            let id = open(now: now)
            openingFor[id] = request
            actions.append(.openConnection(id))
        }
        return actions
    }

    /// A waiter gave up (its client left) before it was served.
    public mutating func checkoutCancelled(_ request: RequestID) -> [Action] {
        waiters.removeAll { $0.id == request }
        for (connection, waiter) in openingFor where waiter == request { openingFor[connection] = nil }
        return []
    }

    public mutating func connectionOpened(_ id: ConnectionID, now: Duration) -> [Action] {
        guard connections[id] != nil else { return [.closeConnection(id)] }
        openingFor[id] = nil
        return becameAvailable(id, now: now, check: false)
    }

    public mutating func connectionFailedToOpen(_ id: ConnectionID, reason: String, now: Duration) -> [Action] {
        connections[id] = nil
        sparesBlockedUntil = now + settings.spareRetryDelay
        let waiter = openingFor.removeValue(forKey: id) ?? waiters.first?.id
        guard let waiter else { return [] }
        waiters.removeAll { $0.id == waiter }
        return [.failRequest(waiter, .connectFailed(reason))]
    }

    /// The user is done with the connection. `reusable` is false when it is not idle at a
    /// message boundary (in a transaction, mid-COPY, in a failed state): it is then closed.
    public mutating func connectionReturned(_ id: ConnectionID, reusable: Bool, now: Duration) -> [Action] {
        guard connections[id] != nil else { return [] }
        lastUse = now
        var actions: [Action] = []
        // Over a lowered pool_max_size a returned connection closes instead of going idle.
        if reusable && settings.reuse && !closed && !pastLifetime(id, now: now) && connections.count <= settings.maxSize {
            connections[id]?.state = .resetting
            actions.append(.resetConnection(id))
        } else {
            connections[id] = nil
            actions.append(.closeConnection(id))
            serveWaitersWithNewConnections(now: now, into: &actions)
        }
        topUpSpares(now: now, into: &actions)
        return actions
    }

    public mutating func connectionResetCompleted(_ id: ConnectionID, success: Bool, now: Duration) -> [Action] {
        guard connections[id] != nil else { return [] }
        if !success {
            connections[id] = nil
            var actions: [Action] = [.closeConnection(id)]
            serveWaitersWithNewConnections(now: now, into: &actions)
            return actions
        }
        return becameAvailable(id, now: now, check: false)
    }

    /// The server went away (closed, FATAL, failed health check) while the pool held it or a
    /// user had it. The server ending a session is often the start of more (shutdown,
    /// pg_terminate_backend of a database's sessions, DROP DATABASE … WITH (FORCE)): no spare
    /// is opened for spareRetryDelay, as after a failed connect. Waiters still get a try.
    public mutating func connectionClosed(_ id: ConnectionID, now: Duration) -> [Action] {
        guard let connection = connections.removeValue(forKey: id) else { return [] }
        if case .checkedOut = connection.state { lastUse = now }
        idle.removeAll { $0 == id }
        sparesBlockedUntil = now + settings.spareRetryDelay
        var actions: [Action] = []
        serveWaitersWithNewConnections(now: now, into: &actions)
        topUpSpares(now: now, into: &actions)
        return actions
    }

    /// Transaction pooling: the user is done with the connection for now, at rest outside a
    /// transaction block with nothing of its own left on it, so it serves the next checkout
    /// as it is — no reset (PgBouncer runs server_reset_query only in session mode) — unless
    /// it is past its lifetime, over a lowered pool_max_size or the pool is closed.
    public mutating func connectionReleased(_ id: ConnectionID, now: Duration) -> [Action] {
        guard connections[id] != nil else { return [] }
        lastUse = now
        guard closed || pastLifetime(id, now: now) || connections.count > settings.maxSize else {
            // Handed straight to a waiter without the health check: the session released it
            // at rest a moment ago, as PgBouncer reuses a server released within
            // server_check_delay unchecked. One it serves from idle later is checked.
            return becameAvailable(id, now: now, check: false)
        }
        connections[id] = nil
        var actions: [Action] = [.closeConnection(id)]
        serveWaitersWithNewConnections(now: now, into: &actions)
        topUpSpares(now: now, into: &actions)
        return actions
    }

    /// Periodic housekeeping (one sweeper per loop): wait timeouts, idle timeouts, lifetimes, spares.
    public mutating func tick(now: Duration) -> [Action] {
        var actions: [Action] = []
        let expired = waiters.removeAll { $0.deadline <= now }
        for waiter in expired { actions.append(.failRequest(waiter.id, .waitTimeout)) }
        expireIdle(now: now, into: &actions)
        topUpSpares(now: now, into: &actions)
        return actions
    }

    /// A reload changed the settings: they apply from now on. Idle connections over a lowered
    /// pool_max_size close at once (checked-out ones close when returned); waiters a raised
    /// pool_max_size makes room for get connections; spares follow pool_min_idle. A waiter
    /// keeps the deadline it was given.
    public mutating func settingsChanged(_ new: Settings, now: Duration) -> [Action] {
        settings = new
        guard !closed else { return [] }
        var actions: [Action] = []
        while connections.count > settings.maxSize, !idle.isEmpty {
            let id = idle.removeFirst()
            connections[id] = nil
            actions.append(.closeConnection(id))
        }
        expireIdle(now: now, into: &actions)
        serveWaitersWithNewConnections(now: now, into: &actions)
        topUpSpares(now: now, into: &actions)
        return actions
    }

    /// Stop serving: close idle connections, fail waiters; checked-out ones close on return.
    public mutating func shutdown() -> [Action] {
        closed = true
        var actions: [Action] = waiters.elements.map { .failRequest($0.id, .poolClosed) }
        waiters.removeAll()
        for id in idle {
            connections[id] = nil
            actions.append(.closeConnection(id))
        }
        idle.removeAll()
        return actions
    }

    // MARK: Internals

    /// Connections being opened (each will serve the first waiter, or become idle).
    public var openingCount: Int {
        connections.values.reduce(0) { $0 + ($1.state == .opening ? 1 : 0) }
    }

    private mutating func open(now: Duration) -> ConnectionID {
        let id = ConnectionID(rawValue: nextConnection)
        nextConnection += 1
        connections[id] = Connection(state: .opening, openedAt: now)
        return id
    }

    private mutating func becameAvailable(_ id: ConnectionID, now: Duration, check: Bool) -> [Action] {
        if closed {
            connections[id] = nil
            return [.closeConnection(id)]
        }
        if let waiter = waiters.popFirst() {
            connections[id]?.state = .checkedOut(waiter.id)
            connections[id]?.unused = false
            return [.handOver(id, to: waiter.id, check: check)]
        }
        connections[id]?.state = .idle(since: now)
        idle.append(id)
        return []
    }

    private mutating func serveWaitersWithNewConnections(now: Duration, into actions: inout [Action]) {
        while openingCount < waiters.count && connections.count < settings.maxSize {
            actions.append(.openConnection(open(now: now)))
        }
    }

    private mutating func topUpSpares(now: Duration, into actions: inout [Action]) {
        guard !closed else { return }
        if let until = sparesBlockedUntil {
            if now < until { return }
            sparesBlockedUntil = nil
        }
        let wanted = sparesWanted(now: now)
        // Enough idle ones without counting those opening (a walk over every connection).
        guard idle.count - waiters.count < wanted else { return }
        while idle.count + openingCount - waiters.count < wanted && connections.count < settings.maxSize {
            actions.append(.openConnection(open(now: now)))
        }
    }

    /// pool_min_idle spares are wanted while the pool is in use: while a user holds or waits
    /// for a connection, and for pool_spare_linger after the last one left. Then the pool is
    /// cold and its spares close at the next tick, so the default of one warm spare never holds
    /// a backend for a database nobody is using through Portcullis: a DROP DATABASE issued
    /// right after the last client left waits (up to 5 s, procarray.c CountOtherDBBackends)
    /// for that spare to go, and succeeds.
    public func sparesWanted(now: Duration) -> Int {
        guard settings.minIdle > 0, let lastUse else { return 0 }
        if !waiters.isEmpty || now < lastUse + settings.spareLinger || checkedOutCount > 0 { return settings.minIdle }
        return 0
    }

    /// Connections a user holds.
    public var checkedOutCount: Int {
        connections.values.reduce(0) { count, connection in
            if case .checkedOut = connection.state { return count + 1 }
            return count
        }
    }

    private func pastLifetime(_ id: ConnectionID, now: Duration) -> Bool {
        guard let lifetime = settings.maxLifetime, let connection = connections[id] else { return false }
        return connection.openedAt + lifetime <= now
    }

    private func staleSpare(_ id: ConnectionID, now: Duration) -> Bool {
        guard let age = settings.spareMaxAge, let connection = connections[id], connection.unused else { return false }
        return connection.openedAt + age <= now
    }

    private mutating func expireIdle(now: Duration, into actions: inout [Action]) {
        // Oldest first; while the pool is in use keep min_idle spares even when idle long,
        // unless past their lifetime. A cold pool closes its spares (connections no user has
        // had) at once; connections users gave back (server_reset = discard, transaction
        // pooling) stay until pool_idle_timeout as before.
        // Runs at every checkout: nothing idle (clients waiting, the busy case) costs nothing.
        guard !idle.isEmpty else { return }
        var kept: [ConnectionID] = []
        let wanted = sparesWanted(now: now)
        var surplus = idle.count - wanted
        for id in idle {
            guard let connection = connections[id], case .idle(let since) = connection.state else { continue }
            let idleTooLong = settings.idleTimeout.map { since + $0 <= now } ?? false
            let coldSpare = wanted == 0 && connection.unused
            if pastLifetime(id, now: now) || staleSpare(id, now: now) || ((idleTooLong || coldSpare) && surplus > 0) {
                connections[id] = nil
                actions.append(.closeConnection(id))
                surplus -= 1
            } else {
                kept.append(id)
            }
        }
        idle = kept
    }
}
