import EventLoop
import TLS
import Wire
import Auth
import Config
import Pool
import Logging

/// What a server connection is for: the pool groups connections by this, because a server
/// session's defaults come from its startup packet and cannot be changed for another client.
struct UpstreamSpec: Hashable {
    var databaseEntry: String
    var dbname: String
    var serverUser: String
    var parameters: [StartupParameter]

    static func == (a: UpstreamSpec, b: UpstreamSpec) -> Bool {
        a.databaseEntry == b.databaseEntry && a.dbname == b.dbname && a.serverUser == b.serverUser && a.parameters == b.parameters
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(databaseEntry)
        hasher.combine(dbname)
        hasher.combine(serverUser)
        for p in parameters {
            hasher.combine(p.name)
            hasher.combine(p.value)
        }
    }
}

/// Whoever holds a server connection right now: a client session, or the pool while it is idle.
/// As with ``LegDelegate``, called only from the loop, never from inside the owner's own call.
protocol UpstreamLinkOwner: AnyObject {
    func linkReady(_ link: UpstreamLink)
    func linkFailed(_ link: UpstreamLink, _ fields: ErrorFields)
    func linkReceivedBytes(_ link: UpstreamLink)
    func linkDrained(_ link: UpstreamLink)
    func linkClosed(_ link: UpstreamLink, reason: String?)
}

/// One server connection: connect, TLS, authenticate (the pure UpstreamStartupMachine decides),
/// then a ready connection whose owner forwards bytes over `leg`.
final class UpstreamLink: LegDelegate {
    let id: ServerPool.ConnectionID
    let spec: UpstreamSpec
    let target: DatabaseTarget
    private let loop: EventLoop
    private let runtime: RuntimeConfig
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
    private(set) var processID: Int32 = 0
    private(set) var secretKey: [UInt8] = []
    private var connectTimer: TimerID?
    private let lookups: LoopLookups
    /// A host-name resolution on a lookup thread, until it answers.
    private var lookupTicket: UInt64?
    /// Closed by its holder: a connect still to begin must not.
    private var abandoned = false

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
            leg.delegate = self
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
        if let lookupTicket { lookups.cancel(lookupTicket); self.lookupTicket = nil }
        if let connectTimer { loop.cancelTimer(connectTimer); self.connectTimer = nil }
        leg?.close()
        leg = nil
        owner?.linkFailed(self, fields)
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
            owner?.linkReady(self)
        case .sendAndFinish:
            break
        case .fail(let fields):
            fail(fields: fields)
        }
    }

    /// Sends Terminate and closes.
    func close() {
        abandoned = true
        if let lookupTicket { lookups.cancel(lookupTicket); self.lookupTicket = nil }
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

    // MARK: LegDelegate

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

    func legPeekedFirstByte(_ leg: Leg, byte: UInt8) {}

    func legReceivedBytes(_ leg: Leg) {
        if isReady { owner?.linkReceivedBytes(self); return }
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
        if isReady, let current = self.leg, current.inbound.readableBytes > 0 { owner?.linkReceivedBytes(self) }
    }

    func legDrained(_ leg: Leg) {
        if isReady { owner?.linkDrained(self) }
    }

    func legClosed(_ leg: Leg, reason: String?) {
        if isReady {
            isReady = false
            let owner = self.owner
            self.leg?.close()
            self.leg = nil
            owner?.linkClosed(self, reason: reason)
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
