import Auth
import Session
import Wire

/// A session as the pool's user: a server connection granted or refused, and the end of a
/// server connection the session holds (Sources/Proxy/PoolManager.swift).
extension ClientSession: PoolUser, UpstreamLinkOwner {
    func poolEvent(_ event: PoolEvent) {
        switch event {
        case .granted(let link): serverConnectionGranted(link)
        case .refused(let fields): serverConnectionRefused(fields)
        case .waitTimedOut(let fields, let exhaustion):
            if !finished { auditPoolWaitTimedOut(exhaustion, fields) }
            serverConnectionRefused(fields)
        case .withdrawn:
            pendingCheckout = nil
            guard !finished else { return }
            // Established (transaction pooling): the next checkout finds where its entry
            // points now. Still logging in: the login's first checkout again.
            if session != nil { return acquireServer() }
            if let request = startup?.upstreamRequest { checkOutFirstServer(request) }
        }
    }

    // The link's leg reports to the session itself once granted (``serverConnectionGranted``
    // makes it the leg's owner). What still comes here is a report the link made while the
    // pool held it and that arrives after the grant: the end of a server connection that
    // went away between the pool's hand-over and this session taking it.
    func linkEvent(_ link: UpstreamLink, _ event: UpstreamLinkEvent) {
        switch event {
        case .closed(let reason):
            if link === self.link { serverLost(reason: reason) }
        case .ready, .failed, .received, .drained:
            break
        }
    }

    private func serverConnectionGranted(_ link: UpstreamLink) {
        pendingCheckout = nil
        // Transaction pooling: a server connection for the next transaction.
        if session != nil { return transactionServerGranted(link) }
        guard !finished else { return pool.checkin(link, reusable: true) }
        self.link = link
        link.owner = self
        completeLogin(ServerLoginValues(link), attached: link)
    }

    /// Transaction pooling: the login is answered from a server session its pool already has
    /// (``PoolManager/loginValues(_:)``); the client starts as it is between transactions, with
    /// no server attached, and its first statement asks the pool for one.
    func loginAnsweredFromPool(_ values: ServerLoginValues) {
        guard !finished, session == nil, link == nil else { return }
        completeLogin(values, attached: nil)
    }

    /// The end of the login: the server's start-up values go to the client with a cancel key
    /// of the proxy's own. `link`: the server connection the login was granted (nil: answered
    /// from the pool).
    private func completeLogin(_ values: ServerLoginValues, attached link: UpstreamLink?) {
        var key = CancelRegistry.Key(processID: values.processID, secret: Self.randomSecret())
        while shared.cancelRegistry.contains(key) { key.secret = Self.randomSecret() }
        // Transaction pooling's clients share their pool's destination; in session mode the
        // session has its server connection to itself anyway.
        let destination = transactionPool?.cancelDestination ?? CancelRegistry.Destination(target: values.target, runtime: values.runtime)
        // Answered from the pool, no server runs anything for it yet: a cancel before its first
        // transaction goes nowhere.
        cancelBinding = shared.cancelRegistry.insert(key, destination: destination, serverSecretKey: values.secretKey,
                                                     detached: link == nil)
        if let loginTimer = startup?.loginTimer { loop.cancelTimer(loginTimer); startup?.loginTimer = nil }
        // A database reached through `*` is read once a read-only login to it succeeded — not
        // at the request, so names of databases that do not exist are never kept (found in
        // review: each made every refresh round longer, and they were retried every 2 s).
        if let request = startup?.upstreamRequest, request.database.fromWildcard && request.mode == .readOnly {
            shared.catalogs.noteWildcardDatabase(request.databaseName)
        }
        if let sessionConfiguration = startup?.sessionConfiguration {
            session = SessionMachine(sessionConfiguration, backendProcessID: values.processID, backendSecretKey: values.secretKey,
                                     serverParameters: values.parameters)
            if transactionPool != nil {
                if let link {
                    // What the server has prepared for earlier clients.
                    session?.serverAttached(processID: link.processID, secretKey: link.secretKey, statements: link.preparedStatements)
                } else {
                    _ = session?.serverDetached()
                }
            }
        }
        // The link steps out of the byte path: its leg reports to this session directly until
        // the pool takes it back (``PoolManager/checkin(_:reusable:)``).
        link?.leg?.owner = self
        auditBackendStarted(processID: values.processID)
        logger.info("connection authorized", metadata: ["backend_pid": "\(values.processID)"])
        runStartup { $0.upstreamReady(parameters: values.parameters, notices: values.notices, processID: values.processID,
                                      proxySecretKey: key.secretBytes) }
        // Start-up is over: an idle established client keeps none of its state.
        if isEstablished { dropStartup() }
        client.readPaused = false
        // Transaction pooling: a server another client changed the settings of goes back to
        // the start-up values first (the client bytes wait for it).
        if let link, transactionPool != nil && link.appliedSettings != clientSettings { startSettingsExchange(.apply) }
        // Anything the client pipelined while we connected goes up now.
        forwardClientBytes()
        forwardServerBytes()
    }

    /// A cancel key's secret: 32 random bits from OpenSSL's generator, as PostgreSQL's own
    /// (postmaster.c, pg_strong_random).
    private static func randomSecret() -> UInt32 {
        Crypto.randomBytes(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    private func serverConnectionRefused(_ fields: ErrorFields) {
        pendingCheckout = nil
        guard !finished else { return }
        // Transaction pooling: no server connection for the next transaction.
        if session != nil { return transactionServerRefused(fields) }
        upstreamFailed(fields)
    }

    /// The server ended the session (FATAL, shutdown, pg_terminate_backend): its last
    /// messages were forwarded; the client sees EOF as it would from PostgreSQL.
    func serverLost(reason: String?) {
        guard let link else { return }
        self.link = nil
        session?.serverClosed()
        link.serverLegClosed()
        pool.checkin(link, reusable: false)
        // After the client's Terminate was passed on, the server closing is its answer.
        if session?.inPlace({ $0.termination }) == .forwarded { return finish(reason: nil, flushClient: true) }
        finish(reason: reason.map { "server connection lost: \($0)" } ?? "server closed the connection", flushClient: true)
    }
}
