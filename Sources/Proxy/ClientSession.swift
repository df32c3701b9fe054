import Session
import EventLoop
import CPortcullisShims
import TLS
import Wire
import Auth
import Config
import Logging
import Pool
import Glibc
import Synchronization

/// Process-wide pieces every loop shares.
public final class ProxyShared: Sendable {
    public let cancelRegistry = CancelRegistry()
    public let catalogs = CatalogStore()
    public let startupLimits = StartupLimiter()
    public let authFailures = AuthFailureTracker()
    public let identityConnections = IdentityConnections()
    /// Classifier threads for read-only statements the loops' caches do not know: texts up to
    /// ``ClassifierBudget/everydayTextLimit``, and longer ones apart.
    let classifiers = ClassifierPool(name: "cls")
    let largeStatementClassifiers = ClassifierPool(name: "big", threadCount: 2)
    /// The internal backup endpoint's socket path as bound at start, nil when there is none.
    /// Fixed for the process: a reload that drops `internal_socket_directory` (or [backup])
    /// must not turn the still-listening socket into an open one.
    public let internalSocketPath: String?
    /// Transaction pooling: sessions pinned to their server connection so far (logged with each pin).
    let transactionPins = Atomic<UInt64>(0)
    /// `max_kept_statement_memory`: statement text all sessions keep, in all.
    let keptTexts = KeptTextBudget(limit: GeneralSettings().maxKeptStatementMemory)
    public init(internalSocketPath: String? = nil) { self.internalSocketPath = internalSocketPath }
}

/// One client connection and, once authenticated, its server connection: the shell that runs
/// the pure machines' actions against sockets, timers and TLS.
final class ClientSession: LegOwner {
    let loop: EventLoop
    let runtime: RuntimeConfig
    let shared: ProxyShared
    let client: Leg
    let sessionID: UInt64
    let pool: PoolManager
    let policy: LoopPolicy
    /// The established phase (trackers, transaction status, read-only gate and tripwire,
    /// statement lifecycle, catalog changes, cancel key, reuse at rest): set once the server
    /// session is ready; this class runs its actions.
    var session: SessionMachine?
    /// A read-only statement being classified off the loop; client messages wait behind it.
    var classifying: PendingClassification?
    /// This session's recent use of the everyday classifier threads.
    var classifierShare = ClassifierShare()
    /// The identity whose connection slot this session holds (``IdentityConnections``).
    var identitySlot: String?
    /// The [databases] entry the session is connected through (for its catalog snapshot).
    private(set) var databaseEntry = ""
    var link: UpstreamLink?
    /// A checkout asked for and not yet answered.
    var pendingCheckout: ServerPool.RequestID?
    // The two flags sit in the bytes the optional request ID (9 bytes) leaves before the next
    // eight-byte field: stored properties are laid out in declaration order.
    private var closeAfterFlush = false
    /// The session has ended: its legs are closing, and nothing more is done for it.
    private(set) var finished = false
    /// `pool_mode = transaction`: what a new checkout asks for (ClientSession+Transaction.swift).
    var transactionPool: TransactionPoolRequest?
    /// Transaction pooling: the proxy's own settings query under way (ClientSession+Settings.swift).
    var settingsExchange: SettingsExchange?
    /// Transaction pooling: the client's session-level settings, as last read from a server.
    var clientSettings: [String: String] = [:]
    /// Transaction pooling: server connections that refused the client's settings in a row, or
    /// captures that failed in a row (ClientSession+Settings.swift).
    var settingsApplyAttempts: UInt8 = 0
    var server: Leg? { link?.leg }
    /// Start-up's state while it runs; nil once the session is established.
    var startup: StartupPhase?
    /// The audit stream's per-session state; nil when `audit = off` (ClientSession+Audit.swift).
    var audit: SessionAudit?
    var cancelBinding: CancelRegistry.Binding?
    private(set) var lastClientActivity = MonotonicInstant(nanoseconds: 0)
    /// The session's log context (SessionLogger.swift): its fields are added per line.
    private(set) var logger: SessionLogger
    /// The loop that made the session (LoopWorker), told when it authenticates and ends.
    weak var host: (any SessionHost)?
    /// Refused statements of a read-only session: logged a few times, then counted. Made at
    /// the first refusal: inline it would be 49 bytes in every session, idle or not.
    var refusalLog: RefusalLog?
    /// Established: the start-up machine handed over (and has been dropped).
    var isEstablished: Bool { startup?.machine.isEstablished ?? true }

