import EventLoop
import CPortcullisShims
import TLS
import Wire
import Auth
import Config
import Logging
import Pool
import Glibc

/// Process-wide pieces every loop shares.
public final class ProxyShared: Sendable {
    public let cancelRegistry = CancelRegistry()
    public let catalogs = CatalogStore()
    public let startupLimits = StartupLimiter()
    public let authFailures = AuthFailureTracker()
    /// Classifier threads for read-only statements the loops' caches do not know: texts up to
    /// ``LoopPolicy/cachedTextLimit``, and longer ones apart.
    let classifiers = ClassifierPool(name: "cls")
    let largeStatementClassifiers = ClassifierPool(name: "big", threadCount: 2)
    public init() {}
}

/// One client connection and, once authenticated, its server connection: the shell that runs
/// the pure machines' actions against sockets, timers and TLS.
final class ClientSession: LegDelegate {
    let loop: EventLoop
    let runtime: RuntimeConfig
    let shared: ProxyShared
    let client: Leg
    let remote: SocketAddress
    let sessionID: UInt64
    let pool: PoolManager
    let policy: LoopPolicy
    /// Set for read-only identities once authenticated: judges every Query, Parse and
    /// FunctionCall before it reaches the server.
    var readOnlyGate: ReadOnlyGate?
    /// Read-only sessions: the server's reported settings must keep the gate's judgement valid.
    private var tripwire = ReadOnlyTripwire()
    /// A read-only statement being classified off the loop; client messages wait behind it.
    var classifying: PendingClassification?
    /// The [databases] entry the session is connected through (for its catalog snapshot).
    private(set) var databaseEntry = ""
    /// A read-write statement in the current transaction changed the catalog (DDL, GRANT).
    private var ranCatalogChange = false
    private var link: UpstreamLink?
    private var pendingCheckout: (ServerPool.RequestID, UpstreamSpec)?
    var server: Leg? { link?.leg }
    private var machine: ClientStartupMachine
    private var directTLS = false
    var clientTracker: MessageStreamTracker
    var serverTracker: MessageStreamTracker
    /// The audit stream's per-session state; nil when `audit = off` (ClientSession+Audit.swift).
    var audit: SessionAudit?
    private var loginTimer: TimerID?
    private var cancelKey: CancelRegistry.Key?
    private var closeAfterFlush = false
    /// The server owes us a ReadyForQuery: a query (or COPY) is in flight.
    private(set) var serverBusy = false
    private(set) var transactionStatus: TransactionStatus = .idle
    private(set) var lastClientActivity = MonotonicInstant(nanoseconds: 0)
    private var backend: (processID: Int32, secretKey: [UInt8])?
    /// The verified client certificate's subject (CN and RFC 2253 DN), for the access layer.
    private(set) var clientCertificate: PeerCertificateSubject?
    private(set) var finished = false
    private(set) var logger: Logger
    var onFinish: ((ClientSession) -> Void)?
    /// The client has authenticated (its upstream connection is being made).
    var onAuthenticated: ((ClientSession) -> Void)?
    /// Refused statements of a read-only session: logged a few times, then counted.
    var refusalLog = RepeatedLogLimiter.refusedStatements
    var isEstablished: Bool { machine.isEstablished }

    init(loop: EventLoop, fd: Int32, remote: SocketAddress, runtime: RuntimeConfig, shared: ProxyShared, pool: PoolManager,
         policy: LoopPolicy, sessionID: UInt64, prestart: SessionPrestart? = nil) {
        self.loop = loop
        self.pool = pool
        self.policy = policy
        self.runtime = runtime
        self.shared = shared
        self.remote = remote
        self.sessionID = sessionID
        client = Leg(loop: loop, fd: fd, name: "client", connecting: false)
        let transport: ClientTransportKind = remote.isUnix ? .unixSocket : .tcp(remoteHost: remote.host)
        machine = ClientStartupMachine(config: runtime.config, transport: transport, mockSeed: runtime.mockSeed,
                                       access: prestart?.access ?? runtime.accessFiles.rules,
                                       peerUser: prestart?.peerUser)
        let limit = runtime.config.general.maxMessageSize
        clientTracker = MessageStreamTracker(maxMessageLength: limit, inspecting: [UInt8(ascii: "X")],
                                             validTypes: MessageStreamTracker.frontendTypes)
        // Server messages are bounded by PostgreSQL itself (1 GB); we only watch ReadyForQuery.
        serverTracker = MessageStreamTracker(maxMessageLength: Int(Int32.max), inspecting: [UInt8(ascii: "Z")])
        logger = runtime.logger
        logger[metadataKey: "session"] = "\(sessionID)"
        logger[metadataKey: "client"] = "\(remote)"
    }

