import EventLoop
import TLS
import Wire
import Logging

/// Carries one CancelRequest to the upstream server over a new connection, with the same TLS
/// rules as the session's own connection (the real secret key never crosses the wire in
/// plaintext when the database entry requires TLS). PostgreSQL sends no reply; we close when done.
final class CancelForwarder: LegDelegate {
    private let loop: EventLoop
    private var machine: UpstreamStartupMachine
    private let runtime: RuntimeConfig
    private var leg: Leg?
    private let logger: Logger
    private var timer: TimerID?
    /// Keeps itself alive until the exchange ends.
    private var keepAlive: CancelForwarder?
    private let lookups: LoopLookups

    private init(loop: EventLoop, entry: CancelRegistry.Entry, processID: Int32, logger: Logger, lookups: LoopLookups) {
        self.loop = loop
        self.lookups = lookups
        self.runtime = entry.runtime
        self.logger = logger
        machine = UpstreamStartupMachine(target: entry.target, purpose: .cancel(processID: processID, secretKey: entry.serverSecretKey))
    }

    static func start(loop: EventLoop, entry: CancelRegistry.Entry, processID: Int32, logger: Logger, lookups: LoopLookups) {
        let forwarder = CancelForwarder(loop: loop, entry: entry, processID: processID, logger: logger, lookups: lookups)
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
            leg.delegate = self
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
            finishing = true
            if leg.outbound.readableBytes == 0 { done(nil) }
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
        }
    }
    private var finishing = false

    private func done(_ failure: String?) {
        if let failure { logger.warning("could not forward cancel request: \(failure)") }
        if let timer { loop.cancelTimer(timer) }
        timer = nil
        leg?.close()
        leg = nil
        keepAlive = nil
    }

    func legConnected(_ leg: Leg, error: Errno?) {
        if let error { return done("connection failed: \(error)") }
        run(machine.connected())
    }
    func legHandshakeCompleted(_ leg: Leg) { run(machine.tlsEstablished(serverEndPoint: nil)) }
    func legHandshakeFailed(_ leg: Leg, reason: String) { done(reason) }
    func legPeekedFirstByte(_ leg: Leg, byte: UInt8) {}
    func legReceivedBytes(_ leg: Leg) {
        if machine.isAwaitingSSLResponse, let byte = leg.inbound.readInteger(as: UInt8.self) {
            run(machine.sslResponseReceived(byte, trailingBytes: leg.inbound.readableBytes > 0))
        }
    }
    func legDrained(_ leg: Leg) { if finishing { done(nil) } }
    func legClosed(_ leg: Leg, reason: String?) { done(finishing ? nil : (reason ?? "server closed the connection")) }
}
