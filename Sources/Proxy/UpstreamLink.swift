import EventLoop
import TLS
import Wire
import Auth
import Config
import Pool
import Logging
import Session

/// What a server connection is for: the pool groups connections by this, because a server
/// session's defaults come from its startup packet and cannot be changed for another client.
struct UpstreamSpec: Hashable {
    var databaseEntry: String
    var dbname: String
    var serverUser: String
    var parameters: [StartupParameter]
    /// Where its connections go. Two generations of one entry (a reload moved it to another
    /// host) never share a pool, whichever configuration a client's request came from.
    var route: DatabaseTarget.Route
    /// Transaction pooling hands connections on without a reset: such connections never
    /// serve a session-mode client (not even while a reload changes an entry's pool_mode).
    var transactionPooled = false
    /// Read-only identities' server connections serve only read-only identities: a read-write
    /// client sending the same startup parameters under the same server user must not share
    /// them (its state would meet the read-only client's with no statement gate in between).
    var readOnly = false
    /// What the server checked when the connection logged in: a digest of the identity's
    /// server password (or SCRAM pass-through keys) and its client certificate. Two identities
    /// mapped to the same server user with different credentials (one with the certificate a
    /// `cert` line in pg_hba.conf demands, one without) never share connections — a spare
    /// or a reset session opened with one's credentials would let the other in.
    var credentials: [UInt8] = []

    static func credentialDigest(target: DatabaseTarget, password: Secret?) -> [UInt8] {
        var input: [UInt8] = []
        func add(_ field: [UInt8]?) {
            guard let field else { return input += [0] }
            input += [1] + withUnsafeBytes(of: UInt32(field.count).bigEndian, Array.init) + field
        }
        add(target.sslCert.map { Array($0.utf8) })
        add(target.sslKey.map { Array($0.utf8) })
        add(target.certificateIdentity.map { Array($0.utf8) })
        if let keys = password?.revealSCRAMKeys() {
            add(keys.clientKey)
            add(keys.serverKey)
        } else {
            add(password.map { Array($0.reveal().utf8) })
        }
        return Crypto.sha256(input)
    }

    static func == (a: UpstreamSpec, b: UpstreamSpec) -> Bool {
        a.databaseEntry == b.databaseEntry && a.dbname == b.dbname && a.serverUser == b.serverUser && a.parameters == b.parameters
            && a.route == b.route && a.transactionPooled == b.transactionPooled && a.readOnly == b.readOnly && a.credentials == b.credentials
    }

    /// A subset of what `==` compares (equal specs hash alike): the pool looks a spec up at
    /// every checkout and release in transaction pooling, and a loop holds few pools, so the
    /// credential digest (a SHA-256, fed in one call) and the entry name separate them well
    /// enough without hashing every startup parameter each time.
    func hash(into hasher: inout Hasher) {
        hasher.combine(transactionPooled)
        hasher.combine(readOnly)
        credentials.withUnsafeBytes { hasher.combine(bytes: $0) }
        hasher.combine(databaseEntry)
        hasher.combine(parameters.count)
    }
}

/// What a server connection reports to whoever holds it — one narrow callback with an event
/// kind, as ``LegEvent`` is for a leg (PgBouncer's sbuf seam, `sbuf_cb_t`).
enum UpstreamLinkEvent {
    /// The server session is established (its first ReadyForQuery).
    case ready
    /// It could not be made (no address, refused, TLS, authentication, the server's own
    /// FATAL such as 3D000 or 28P01, connect_timeout). Reported once; ends the link.
    case failed(ErrorFields)
    /// New bytes of the ready server wait in the leg's `inbound`. Coalesced: one report per
    /// batch, the owner reads everything there.
    case received
    /// Everything queued to the ready server was written.
    case drained
    /// The ready server closed (nil: EOF) or its socket failed. Reported once; ends the link.
    case closed(String?)
}