    init(loop: EventLoop, fd: Int32, remote: SocketAddress, runtime: RuntimeConfig, shared: ProxyShared, pool: PoolManager,
         policy: LoopPolicy, sessionID: UInt64, prestart: SessionPrestart? = nil) {
        self.loop = loop
        self.pool = pool
        self.policy = policy
        self.runtime = runtime
        self.shared = shared
        self.sessionID = sessionID
        client = Leg(loop: loop, fd: fd, name: "client", connecting: false)
        let transport: ClientTransportKind = remote.isUnix ? .unixSocket : .tcp(remoteHost: remote.host)
        var machine = ClientStartupMachine(snapshot: runtime.snapshot, transport: transport, mockSeed: runtime.mockSeed,
                                           access: prestart?.access ?? runtime.accessFiles.rules,
                                           peerUser: prestart?.peerUser)
        if remote.isUnix, let internalPath = shared.internalSocketPath, Self.localSocketPath(fd) == internalPath {
            // The identity as currently configured; with [backup] gone nobody is admitted
            // (no user name is empty: the startup machine refuses an empty one first).
            machine.onlyUser = runtime.config.backup?.identity ?? ""
        }
        startup = StartupPhase(machine, remote: remote)
        logger = SessionLogger(base: runtime.logger, session: sessionID, client: "\(remote)")
    }

