import EventLoop

/// A new connection before its first byte: watched for readability with a short deadline
/// (`startup_first_byte_timeout`), so a connection that says nothing gives its slot back in
/// seconds instead of holding it for the whole `login_timeout`. Every libpq client speaks
/// first (SSLRequest, GSSENCRequest, a startup packet or a TLS ClientHello), so only idle or
/// hostile connections ever wait here long. No session exists yet: this is a registration
/// and a timer, nothing else.
final class FirstByteWait: ReadinessHandler {
    enum Outcome {
        /// Bytes (or EOF/error, which the session reports as usual) are there.
        case readable
        case timedOut
    }

    let fd: Int32
    /// The client's address key (StartupAddressKey), for per-address eviction.
    let address: String?
    /// Acceptance order: the oldest silent connection is the first to make room.
    let sequence: UInt64
    /// Its place in the start-up limits.
    let slot: StartupSlot
    private let loop: EventLoop
    private var registration: RegistrationID?
    private var timer: TimerID?
    private var done: ((Outcome) -> Void)?

    init(loop: EventLoop, fd: Int32, address: String?, sequence: UInt64, slot: StartupSlot) {
        self.loop = loop
        self.fd = fd
        self.address = address
        self.sequence = sequence
        self.slot = slot
    }

    /// Starts watching; `done` runs exactly once (not at all after `cancel`).
    func start(timeout: Duration, done: @escaping (Outcome) -> Void) throws(Errno) {
        self.done = done
        registration = try loop.register(fd: fd, interest: [.readable, .peerHangUp], handler: self)
        timer = loop.scheduleTimer(at: loop.now() + timeout) { [weak self] in
            self?.timer = nil
            self?.end(.timedOut)
        }
    }

    func readinessReceived(_ events: ReadinessEvents, id: RegistrationID) {
        end(.readable)
    }

    /// Its bytes are there although no event has been handled yet (found by a peek).
    func readableNow() {
        end(.readable)
    }

    /// Stops watching without reporting (eviction, shutdown). The descriptor and the slot stay
    /// the caller's.
    func cancel() {
        done = nil
        end(.timedOut)
    }

    private func end(_ outcome: Outcome) {
        if let registration { loop.deregister(registration); self.registration = nil }
        if let timer { loop.cancelTimer(timer); self.timer = nil }
        guard let done else { return }
        self.done = nil
        done(outcome)
    }
}