    /// SO_PEERCRED, for pg_hba.conf `peer` lines.
    static func peerUserName(_ fd: Int32) -> String? {
        var name = [CChar](repeating: 0, count: 256)
        guard pc_peer_user_name(fd, &name, name.count) == 0 else { return nil }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func start() throws(Errno) {
        client.delegate = self
        client.peekFirstByte = machine.acceptsDirectTLS
        try client.register()
        auditConnected()
        loginTimer = loop.scheduleTimer(at: loop.now() + runtime.config.general.loginTimeout) { [weak self] in
            guard let self else { return }
            self.loginTimer = nil
            self.run(self.machine.loginTimedOut())
        }
    }

    // MARK: - Client startup actions

    private func run(_ action: ClientStartupMachine.Action) {
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
            finish(reason: nil, flushClient: false)
        case .connectUpstream(let request):
            connectUpstream(request)
        case .sendBytesThenConnect(let bytes, let request):
            client.send(bytes)
            connectUpstream(request)
        case .refuseAuthentication(let bytes, let failure):
            refuseAuthentication(bytes, failure)
        }
    }

    private func startClientTLS(direct: Bool) {
        guard let context = runtime.serverTLS else {
            finish(reason: "TLS requested but not configured", flushClient: false)
            return
        }
        do {
            directTLS = direct
            client.startTLS(try TLSConnection(serverContext: context, fd: client.fd, direct: direct))
        } catch {
            finish(reason: error.message, flushClient: false)
        }
    }

    private func processClientStartupBytes() {
        while !finished && !machine.isEstablished {
            let before = client.inbound.readableBytes
            let action = machine.bytesReceived(&client.inbound)
            let consumed = before != client.inbound.readableBytes
            if case .none = action, !consumed { break }
            run(action)
            if machine.isAwaitingUpstream {
                // Whatever the client pipelines now waits in the socket, not in our memory.
                client.readPaused = true
                break
            }
        }
    }

    // MARK: - Upstream

    private func connectUpstream(_ request: UpstreamRequest) {
        let target = request.database
        logger[metadataKey: "user"] = "\(request.clientUser)"
        logger[metadataKey: "database"] = "\(request.databaseName)"
        onAuthenticated?(self)
        databaseEntry = CatalogStore.key(entry: request.database.entryName, database: request.databaseName)
        if request.database.fromWildcard && request.mode == .readOnly {
            shared.catalogs.noteWildcardDatabase(request.databaseName)
        }
        auditAuthenticated(request)
        let audited = audit != nil ? Self.auditedClientTypes : []
        switch request.mode {
        case .readOnly:
            readOnlyGate = ReadOnlyGate(identity: request.clientUser, tokens: Self.refusalToken)
            clientTracker = MessageStreamTracker(maxMessageLength: runtime.config.general.maxMessageSize,
                                                 inspecting: ReadOnlyGate.inspectedClientTypes.union([UInt8(ascii: "X")]).union(audited),
                                                 validTypes: MessageStreamTracker.frontendTypes)
        case .readWrite:
            readOnlyGate = nil
            if audit != nil {
                clientTracker = MessageStreamTracker(maxMessageLength: runtime.config.general.maxMessageSize,
                                                     inspecting: audited.union([UInt8(ascii: "X")]),
                                                     validTypes: MessageStreamTracker.frontendTypes)
            }
        }
        let spec = UpstreamSpec(databaseEntry: target.name, dbname: target.dbname ?? request.databaseName,
                                serverUser: request.serverUser, parameters: request.parameters)
        // Granted or refused after this batch, never from inside this call.
        pendingCheckout = (pool.checkout(spec, target: target, password: request.serverPassword, user: self), spec)
    }

    private func upstreamFailed(_ fields: ErrorFields) {
        logger.warning("upstream connection failed: \(fields.message ?? "")")
        run(machine.upstreamFailed(fields))
    }

    // MARK: - Forwarding (session established)