/// Whoever holds a server connection right now: a client session, or the pool while it is
/// opening, idle or resetting. Every event is delivered after the batch of events in which the
/// link saw it, to whoever holds the link then, and never after the holder closed it — so
/// never from inside a call the owner made (`start`, `close`, `serverLegClosed`) and never
/// inside another object's handling of the same readiness event.
protocol UpstreamLinkOwner: AnyObject {
    func linkEvent(_ link: UpstreamLink, _ event: UpstreamLinkEvent)
}

/// What a login shows its client of the server session it was given, or that its pool
/// answered it from (``PoolManager/loginValues(_:)``): copied, so the link may go meanwhile.
struct ServerLoginValues {
    let processID: Int32
    let secretKey: [UInt8]
    let parameters: [(String, String)]
    let notices: [StartupNotice]
    let target: DatabaseTarget
    let runtime: RuntimeConfig

    init(_ link: UpstreamLink) {
        processID = link.processID
        secretKey = link.secretKey
        parameters = link.parameters
        notices = link.startupNotices
        target = link.target
        runtime = link.runtime
    }
}

/// One server connection: connect, TLS, authenticate (the pure UpstreamStartupMachine decides),
/// then a ready connection whose owner forwards bytes over `leg`. A client session that is
/// granted the link takes the leg's events itself (it becomes the leg's owner) (the link steps out of the byte path) until
/// it checks the link back in; while the pool holds it (opening, idle, resetting) the link
/// reports to its owner.
final class UpstreamLink: LegOwner {
    let id: ServerPool.ConnectionID
    let spec: UpstreamSpec
    let target: DatabaseTarget
    private let loop: EventLoop
    /// The configuration it was opened under (its TLS contexts; cancels for its backend use them).
    let runtime: RuntimeConfig
    private var machine: UpstreamStartupMachine
    private var addresses: [SocketAddress] = []
    private(set) var leg: Leg?
    /// Weak: a session that ended is never called. The pool or the session holding the link
    /// keeps it; whoever holds it sets itself here.
    weak var owner: (any UpstreamLinkOwner)?
    private(set) var isReady = false
    /// The server's ParameterStatus values in its own spelling, kept current while idle resets run.
    var parameters: [(String, String)] = []
    /// Notices of the server's start-up, for the client that gets this connection.
    private(set) var startupNotices: [StartupNotice] = []
    /// Transaction pooling: what its start-up values mean for the sessions attached to it,
    /// judged at its first attach (``SessionMachine/startupVerdict(of:readOnly:)``).
    var startupVerdict: SessionMachine.StartupVerdict?
    /// Transaction pooling: the named statements clients prepared here (a reset forgets them).
    var preparedStatements = SessionMachine.ServerStatements()
    /// Transaction pooling: the session-level settings a client left here (nil: unknown, so
    /// the next client resets them all); empty for the start-up values.
    var appliedSettings: [String: String]? = [:]
    /// The pool that opened it (``PoolManager``): it holds this link in its `links` while the
    /// link is its own, and the link leads back to it without a lookup by spec.
    var poolEntry: PoolManager.Entry?
    private(set) var processID: Int32 = 0
    private(set) var secretKey: [UInt8] = []
    /// The server's start-up is over (its values are known) and the connection is not closed.
    var hasStarted: Bool { processID != 0 && leg != nil && !parameters.isEmpty }
    private var connectTimer: TimerID?
    private let lookups: LoopLookups
    /// A host-name resolution on a lookup thread, until it answers.
    private var lookupTicket: UInt64?
    /// SCRAM keys being derived on the ``KeyDerivationPool``, until they come.
    private var derivationTicket: UInt64?
    /// Closed by its holder: a connect still to begin must not, and nothing more is reported.
    private var abandoned = false
    /// A `received` report waits for the end of the batch (one per batch).
    private var receivedReportScheduled = false
    /// `failed` was reported: the end comes once.
    private var failedReported = false

    init(id: ServerPool.ConnectionID, spec: UpstreamSpec, target: DatabaseTarget, password: Secret?, loop: EventLoop, runtime: RuntimeConfig,
         lookups: LoopLookups) {
        self.lookups = lookups
        self.id = id
        self.spec = spec
        self.target = target
        self.loop = loop
        self.runtime = runtime
        machine = UpstreamStartupMachine(target: target, purpose: .session(
            user: spec.serverUser, password: password, database: spec.dbname, parameters: spec.parameters))
    }

