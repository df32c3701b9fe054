import Session
import Config
import Wire
import Synchronization

/// `pool_mode = transaction`: what a checkout for the next transaction asks for. A class:
/// read at every checkout, where a struct would be copied (target and all) each time, and
/// shared by every client of the same spec (``PoolManager/transactionRequest(_:target:password:)``).
final class TransactionPoolRequest {
    let spec: UpstreamSpec
    let target: DatabaseTarget
    let password: Secret?
    /// Where its clients' cancel requests go (the clients' runtime: its TLS contexts).
    let cancelDestination: CancelRegistry.Destination

    init(spec: UpstreamSpec, target: DatabaseTarget, password: Secret?, runtime: RuntimeConfig) {
        self.spec = spec
        self.target = target
        self.password = password
        cancelDestination = CancelRegistry.Destination(target: target, runtime: runtime)
    }
}

/// Transaction pooling's shell. The client keeps what it was given at start-up — the first
/// server's ParameterStatus values and a BackendKeyData whose key the proxy issued — while its
/// transactions run on whichever server connection the pool has free: one is checked out when
/// the client sends something between transactions and released back, without a reset, as
/// soon as the session is at rest (``ClientSession/isAtRest``: ReadyForQuery 'I', nothing owed,
/// nothing buffered) and not pinned (``SessionMachine/isPinned``). The cancel key follows the
/// server: the registry entry is pointed at each backend attached, and at none in between.
extension ClientSession {
    /// Client bytes arrived while no server connection is attached: ask the pool for one
    /// (granted after the batch, ``transactionServerGranted(_:)``). A Terminate needs none.
    func acquireServer() {
        guard let known = transactionPool, link == nil, !finished,
              let first = client.inbound.readableBytesView.first else { return }
        if pendingCheckout == nil {
            if first == UInt8(ascii: "X") {
                // The client leaves between transactions: nothing to tell any server (what it
                // was sent is still written).
                return finish(reason: nil, flushClient: true)
            }
            // After a reload: where the entry points now (PoolManager.currentTransactionRequest).
            guard let request = pool.currentTransactionRequest(known, database: logger.database ?? "", user: logger.user ?? "") else {
                return transactionServerRefused(Self.entryWithdrawnError(database: logger.database ?? ""))
            }
            transactionPool = request
            logger.debug("waiting for a server connection")
            pendingCheckout = pool.checkout(request.spec, target: request.target, password: request.password, user: self)
        }
        // While it waits, what the client sends beyond the usual bound stays in its socket.
        client.readPaused = client.inbound.readableBytes > runtime.config.general.outboundBufferLimit
    }

    func transactionServerGranted(_ link: UpstreamLink) {
        guard !finished, self.link == nil else { return pool.release(link) }
        // Its start-up values, read as the login's were (a pool's connections may differ).
        let verdict = link.startupVerdict ?? SessionMachine.startupVerdict(of: link.parameters, readOnly: link.spec.readOnly)
        link.startupVerdict = verdict
        if let breach = verdict.breach {
            pool.release(link)
            return transactionServerRefused(ReadOnlyTripwire.errorFields(for: breach, identity: logger.user ?? ""))
        }
        if verdict.divergentLexing { session?.attachedServerJudged(verdict) }
        self.link = link
        link.owner = self
        // The link steps out of the byte path again, as at the first grant.
        link.leg?.owner = self
        session?.serverAttached(processID: link.processID, secretKey: link.secretKey, statements: link.preparedStatements)
        logger.debug("server connection attached", metadata: ["backend_pid": "\(link.processID)"])
        client.readPaused = false
        // Its settings first, if this server has others (ClientSession+Settings.swift); the
        // cancel key follows once the client's own statements go up.
        if link.appliedSettings != clientSettings { return startSettingsExchange(.apply) }
        settingsApplyAttempts = 0
        attachCancelBinding()
        forwardClientBytes()
        forwardServerBytes()
    }

    /// No server connection for the next transaction (pool_wait_timeout, connect failure):
    /// the error ends the session, as PgBouncer's query_wait_timeout does.
    func transactionServerRefused(_ fields: ErrorFields) {
        logger.warning("no server connection for the next transaction: \(fields.message ?? "")")
        var out = ByteBuffer()
        BackendMessage.errorResponse(fields).encode(into: &out)
        client.send(out)
        finish(reason: nil, flushClient: true)
    }

    /// After the server's replies: at rest and unpinned, the server connection goes back.
    func releaseServerIfDone() {
        // In place (SessionMachine+InPlace.swift): a plain read copies the whole machine.
        guard transactionPool != nil, let link, !finished, classifying == nil, client.inbound.readableBytes == 0,
              session?.inPlace({ $0.termination }) == nil,
              session?.inPlace({ $0.isPinned }) == false, isAtRest else { return }
        // Settings may have changed in that transaction: read them before letting go.
        if session?.inPlace({ $0.needsSettingsCapture }) == true { return startSettingsExchange(.capture) }
        self.link = nil
        if let statements = self.session?.serverDetached() { link.preparedStatements = statements }
        let cancelInFlight = cancelBinding.map { shared.cancelRegistry.attach($0, backend: nil) } ?? false
        link.leg?.readPaused = false
        if cancelInFlight || shared.cancelRegistry.cancelIsInFlight(backendProcessID: link.processID) {
            // The client's CancelRequest has not reached PostgreSQL yet: handed on, the server
            // would cancel the next client's query when it lands. Closed instead (rare: a
            // cancel racing the end of its own transaction).
            logger.info("server connection closed, not reused: a cancel request for it is on its way",
                        metadata: ["backend_pid": "\(link.processID)"])
            return pool.checkin(link, reusable: false)
        }
        logger.debug("server connection released", metadata: ["backend_pid": "\(link.processID)"])
        pool.release(link)
    }

    func notePinned(_ reasons: [String]) {
        let total = shared.transactionPins.add(1, ordering: .relaxed).newValue
        logger.info("session pinned to its server connection (transaction pooling): \(reasons.joined(separator: ", "))",
                    metadata: ["backend_pid": "\(link?.processID ?? 0)", "pins_total": "\(total)"])
    }
}