    /// Passes the client's bytes on, message by message, in order. Stops while a read-only
    /// statement is being classified (``classifying``) or while the gate holds as many pending
    /// refusals as it may; each of those resumes it.
    func forwardClientBytes() {
        guard let server, machine.isEstablished, !finished else { return }
        // A message observed for the audit stream while it waited for its classification
        // has been consumed once nothing is being classified.
        if classifying == nil { audit?.frontObserved = false }
        loop: while client.inbound.readableBytes > 0 {
            if classifying != nil || readOnlyGate?.isAtPendingBound == true || auditBlocked { break loop }
            do {
                switch try clientTracker.nextStep(in: client.inbound) {
                case .forward(let n):
                    server.send(client.inbound.readableBytesView.prefix(n))
                    client.inbound.moveReaderIndex(forwardBy: n)
                    audit?.bytesIn += n
                    serverBusy = true
                case .inspect(let frame) where frame.type != UInt8(ascii: "X"):
                    serverBusy = true
                    if let audit {
                        auditClientMessage(frame)
                        if readOnlyGate == nil || !ReadOnlyGate.inspectedClientTypes.contains(frame.type) {
                            server.send(client.inbound.readableBytesView.prefix(frame.totalLength))
                            client.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                            continue loop
                        }
                        audit.frontObserved = true
                        let consumed = try gateClientMessage(frame, to: server)
                        audit.frontObserved = !consumed
                        if !consumed { break loop }
                        continue loop
                    }
                    if try !gateClientMessage(frame, to: server) { break loop }
                case .inspect(let frame):
                    // Terminate ('X'): the client is leaving. The server connection goes back to
                    // the pool (which resets or closes it), so the Terminate is not passed on.
                    client.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                    server.flush()
                    finish(reason: nil, flushClient: false)
                    return
                case .needMoreBytes:
                    break loop
                }
            } catch {
                sendClientErrorAndClose(.error(sqlState: error.sqlState, message: error.message, severity: "FATAL"))
                return
            }
        }
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
        let waiting = classifying != nil || readOnlyGate?.isAtPendingBound == true
        client.readPaused = (server?.outbound.readableBytes ?? 0) > limit || (waiting && client.inbound.readableBytes > limit)
            || auditBlocked
    }