    /// Connects after the current batch, so a failure (no address, refused at once) is never
    /// reported to the owner from inside the owner's own call (a checkout).
    func start() {
        loop.execute(afterCurrentBatch: { [weak self] in self?.begin() })
    }

    private func begin() {
        guard !abandoned else { return }
        if let timeout = target.connectTimeout {
            connectTimer = loop.scheduleTimer(at: loop.now() + timeout) { [weak self] in
                guard let self, !self.isReady else { return }
                self.fail("timeout expired")
            }
        }
        // Host names resolve on a lookup thread (the link waits, its loop does not); IP
        // literals and socket directories answer at once.
        lookupTicket = lookups.addresses(for: target) { [weak self] addresses in
            guard let self, !self.abandoned else { return }
            self.lookupTicket = nil
            self.addresses = addresses
            self.connectNext(lastError: "could not translate host name \"\(self.target.host)\" to address")
        }
    }

    private func connectNext(lastError: String) {
        guard !addresses.isEmpty else { return fail(lastError) }
        let address = addresses.removeFirst()
        do {
            let (fd, pending) = try Socket.connect(to: address)
            let leg = Leg(loop: loop, fd: fd, name: "server", connecting: pending)
            leg.owner = self
            self.leg = leg
            try leg.register()
            if !pending { legConnected(leg, error: nil) }
        } catch {
            connectNext(lastError: "connection to server at \(address) failed: \(error)")
        }
    }

    private func fail(_ reason: String) {
        fail(fields: UpstreamStartupMachine.connectionError(database: target.name, reason: reason))
    }

    private func fail(fields: ErrorFields) {
        guard !failedReported else { return }
        failedReported = true
        if let lookupTicket { lookups.cancel(lookupTicket); self.lookupTicket = nil }
        if let derivationTicket { lookups.cancel(derivationTicket); self.derivationTicket = nil }
        if let connectTimer { loop.cancelTimer(connectTimer); self.connectTimer = nil }
        leg?.close()
        leg = nil
        report(.failed(fields))
    }

    /// The one way out to the owner: after the current batch, to the holder at that moment
    /// (a link the pool hands to a session meanwhile reports to the session), dropped once the
    /// holder closed the link.
    private func report(_ event: UpstreamLinkEvent) {
        if case .received = event {
            guard !receivedReportScheduled else { return }
            receivedReportScheduled = true
        }
        loop.execute(afterCurrentBatch: { [weak self] in
            guard let self else { return }
            if case .received = event { self.receivedReportScheduled = false }
            guard !self.abandoned else { return }
            self.owner?.linkEvent(self, event)
        })
    }

    private func run(_ action: UpstreamStartupMachine.Action) {
        guard let leg else { return }
        switch action {
        case .none:
            break
        case .send(let bytes):
            leg.send(bytes)
        case .startTLS:
            guard let context = runtime.upstreamContext(for: target) else { return fail("no TLS context for this database") }
            do {
                let expected = target.sslMode == .verifyFull ? target.host : nil
                leg.startTLS(try TLSConnection(clientContext: context, fd: leg.fd,
                                               serverName: target.sslSNI ? target.host : nil, expectedHost: expected))
            } catch {
                fail(error.message)
            }
        case .ready(let parameters, let notices, let processID, let secretKey):
            self.startupNotices = notices
            if let connectTimer { loop.cancelTimer(connectTimer); self.connectTimer = nil }
            self.parameters = parameters
            self.processID = processID
            self.secretKey = secretKey
            isReady = true
            report(.ready)
        case .sendAndFinish:
            break
        case .fail(let fields):
            fail(fields: fields)
        case .deriveKeys(let derivation):
            deriveKeys(derivation)
        }
    }