    /// The path of the listening socket an accepted Unix-domain connection came in on
    /// (getsockname on an accepted AF_UNIX socket names the listener's address): tells the
    /// internal endpoint from the public sockets without threading a flag through the hand-off.
    static func localSocketPath(_ fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0, Int32(address.sun_family) == AF_UNIX else { return nil }
        return withUnsafeBytes(of: address.sun_path) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// SO_PEERCRED, for pg_hba.conf `peer` lines.
    static func peerUserName(_ fd: Int32) -> String? {
        var name = [CChar](repeating: 0, count: 256)
        guard pc_peer_user_name(fd, &name, name.count) == 0 else { return nil }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func start() throws(Errno) {
        client.owner = self
        client.peekFirstByte = startup?.machine.acceptsDirectTLS ?? false
        try client.register()
        auditConnected()
        startup?.loginTimer = loop.scheduleTimer(at: loop.now() + runtime.config.general.loginTimeout) { [weak self] in
            guard let self else { return }
            self.startup?.loginTimer = nil
            self.runStartup { $0.loginTimedOut() }
        }
    }

    // MARK: - Client startup actions

    /// One step of the start-up machine, and its action run; nothing once established.
    func runStartup(_ step: (inout ClientStartupMachine) -> ClientStartupMachine.Action) {
        guard let startup else { return }
        run(step(&startup.machine))
    }

    func run(_ action: ClientStartupMachine.Action) {
        switch action {
        case .none:
            break
        case .sendBytes(let bytes):
            client.send(bytes)
        case .sendSSLAcceptAndStartTLS:
            client.send(ByteBuffer(bytes: [UInt8(ascii: "S")]))
            startClientTLS(direct: false)
        case .startDirectTLS:
            startClientTLS(direct: true)
        case .sendAndClose(let bytes):
            client.send(bytes)
            finish(reason: nil, flushClient: true)
        case .closeSilently(let reason):
            logger.info("closing client connection: \(reason)")
            finish(reason: nil, flushClient: false)
        case .forwardCancel(let processID, let secretKey):
            forwardCancel(processID: processID, secretKey: secretKey)
        case .connectUpstream(let request):
            connectUpstream(request)
        case .sendBytesThenConnect(let bytes, let request):
            client.send(bytes)
            connectUpstream(request)
        case .refuseAuthentication(let bytes, let failure):
            refuseAuthentication(bytes, failure)
        case .lookUpVerifier(let user, let database):
            lookUpVerifier(user: user, database: database)
        case .deriveKeys(let derivation, let user):
            deriveKeys(derivation, user: user)
        }
    }

    /// The `auth_query` answer, on the loop, never inside the call that asked for it.
    func verifierArrived(_ verifier: ClientPasswordVerifier?) {
        startup?.verifierTicket = nil
        guard !finished else { return }
        client.readPaused = false
        runStartup { $0.verifierLookedUp(verifier) }
        // Refused (auth_failure_delay pauses reads itself) or ended.
        guard !finished, let machine = startup?.machine, !machine.isEstablished else { return }
        processClientStartupBytes()
    }

    private func startClientTLS(direct: Bool) {
        guard let context = runtime.serverTLS else {
            finish(reason: "TLS requested but not configured", flushClient: false)
            return
        }
        do {
            startup?.directTLS = direct
            client.startTLS(try TLSConnection(serverContext: context, fd: client.fd, direct: direct))
        } catch {
            finish(reason: error.message, flushClient: false)
        }
    }

    func processClientStartupBytes() {
        while !finished, let startup, !startup.machine.isEstablished {
            let before = client.inbound.readableBytes
            let action = startup.machine.bytesReceived(&client.inbound)
            let consumed = before != client.inbound.readableBytes
            if case .none = action, !consumed { break }
            run(action)
            if startup.machine.isAwaitingUpstream {
                // Whatever the client pipelines now waits in the socket, not in our memory.
                client.readPaused = true
                break
            }
        }
    }

    // MARK: - Upstream

    private func connectUpstream(_ request: UpstreamRequest) {
        logger.user = request.clientUser
        logger.database = request.databaseName
        let limit = runtime.config.general.identityConnectionLimit(
            override: runtime.config.identities[request.clientUser]?.maxConnections)
        guard shared.identityConnections.reserve(request.clientUser, limit: limit) else {
            return runStartup { $0.connectionLimitReached() }
        }
        identitySlot = request.clientUser
        if let remote = startup?.remote { host?.sessionAuthenticated(self, remote: remote) }
        databaseEntry = CatalogStore.key(entry: request.database.entryName, database: request.databaseName)
        auditAuthenticated(request)
        startup?.upstreamRequest = request
        checkOutFirstServer(request)
    }

    /// The login's server connection: asked for once authenticated, and again if a reload
    /// retired the pool while the client waited (``PoolEvent/withdrawn``).
    func checkOutFirstServer(_ request: UpstreamRequest) {
        var target = request.database
        if runtime !== pool.runtime {
            // A reload landed while the client logged in: its server connection comes from the
            // configuration now in force, as the same login or not at all.
            let login = ServerLogin(target: target, serverUser: request.serverUser, serverPassword: request.serverPassword,
                                    mode: request.mode)
            guard let current = pool.currentTarget(of: login, database: request.databaseName, user: request.clientUser) else {
                return upstreamFailed(Self.entryWithdrawnError(database: request.databaseName))
            }
            target = current
        }
        // The pool's configuration, the one the target comes from (the session's own unless a
        // reload landed during the login).
        let general = pool.runtime.config.general
        let sessionConfiguration = pool.sharedSessionConfiguration(SessionMachine.Configuration(
            maxMessageSize: general.maxMessageSize,
            readOnly: request.mode == .readOnly
                ? .init(identity: request.clientUser, maxStatementSize: general.readOnlyMaxStatementSize, tokens: Self.refusalToken)
                : nil,
            followsStatements: audit != nil, parameterLogging: auditParameterLogging,
            transactionPooling: (target.poolMode ?? general.poolMode) == .transaction
                ? .init(refusesPinning: (target.transactionPin ?? general.transactionPin) == .refuse, tokens: Self.refusalToken,
                        maxPreparedStatements: general.maxPreparedStatements, maxClassifiedSize: general.readOnlyMaxStatementSize)
                : nil,
            keptTexts: shared.keptTexts))
        let spec = UpstreamSpec(databaseEntry: target.name, dbname: target.dbname ?? request.databaseName,
                                serverUser: request.serverUser, parameters: request.parameters, route: target.route,
                                transactionPooled: sessionConfiguration.transactionPooling != nil, readOnly: request.mode == .readOnly,
                                credentials: UpstreamSpec.credentialDigest(target: target, password: request.serverPassword))
        startup?.sessionConfiguration = sessionConfiguration
        // The pool's configuration (its TLS contexts): the one the target was resolved under.
        transactionPool = sessionConfiguration.transactionPooling == nil ? nil
            : pool.transactionRequest(spec, target: target, password: request.serverPassword, runtime: pool.runtime)
        // Transaction pooling: answered from a server session the pool has, when it has one.
        // After this batch, as a grant, never from inside this call.
        if let transactionPool, let values = pool.loginValues(transactionPool.spec) {
            return loop.execute(afterCurrentBatch: { self.loginAnsweredFromPool(values) })
        }
        // Granted or refused after this batch, never from inside this call.
        pendingCheckout = pool.checkout(spec, target: target, password: request.serverPassword, user: self)
    }

    /// A reload removed or replaced the session's [databases] entry, or changed its login
    /// (server user, database, password, certificate, identity mode): no server of its own is
    /// left. The message names both places a DBA would look, the entry and the identity. Ended as
    /// PostgreSQL ends a session an administrator terminates (57P01).
    static func entryWithdrawnError(database: String) -> ErrorFields {
        .error(sqlState: SQLState.adminShutdown,
               message: "terminating connection because a reload removed or changed the [databases] entry or the identity of this login to database \"\(database)\"",
               severity: "FATAL")
    }

    func upstreamFailed(_ fields: ErrorFields) {
        logger.warning("upstream connection failed: \(fields.message ?? "")")
        runStartup { $0.upstreamFailed(fields) }
    }

    // MARK: - Forwarding (session established)

    /// Passes the client's bytes on as the session machine says, message by message, in
    /// order. Stops while it holds client messages (a classification, pending refusals) or the
    /// audit queue is full; each of those resumes it.
    func forwardClientBytes() {
        guard session != nil, !finished else { return }
        guard settingsExchange == nil else {
            // Transaction pooling's own query first; meanwhile the client is held to the bound.
            client.readPaused = client.inbound.readableBytes > runtime.config.general.outboundBufferLimit
            return
        }
        // Transaction pooling between transactions: a server connection first.
        guard let server else { return acquireServer() }
        while client.inbound.readableBytes > 0 && !auditBlocked {
            guard let action = session?.clientStep(in: client.inbound, now: Int64(loop.batchNow.nanoseconds)),
                  perform(action, server: server) else { break }
        }
        takeSessionEvents()
        if finished { return }
        client.inbound.discardReadBytes()
        client.releaseLargeBuffers()
        updateClientReadPause()
    }

    /// Backpressure on the client: stop reading it while the server is not taking its bytes,
    /// or while complete messages wait here (classification, pending refusals) and more than
    /// the limit is buffered. A message still arriving is always read to its end.
    func updateClientReadPause() {
        guard !finished else { return }
        let limit = runtime.config.general.outboundBufferLimit
        let waiting = session?.inPlace { $0.isHoldingClientMessages } == true
        client.readPaused = (server?.outbound.readableBytes ?? 0) > limit || (waiting && client.inbound.readableBytes > limit)
            || auditBlocked || session?.inPlace({ $0.termination }) != nil
    }

    /// Backpressure on the server: stop reading it while the client is not taking our bytes, or
    /// while audit events wait for room in a full queue (each CommandComplete of a long
    /// multi-statement Query is an event: reading on would pile them up here without bound).
    func updateServerReadPause() {
        server?.readPaused = client.outbound.readableBytes > runtime.config.general.outboundBufferLimit || auditBlocked
    }

    func forwardServerBytes() {
        if settingsExchange != nil { return continueSettingsExchange() }
        guard let server, session != nil, !finished else { return }
        while server.inbound.readableBytes > 0 {
            guard let action = session?.serverStep(in: server.inbound, now: Int64(loop.batchNow.nanoseconds)),
                  perform(action, server: server) else { break }
        }
        takeSessionEvents()
        if finished { return }
        server.inbound.discardReadBytes()
        server.releaseLargeBuffers()
        updateServerReadPause()
        // The client sent Terminate: nothing more of its goes up, the session only ends.
        if session?.inPlace({ $0.termination }) != nil { return continueTermination() }
        // Replies may have resolved what the client's next messages waited for (pending
        // refusals, the bound on messages awaiting replies).
        if classifying == nil && client.inbound.readableBytes > 0 { forwardClientBytes() }
        releaseServerIfDone()
    }

    /// Runs one action of the session machine. False when the caller must stop asking for now
    /// (waiting, or the session ended).
    func perform(_ action: SessionMachine.Action, server: Leg) -> Bool {
        switch action {
        case .forwardToServer(let count):
            server.send(client.inbound.readableBytesView.prefix(count))
            client.inbound.moveReaderIndex(forwardBy: count)
            audit?.bytesIn += count
        case .replaceToServer(let consumed, let bytes):
            let log = refusalLog ?? RefusalLog()
            refusalLog = log
            log.limiter.log(to: logger, at: loop.now())
            server.send(bytes)
            client.inbound.moveReaderIndex(forwardBy: consumed)
            audit?.bytesIn += consumed
        case .rewriteToServer(let consumed, let bytes):
            server.send(bytes)
            client.inbound.moveReaderIndex(forwardBy: consumed)
            audit?.bytesIn += consumed
        case .discardFromClient(let count):
            client.inbound.moveReaderIndex(forwardBy: count)
            audit?.bytesIn += count
        case .forwardToClient(let count):
            client.send(server.inbound.readableBytesView.prefix(count))
            server.inbound.moveReaderIndex(forwardBy: count)
            audit?.bytesOut += count
        case .discardFromServer(let count):
            server.inbound.moveReaderIndex(forwardBy: count)
            audit?.bytesOut += count
        case .replaceToClient(let consumed, let bytes):
            client.send(bytes)
            server.inbound.moveReaderIndex(forwardBy: consumed)
            audit?.bytesOut += consumed
        case .classify(let request):
            return classify(request, server: server)
        case .releaseServer(let consumed):
            // Terminate with nothing owed: the client is leaving. The server connection goes
            // back to the pool (which resets or closes it), so the Terminate is not passed on;
            // replies still queued for the client are written first, as PostgreSQL sent them
            // before it read the Terminate.
            client.inbound.moveReaderIndex(forwardBy: consumed)
            server.flush()
            finish(reason: nil, flushClient: true)
            return false
        case .terminate(let consumed):
            // Terminate with replies owed (SessionMachine+Terminate.swift): nothing after it is
            // read, as PostgreSQL reads nothing after it; the session ends once they came.
            client.inbound.moveReaderIndex(forwardBy: consumed)
            client.inbound.clear()
            client.readPaused = true
            continueTermination()
            if !finished { scheduleTerminationDeadline() }
            return false
        case .close(let reason, let error):
            takeSessionEvents()
            client.inbound.clear()
            if let error {
                var out = ByteBuffer()
                BackendMessage.errorResponse(error).encode(into: &out)
                client.send(out)
            }
            finish(reason: reason, flushClient: true)
            return false
        case .wait:
            return false
        }
        return true
    }

    /// Statement outcomes (the audit stream) and catalog changes the session machine saw.
    func takeSessionEvents() {
        guard let events = session?.takeEvents() else { return }
        for event in events {
            switch event {
            case .statementFinished(let record): emitStatement(record)
            case .catalogChanged: shared.catalogs.catalogChanged()
            case .readOnlyBreached(let reason): logger.warning("read-only session ended: \(reason)")
            case .pinned(let reasons): notePinned(reasons)
            case .unpinned: logger.info("session no longer pinned to its server connection")
            case .textReading(let reading): audit?.textReading = reading
            }
        }
    }

    // MARK: - Cancel (55.2.7 Canceling Requests in Progress)

    private func forwardCancel(processID: Int32, secretKey: [UInt8]) {
        let found = CancelRegistry.Key(processID: processID, secretKey: secretKey).flatMap { shared.cancelRegistry.beginCancel($0) }
        auditCancelRequest(processID: processID, known: found != nil)
        guard let found else {
            // As PostgreSQL: an unknown key is ignored without a reply, and logged at debug
            // level only (postmaster.c processCancelRequest: DEBUG2), so that guessed keys sent
            // by the thousand do not flood the log (the audit stream records each).
            logger.debug("cancel request with unknown key ignored")
            return finish(reason: nil, flushClient: false)
        }
        // Transaction pooling between transactions: nothing runs for that client.
        guard let backend = found.backendProcessID else { return finish(reason: nil, flushClient: false) }
        // Counted in flight until PostgreSQL closes the connection: meanwhile the backend's
        // server connection serves nobody else (releaseServerIfDone, finish). The client's
        // connection closes only then too: the backend has been signalled, as when PostgreSQL
        // closes a cancel connection, and the client's next query cannot be the one cancelled.
        CancelForwarder.start(loop: loop, entry: found.entry, processID: backend, logger: logger.materialized,
                              lookups: pool.lookups, registry: shared.cancelRegistry) { [weak self] in
            guard let self, !self.finished else { return }
            self.finish(reason: nil, flushClient: false)
        }
    }

    // MARK: - Leg events (LegOwner.legEvent, Leg+Owners.swift)

    func legHandshakeCompleted(_ leg: Leg) {
        if leg === client, let tls = leg.tls {
            let clientCertificate = tls.verifiedPeerSubject
            startup?.clientCertificate = clientCertificate
            if let subject = clientCertificate {
                logger.clientCN = subject.commonName
            }
            let direct = startup?.directTLS ?? false
            runStartup { $0.tlsHandshakeCompleted(serverEndPoint: tls.serverEndPointHash, direct: direct,
                                                 alpnPostgreSQL: tls.negotiatedPostgreSQLALPN,
                                                 peerCertificate: clientCertificate) }
            if client.inbound.readableBytes > 0 { processClientStartupBytes() }
        }
    }

    func legHandshakeFailed(_ leg: Leg, reason: String) {
        guard leg === client else { return serverLost(reason: reason) }
        logger.info("client TLS handshake failed: \(reason)")
        auditTLSFailed(reason)
        finish(reason: nil, flushClient: false)
    }

    func legPeekedFirstByte(_ leg: Leg, byte: UInt8) {
        // 0x16 is a TLS handshake record: PostgreSQL 17's direct TLS (sslnegotiation=direct).
        if leg === client && byte == 0x16 { runStartup { $0.directTLSDetected() } }
    }

    // Once the server session is established its leg reports here too: the UpstreamLink that
    // made it has stepped out of the byte path (``serverConnectionGranted(_:)``).

    func legReceivedBytes(_ leg: Leg) {
        guard leg === client else { return forwardServerBytes() }
        lastClientActivity = loop.batchNow
        if isEstablished { forwardClientBytes() } else { processClientStartupBytes() }
    }

    func legDrained(_ leg: Leg) {
        guard leg === client else { return updateClientReadPause() }
        if closeAfterFlush { finish(reason: nil, flushClient: false); return }
        updateServerReadPause()
    }

    func legClosed(_ leg: Leg, reason: String?) {
        guard leg === client else { return serverLost(reason: reason) }
        if let reason { logger.info("client connection lost: \(reason)") }
        if session?.inPlace({ $0.termination }) == .afterReplies, link != nil {
            // The client sent Terminate and left: what it sent before runs to its end, as
            // PostgreSQL would run it (its replies are dropped); the session ends with it.
            logger.info("client gone after Terminate: waiting for the statements sent before it")
            // Its replies go nowhere now: a server paused behind a full client buffer must be
            // read again, or it would block in send and the session never end (found in review).
            updateServerReadPause()
            // (``scheduleTerminationDeadline()`` bounds the wait.)
            return
        }
        finish(reason: nil, flushClient: false)
    }

    // MARK: - Ending

    /// Ends the session. With `flushClient`, pending bytes to the client are written first.
    func finish(reason: String?, flushClient: Bool) {
        if let reason { logger.info("session closed: \(reason)") }
        if let identitySlot {
            shared.identityConnections.release(identitySlot)
            self.identitySlot = nil
        }
        takeSessionEvents()
        session?.inPlace { $0.releaseKeptTexts() }
        auditDisconnected()
        refusalLog?.limiter.logSummary(to: logger, at: loop.now())
        if let loginTimer = startup?.loginTimer { loop.cancelTimer(loginTimer); startup?.loginTimer = nil }
        abandonClassification()
        cancelStartupWork()
        var cancelInFlight = false
        if let cancelBinding {
            // A client that vanishes mid-query would leave its backend working until the
            // server notices the closed socket: cancel the query first, as a careful client would.
            if session?.needsCancelOnEnd == true, let backend = session?.backend, !(link?.leg?.isClosed ?? true) {
                CancelForwarder.start(loop: loop, entry: cancelBinding.entry, processID: backend.processID, logger: logger.materialized, lookups: pool.lookups)
            }
            if shared.cancelRegistry.remove(cancelBinding) { cancelInFlight = true }
            self.cancelBinding = nil
        }
        if let request = pendingCheckout {
            pool.cancelCheckout(request)
            pendingCheckout = nil
        }
        if let link {
            // A cancel on its way would reach whatever the server runs next.
            let reusable = isAtRest && !cancelInFlight
            link.leg?.readPaused = false
            self.link = nil
            // Transaction pooling: at rest and unpinned, nothing of this client's is on it.
            if transactionPool != nil && reusable && session?.inPlace({ $0.isPinned }) == false {
                // Settings changed and not read back: the next user resets them all.
                if session?.inPlace({ $0.needsSettingsCapture }) == true { link.appliedSettings = nil }
                if let statements = session?.serverDetached() { link.preparedStatements = statements }
                pool.release(link)
            } else {
                pool.checkin(link, reusable: reusable)
            }
        }
        if flushClient && client.outbound.readableBytes > 0 && !client.isClosed {
            closeAfterFlush = true
            client.readPaused = true
            client.flush()
            if client.outbound.readableBytes > 0 {
                // Don't wait forever for a client that stopped reading.
                loop.scheduleTimer(at: loop.now() + .seconds(5)) { [weak self] in self?.finish(reason: nil, flushClient: false) }
                return
            }
        }
        client.close()
        if !finished {
            finished = true
            host?.sessionFinished(self)
        }
    }
}