    private func forwardServerBytes() {
        guard let server, machine.isEstablished else { return }
        let limit = runtime.config.general.outboundBufferLimit
        loop: while server.inbound.readableBytes > 0 {
            do {
                switch try serverTracker.nextStep(in: server.inbound) {
                case .forward(let n):
                    client.send(server.inbound.readableBytesView.prefix(n))
                    server.inbound.moveReaderIndex(forwardBy: n)
                    audit?.bytesOut += n
                case .inspect(let frame) where frame.type == UInt8(ascii: "E"):
                    let sent = try gateServerError(frame, from: server)
                    if audit != nil { auditServerMessage(frame, from: server, sentError: sent) }
                case .inspect(let frame) where frame.type == UInt8(ascii: "S"):
                    guard try parameterStatusHolds(frame) else { return }
                case .inspect(let frame) where frame.type == UInt8(ascii: "C"):
                    if CatalogChangeTag.changesCatalog(server.inbound.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)) {
                        ranCatalogChange = true
                    }
                    auditServerMessage(frame, from: server)
                    client.send(server.inbound.readableBytesView.prefix(frame.totalLength))
                    server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                case .inspect(let frame) where frame.type == UInt8(ascii: "I") || frame.type == UInt8(ascii: "s")
                                             || frame.type == UInt8(ascii: "G"):
                    // EmptyQueryResponse, PortalSuspended, CopyInResponse: for the audit stream only.
                    auditServerMessage(frame, from: server)
                    client.send(server.inbound.readableBytesView.prefix(frame.totalLength))
                    server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                case .inspect(let frame):
                    // ReadyForQuery: the server is idle again until the client sends more.
                    readOnlyGate?.readyForQueryReceived()
                    if let byte = server.inbound.getInteger(at: server.inbound.readerIndex + 5, as: UInt8.self),
                       let status = TransactionStatus(rawValue: byte) {
                        transactionStatus = status
                    }
                    // DDL counts once its transaction is over (committed or not: a refresh is cheap).
                    if ranCatalogChange && transactionStatus == .idle {
                        ranCatalogChange = false
                        shared.catalogs.catalogChanged()
                    }
                    serverBusy = !clientTracker.isAtMessageBoundary || client.inbound.readableBytes > 0
                    auditServerMessage(frame, from: server)
                    client.send(server.inbound.readableBytesView.prefix(frame.totalLength))
                    server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                case .needMoreBytes:
                    break loop
                }
            } catch {
                finish(reason: "invalid message from server: \(error.message)", flushClient: true)
                return
            }
        }
        server.inbound.discardReadBytes()
        server.releaseLargeBuffers()
        server.readPaused = client.outbound.readableBytes > limit
        // Replies may have resolved pending refusals the client's next messages waited for.
        if readOnlyGate != nil && classifying == nil && client.inbound.readableBytes > 0 { forwardClientBytes() }
    }

    /// ParameterStatus of a read-only session, past the tripwire. False when the session ended.
    private func parameterStatusHolds(_ frame: MessageFrame) throws(WireError) -> Bool {
        guard let server else { return false }
        var frameBytes = ByteBuffer(bytes: server.inbound.readableBytesView.prefix(frame.totalLength))
        if case .parameterStatus(let name, let value) = try BackendMessage.decode(frame: frame, from: &frameBytes),
           case .breached(let reason) = tripwire.parameterStatusReceived(name: name, value: value) {
            // Nothing more goes up; the server connection is closed (not reused) by finish.
            logger.warning("read-only session ended: \(reason)")
            serverBusy = true
            client.inbound.clear()
            var out = ByteBuffer()
            BackendMessage.errorResponse(ReadOnlyTripwire.errorFields(for: reason, identity: readOnlyGate?.identity ?? "")).encode(into: &out)
            client.send(out)
            finish(reason: reason, flushClient: true)
            return false
        }
        client.send(server.inbound.readableBytesView.prefix(frame.totalLength))
        server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
        return true
    }

    private func sendClientErrorAndClose(_ fields: ErrorFields) {
        var out = ByteBuffer()
        BackendMessage.errorResponse(fields).encode(into: &out)
        client.send(out)
        finish(reason: fields.message, flushClient: true)
    }

    // MARK: - Cancel (55.2.7 Canceling Requests in Progress)

    private func forwardCancel(processID: Int32, secretKey: [UInt8]) {
        let entry = shared.cancelRegistry.lookup(.init(processID: processID, secretKey: secretKey))
        auditCancelRequest(processID: processID, known: entry != nil)
        guard let entry else {
            // As PostgreSQL: an unknown key is ignored without a reply.
            logger.info("cancel request with unknown key ignored")
            return
        }
        CancelForwarder.start(loop: loop, entry: entry, processID: processID, logger: logger, lookups: pool.lookups)
    }

    // MARK: - LegDelegate

    func legConnected(_ leg: Leg, error: Errno?) {}

    func legHandshakeCompleted(_ leg: Leg) {
        if leg === client, let tls = leg.tls {
            clientCertificate = tls.verifiedPeerSubject
            if let subject = clientCertificate {
                logger[metadataKey: "client_cn"] = "\(subject.commonName)"
            }
            run(machine.tlsHandshakeCompleted(serverEndPoint: tls.serverEndPointHash, direct: directTLS,
                                              alpnPostgreSQL: tls.negotiatedPostgreSQLALPN,
                                              peerCertificate: clientCertificate))
            if client.inbound.readableBytes > 0 { processClientStartupBytes() }
        }
    }

    func legHandshakeFailed(_ leg: Leg, reason: String) {
        logger.info("client TLS handshake failed: \(reason)")
        auditTLSFailed(reason)
        finish(reason: nil, flushClient: false)
    }

    func legPeekedFirstByte(_ leg: Leg, byte: UInt8) {
        // 0x16 is a TLS handshake record: PostgreSQL 17's direct TLS (sslnegotiation=direct).
        if byte == 0x16 { run(machine.directTLSDetected()) }
    }

    func legReceivedBytes(_ leg: Leg) {
        lastClientActivity = loop.now()
        if machine.isEstablished { forwardClientBytes() } else { processClientStartupBytes() }
    }

    func legDrained(_ leg: Leg) {
        if closeAfterFlush { finish(reason: nil, flushClient: false); return }
        server?.readPaused = false
    }

    func legClosed(_ leg: Leg, reason: String?) {
        if let reason { logger.info("client connection lost: \(reason)") }
        finish(reason: nil, flushClient: false)
    }

    // MARK: - Ending

    /// Ends the session. With `flushClient`, pending bytes to the client are written first.
    func finish(reason: String?, flushClient: Bool) {
        if let reason { logger.info("session closed: \(reason)") }
        auditDisconnected()
        refusalLog.logSummary(to: logger, at: loop.now())
        if let loginTimer { loop.cancelTimer(loginTimer); self.loginTimer = nil }
        abandonClassification()
        if let cancelKey {
            // A client that vanishes mid-query would leave its backend working until the
            // server notices the closed socket: cancel the query first, as a careful client would.
            if serverBusy, let backend, let entry = shared.cancelRegistry.lookup(cancelKey), !(link?.leg?.isClosed ?? true) {
                CancelForwarder.start(loop: loop, entry: entry, processID: backend.processID, logger: logger, lookups: pool.lookups)
            }
            shared.cancelRegistry.remove(cancelKey)
            self.cancelKey = nil
        }
        if let (request, spec) = pendingCheckout {
            pool.cancelCheckout(request, spec: spec)
            pendingCheckout = nil
        }
        if let link {
            // Reusable only at rest: idle status, nothing in flight, every byte delivered.
            let reusable = machine.isEstablished && !serverBusy && transactionStatus == .idle
                && clientTracker.isAtMessageBoundary && serverTracker.isAtMessageBoundary
                && (link.leg?.outbound.readableBytes ?? 1) == 0 && (link.leg?.inbound.readableBytes ?? 1) == 0
            link.leg?.readPaused = false
            self.link = nil
            pool.checkin(link, reusable: reusable)
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
            onFinish?(self)
        }
    }
}