    /// PBKDF2 with the server's iteration count runs on the derivation threads; the link waits
    /// (connect_timeout still applies, and the server's messages are still read: an
    /// ErrorResponse meanwhile fails the login), its loop does not. The answer comes through
    /// the loop's mailbox and is dropped if the link failed or was closed meanwhile.
    private func deriveKeys(_ derivation: SCRAMKeyDerivation) {
        derivationTicket = lookups.derive(derivation, for: "\(spec.serverUser)@\(target.name)") { [weak self] keys in
            guard let self, self.derivationTicket != nil, !self.abandoned, !self.failedReported else { return }
            self.derivationTicket = nil
            guard let keys else { return self.fail("too many SCRAM key derivations are waiting; try again later") }
            self.run(self.machine.keysDerived(keys))
        }
    }

    /// Sends Terminate and closes.
    func close() {
        abandoned = true
        if let lookupTicket { lookups.cancel(lookupTicket); self.lookupTicket = nil }
        if let derivationTicket { lookups.cancel(derivationTicket); self.derivationTicket = nil }
        if let connectTimer { loop.cancelTimer(connectTimer); self.connectTimer = nil }
        guard let leg, !leg.isClosed else { return }
        if isReady {
            var terminate = ByteBuffer()
            FrontendMessage.terminate.encode(into: &terminate)
            leg.send(terminate)
            // Sending only queues: write it now, the leg is closed next.
            leg.flush()
        }
        leg.close()
        self.leg = nil
        isReady = false
    }

    /// The session holding this link saw its leg close (while it owned the leg):
    /// the link is no longer usable.
    func serverLegClosed() {
        isReady = false
        leg?.close()
        leg = nil
    }

    // MARK: Leg events (LegOwner.legEvent, Leg+Owners.swift)

    func legConnected(_ leg: Leg, error: Errno?) {
        if let error {
            leg.close()
            self.leg = nil
            return connectNext(lastError: "connection failed: \(error)")
        }
        run(machine.connected())
    }

    func legHandshakeCompleted(_ leg: Leg) {
        run(machine.tlsEstablished(serverEndPoint: leg.tls?.serverEndPointHash))
    }

    func legHandshakeFailed(_ leg: Leg, reason: String) { fail(reason) }

    func legReceivedBytes(_ leg: Leg) {
        if isReady { report(.received); return }
        if machine.isAwaitingSSLResponse {
            guard let byte = leg.inbound.readInteger(as: UInt8.self) else { return }
            run(machine.sslResponseReceived(byte, trailingBytes: leg.inbound.readableBytes > 0))
            return
        }
        let decoder = FrameDecoder(maxMessageLength: 1 << 20)
        while !isReady, let current = self.leg, !current.isClosed {
            do {
                guard let frame = try decoder.peekFrame(in: current.inbound), current.inbound.readableBytes >= frame.totalLength else { return }
                let message = try BackendMessage.decode(frame: frame, from: &current.inbound)
                run(machine.messageReceived(message))
            } catch {
                return fail("invalid message from server: \(error.message)")
            }
        }
        // Bytes after the first ReadyForQuery belong to the owner.
        if isReady, let current = self.leg, current.inbound.readableBytes > 0 { report(.received) }
    }

    func legDrained(_ leg: Leg) {
        if isReady { report(.drained) }
    }

    func legClosed(_ leg: Leg, reason: String?) {
        if isReady {
            isReady = false
            self.leg?.close()
            self.leg = nil
            report(.closed(reason))
        } else {
            fail(reason ?? "server closed the connection unexpectedly")
        }
    }
}

extension DatabaseTarget {
    /// Where to connect, as libpq: a socket directory holds `.s.PGSQL.<port>`; `hostaddr`
    /// skips name resolution while `host` stays the name that verify-full checks.
    func socketAddresses() -> [SocketAddress] {
        if host.hasPrefix("/") {
            return SocketAddress(unixPath: "\(host)/.s.PGSQL.\(port)").map { [$0] } ?? []
        }
        return SocketAddress.resolve(host: hostaddr ?? host, port: port)
    }
}
