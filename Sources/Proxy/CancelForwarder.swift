import EventLoop
import TLS
import Wire
import Logging

/// Carries one CancelRequest to the upstream server over a new connection, with the same TLS
/// rules as the session's own connection (the real secret key never crosses the wire in
/// plaintext when the database entry requires TLS). PostgreSQL sends no reply: it closes the
/// connection once it has signalled the backend (postmaster.c processCancelRequest). Only then
/// is the request counted as over in the registry (``CancelRegistry/cancelFinished(backendProcessID:)``),
/// so the backend's server connection is not handed to another client before the signal
/// landed, and only then does `finished` run, which closes the client's cancel connection:
/// libpq's PQcancel and asyncpg wait for that close before sending their next query, so the
/// cancel cannot hit it.
final class CancelForwarder: LegOwner {
    private let loop: EventLoop
    private var machine: UpstreamStartupMachine
    private let runtime: RuntimeConfig
    private var leg: Leg?
    private let logger: Logger
    private var timer: TimerID?
    /// Keeps itself alive until the exchange ends.
    private var keepAlive: CancelForwarder?
    private let lookups: LoopLookups
    /// Where the request is counted in flight (nil: not counted).
    private let registry: CancelRegistry?
    private let processID: Int32
    private var ended = false
    private var finished: (() -> Void)?

    private init(loop: EventLoop, entry: CancelRegistry.Entry, processID: Int32, logger: Logger, lookups: LoopLookups,
                 registry: CancelRegistry?, finished: (() -> Void)?) {
        self.loop = loop
        self.registry = registry
        self.processID = processID
        self.lookups = lookups
        self.finished = finished
        self.runtime = entry.runtime
        self.logger = logger
        machine = UpstreamStartupMachine(target: entry.target, purpose: .cancel(processID: processID, secretKey: entry.serverSecretKey))
    }

    /// `registry`: the request was counted in flight there (``CancelRegistry/beginCancel(_:)``).
    /// `finished` runs on the loop once the request is delivered (the server closed), failed or
    /// timed out.
    static func start(loop: EventLoop, entry: CancelRegistry.Entry, processID: Int32, logger: Logger, lookups: LoopLookups,
                      registry: CancelRegistry? = nil, finished: (() -> Void)? = nil) {
        let forwarder = CancelForwarder(loop: loop, entry: entry, processID: processID, logger: logger, lookups: lookups,
                                        registry: registry, finished: finished)
        forwarder.keepAlive = forwarder
        forwarder.connect()
    }

    /// Host names resolve on a lookup thread (the forwarder keeps itself alive meanwhile).
    private func connect() {
        let target = machine.target
        _ = lookups.addresses(for: target) { [self] addresses in
            guard let address = addresses.first else { return done("could not resolve \(target.host)") }
            connect(to: address)
        }
    }

    private func connect(to address: SocketAddress) {
        do {
            let (fd, pending) = try Socket.connect(to: address)
            let leg = Leg(loop: loop, fd: fd, name: "cancel", connecting: pending)
            leg.owner = self
            self.leg = leg
            try leg.register()
            timer = loop.scheduleTimer(at: loop.now() + .seconds(10)) { [weak self] in self?.done("cancel request timed out") }
            if !pending { legConnected(leg, error: nil) }
        } catch {
            done("could not connect: \(error)")
        }
    }

    private func run(_ action: UpstreamStartupMachine.Action) {
        guard let leg else { return }
        switch action {
        case .none, .ready:
            break
        case .send(let bytes):
            leg.send(bytes)
        case .sendAndFinish(let bytes):
            leg.send(bytes)
            // Over when PostgreSQL closes the connection (legClosed), or at the timer.
            finishing = true
        case .startTLS:
            let target = machine.target
            guard let context = runtime.upstreamContext(for: target) else { return done("no TLS context") }
            do {
                let expected = target.sslMode == .verifyFull ? target.host : nil
                leg.startTLS(try TLSConnection(clientContext: context, fd: leg.fd, serverName: target.sslSNI ? target.host : nil, expectedHost: expected))
            } catch {
                done(error.message)
            }
        case .fail(let fields):
            done(fields.message ?? "failed")
        case .deriveKeys:
            // A cancel request never authenticates (55.2.7).
            done("unexpected authentication")
        }
    }
    private var finishing = false

    private func done(_ failure: String?) {
        guard !ended else { return }
        ended = true
        registry?.cancelFinished(backendProcessID: processID)
        if let failure { logger.warning("could not forward cancel request: \(failure)") }
        if let timer { loop.cancelTimer(timer) }
        timer = nil
        leg?.close()
        leg = nil
        keepAlive = nil
        let finished = self.finished
        self.finished = nil
        finished?()
    }

    func legConnected(_ leg: Leg, error: Errno?) {
        if let error { return done("connection failed: \(error)") }
        run(machine.connected())
    }
    func legHandshakeCompleted(_ leg: Leg) { run(machine.tlsEstablished(serverEndPoint: nil)) }
    func legHandshakeFailed(_ leg: Leg, reason: String) { done(reason) }
    func legReceivedBytes(_ leg: Leg) {
        if machine.isAwaitingSSLResponse, let byte = leg.inbound.readInteger(as: UInt8.self) {
            run(machine.sslResponseReceived(byte, trailingBytes: leg.inbound.readableBytes > 0))
        }
    }
    func legDrained(_ leg: Leg) {}
    func legClosed(_ leg: Leg, reason: String?) { done(finishing ? nil : (reason ?? "server closed the connection")) }
}