extension ClientSession {
    /// Established, outside a transaction, and nothing in flight in either direction.
    var isIdle: Bool {
        isEstablished && !serverBusy && transactionStatus == .idle && client.outbound.readableBytes == 0 && classifying == nil
    }

    func releaseIdleBuffers() {
        client.releaseIdleBuffers()
        link?.leg?.releaseIdleBuffers()
    }

    /// Ends the session with a FATAL error as the server would. The error is only sent at a
    /// message boundary, so it cannot land inside another message.
    func terminate(sqlState: String, message: String) {
        if !serverBusy {
            var out = ByteBuffer()
            BackendMessage.errorResponse(.error(sqlState: sqlState, message: message, severity: "FATAL")).encode(into: &out)
            client.send(out)
        }
        finish(reason: message, flushClient: true)
    }
}

extension ClientSession: PoolUser, UpstreamLinkOwner {
    func serverConnectionGranted(_ link: UpstreamLink) {
        pendingCheckout = nil
        guard !finished else { return pool.checkin(link, reusable: true) }
        self.link = link
        link.owner = self
        var proxySecret = Crypto.randomBytes(4)
        while shared.cancelRegistry.lookup(.init(processID: link.processID, secretKey: proxySecret)) != nil {
            proxySecret = Crypto.randomBytes(4)
        }
        let key = CancelRegistry.Key(processID: link.processID, secretKey: proxySecret)
        cancelKey = key
        backend = (link.processID, link.secretKey)
        shared.cancelRegistry.insert(key, .init(target: link.target, runtime: runtime, serverSecretKey: link.secretKey))
        if let loginTimer { loop.cancelTimer(loginTimer); self.loginTimer = nil }
        // Read-only sessions: errors, for the gate. Read-write sessions: CommandComplete, so DDL
        // through the proxy refreshes the catalog snapshots the gate relies on.
        let serverTypes: Set<UInt8> = readOnlyGate == nil ? [UInt8(ascii: "Z"), UInt8(ascii: "C")]
                                                          : [UInt8(ascii: "Z"), UInt8(ascii: "E"), UInt8(ascii: "S")]
        serverTracker = MessageStreamTracker(maxMessageLength: Int(Int32.max),
                                             inspecting: audit == nil ? serverTypes : serverTypes.union(Self.auditedServerTypes))
        auditBackendStarted(processID: link.processID)
        if readOnlyGate != nil { _ = tripwire.startupParametersReceived(link.parameters) }
        logger.info("connection authorized", metadata: ["backend_pid": "\(link.processID)"])
        run(machine.upstreamReady(parameters: link.parameters, notices: link.startupNotices, processID: link.processID,
                                  proxySecretKey: proxySecret))
        client.readPaused = false
        // Anything the client pipelined while we connected goes up now.
        forwardClientBytes()
        forwardServerBytes()
    }

    func serverConnectionRefused(_ fields: ErrorFields) {
        pendingCheckout = nil
        guard !finished else { return }
        upstreamFailed(fields)
    }

    func linkReady(_ link: UpstreamLink) {}

    func linkFailed(_ link: UpstreamLink, _ fields: ErrorFields) {}

    func linkReceivedBytes(_ link: UpstreamLink) {
        forwardServerBytes()
    }

    func linkDrained(_ link: UpstreamLink) {
        updateClientReadPause()
    }

    func linkClosed(_ link: UpstreamLink, reason: String?) {
        // The server ended the session (FATAL, shutdown, pg_terminate_backend): its last
        // messages were forwarded; the client sees EOF as it would from PostgreSQL.
        self.link = nil
        serverBusy = false
        pool.checkin(link, reusable: false)
        finish(reason: reason.map { "server connection lost: \($0)" } ?? "server closed the connection", flushClient: true)
    }
}
