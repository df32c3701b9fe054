import EventLoop
import TLS
import Wire
import Glibc

/// What a leg reports to its owner — the one seam between a socket and whoever uses it, in the
/// spirit of PgBouncer's sbuf callback (`sbuf_cb_t`: one function, an event kind).
enum LegEvent {
    /// A non-blocking connect finished (nil) or failed.
    case connected(Errno?)
    case handshakeCompleted
    /// The first byte, peeked (MSG_PEEK) before anything is read, when `peekFirstByte` is set:
    /// a TLS ClientHello must be left in the socket for OpenSSL.
    case peekedFirstByte(UInt8)
    /// New bytes wait in `inbound`.
    case received
    /// Everything queued was written. Deferred: reported after the batch in which the last
    /// byte went out, and only if nothing was queued meanwhile.
    case drained
    /// The TLS handshake failed or the peer closed during it. Deferred, reported once; ends
    /// the leg like `closed`.
    case handshakeFailed(String)
    /// The peer closed (EOF; nil) or a read or write failed. Deferred: reported once, after the
    /// batch of events in which it was seen; bytes read before it were handed over first.
    case closed(String?)
}

/// Whoever uses a leg. Called on the loop thread, and only from the loop itself — a readiness
/// event or the work run after the current batch — never from inside a call the owner made on
/// the leg (`send`, `flush`, `close`, `readPaused`, `startTLS`), so an owner never has its state
/// torn down under its own feet. The end of a leg (`closed`, `handshakeFailed`) and `drained`
/// always arrive after the current batch.
protocol LegOwner: AnyObject {
    func legEvent(_ leg: Leg, _ event: LegEvent)
}

/// One socket of a session (the client's or the server's): non-blocking reads and writes, plain
/// or through OpenSSL, with explicit inbound/outbound buffers and epoll interest kept in step.
/// This is shell code; the decisions are made by the session's pure machines.
final class Leg: ReadinessHandler, BatchWork {
    enum Phase {
        case connecting
        case plain
        case handshaking(TLSConnection)
        case tls(TLSConnection)
        case closed
    }

    /// Reads per wake-up before yielding to other connections (fairness).
    static let maxReadsPerWakeup = 4
    static let readChunk = 16 * 1024

    let loop: EventLoop
    let fd: Int32
    let name: String
    private(set) var registration: RegistrationID?
    /// Strong, so an owner stays alive for the whole of a call it is in (it may drop its last
    /// other reference there); the cycle is broken in `close()`.
    var owner: (any LegOwner)?
    private(set) var phase: Phase
    var inbound = ByteBuffer()
    var outbound = ByteBuffer()
    /// Backpressure: set while the other side's outbound buffer is over its bound.
    var readPaused = false {
        didSet {
            guard oldValue != readPaused else { return }
            updateInterest()
            // Bytes OpenSSL decrypted before the pause are invisible to epoll: come back for them.
            if !readPaused, let tls, tls.hasPendingData { schedulePendingRead() }
        }
    }
    private var tlsReadWantsWrite = false
    /// The loop wake-up in which this leg last resumed a read of bytes OpenSSL held.
    private var pendingReadWakeup: UInt64 = .max
    private var tlsWriteWantsRead = false
    private var pendingReadScheduled = false
    var peekFirstByte = false
    /// A read or write failed, EOF was read, or the handshake failed: recorded here, reported
    /// once (`closed` or `handshakeFailed`) after the current batch. No more I/O is attempted
    /// on the socket.
    private var recordedEnd: (event: LegEvent, reported: Bool)?
    private var flushScheduled = false
    private var drainReportScheduled = false
    /// TLS records read since the sweeper last found the session idle; past
    /// `busyRecordCount` the leg keeps its OpenSSL record buffers (`TLSConnection.keepsBuffers`).
    private var recordsSinceIdle = 0
    static let busyRecordCount = 8
    /// Decrypted bytes read and when the leg began, for ``KeyUpdateBudget``.
    private var tlsBytesReceived: UInt64 = 0
    private let openedAt: MonotonicInstant
    private var keyUpdateBudget = KeyUpdateBudget()

    init(loop: EventLoop, fd: Int32, name: String, connecting: Bool) {
        self.loop = loop
        self.fd = fd
        self.name = name
        phase = connecting ? .connecting : .plain
        openedAt = loop.batchNow
    }

    func register() throws(Errno) {
        let interest: Interest = {
            if case .connecting = phase { return .writable }
            return [.readable, .peerHangUp]
        }()
        registration = try loop.register(fd: fd, interest: interest, handler: self)
    }

    var tls: TLSConnection? {
        switch phase {
        case .tls(let t), .handshaking(let t): t
        case .connecting, .plain, .closed: nil
        }
    }

    var isClosed: Bool { if case .closed = phase { true } else { false } }

    /// Plain bytes already queued (the `S` answering an SSLRequest) are written first; the
    /// handshake itself is driven by readiness events, so no owner call happens in here.
    func startTLS(_ connection: TLSConnection) {
        writeQueued()
        phase = .handshaking(connection)
        // A TLS client speaks first; a TLS server waits for the ClientHello.
        updateInterest(wantWrite: true)
    }

    // MARK: Readiness

    func readinessReceived(_ events: ReadinessEvents, id: RegistrationID) {
        if recordedEnd != nil { return }
        switch phase {
        case .closed:
            return
        case .connecting:
            if events.isWritable || events.isHangUp {
                phase = .plain
                let error = Socket.pendingError(fd)
                updateInterest()
                owner?.legEvent(self, .connected(error))
            }
            return
        case .handshaking:
            driveHandshake()
            return
        case .plain, .tls:
            break
        }
        if peekFirstByte && (events.isReadable || events.isHangUp) {
            peekFirstByte = false
            // Peeked, not read: a TLS ClientHello must stay in the socket for OpenSSL. EOF and
            // errors are left to the read below, which records them.
            if case .processed(let byte?)? = try? Socket.peekByte(fd) {
                owner?.legEvent(self, .peekedFirstByte(byte))
                if isClosed { return }
                if case .handshaking = phase { return }
            }
        }
        if events.isWritable || (tlsWriteWantsRead && events.isReadable) {
            writeQueued()
            if isClosed || recordedEnd != nil { return }
            if outbound.readableBytes == 0 { scheduleDrainReport() }
        }
        if (events.isReadable || events.isHangUp || (tlsReadWantsWrite && events.isWritable)) && !readPaused {
            readAvailable()
        } else if events.isErrorOrFullHangUp && readPaused {
            // The socket is dead; reading now returns what is left and then the error or EOF.
            readPaused = false
            readAvailable()
        }
    }

    private func driveHandshake() {
        guard case .handshaking(let connection) = phase else { return }
        switch connection.handshake() {
        case .done:
            phase = .tls(connection)
            updateInterest(wantWrite: false)
            owner?.legEvent(self, .handshakeCompleted)
            // With read-ahead, OpenSSL may already hold the peer's first message.
            if !isClosed && connection.hasPendingData && !readPaused { readAvailable() }
        case .wantRead:
            updateInterest(wantWrite: false)
        case .wantWrite:
            updateInterest(wantWrite: true)
        case .closed:
            recordEnd(.handshakeFailed("connection closed during TLS handshake"))
            updateInterest(wantWrite: false)
        case .failed(let error):
            recordEnd(.handshakeFailed(error.message))
            updateInterest(wantWrite: false)
        }
    }

    /// Reads what is available (bounded per wake-up) and hands it to the owner. Only called
    /// from the loop (readiness, or the resumed read of bytes OpenSSL holds).
    private func readAvailable() {
        guard recordedEnd == nil else { return }
        var total = 0
        var reads = 0
        var eof = false
        var failure: String?
        tlsReadWantsWrite = false
        let scratch = UnsafeMutableRawBufferPointer(rebasing: loop.readScratch[0..<Self.readChunk])
        readLoop: while reads < Self.maxReadsPerWakeup {
            reads += 1
            switch phase {
            case .plain:
                do {
                    switch try Socket.read(fd, into: scratch) {
                    case .wouldBlock:
                        break readLoop
                    case .processed(let n):
                        if n == 0 { eof = true; break readLoop }
                        inbound.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                        total += n
                        if n < scratch.count { break readLoop }
                    }
                } catch {
                    failure = error.description
                    break readLoop
                }
            case .tls(let connection):
                switch connection.read(into: scratch) {
                case .done(let n):
                    inbound.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    total += n
                    tlsBytesReceived &+= UInt64(n)
                    if recordsSinceIdle < Self.busyRecordCount {
                        recordsSinceIdle += 1
                        if recordsSinceIdle == Self.busyRecordCount { connection.keepsBuffers = true }
                    }
                    // A short read with nothing buffered in OpenSSL: go back to epoll rather
                    // than make a read that would only report EAGAIN.
                    if n < scratch.count && !connection.hasPendingData { break readLoop }
                case .wantRead: break readLoop
                case .wantWrite: tlsReadWantsWrite = true; break readLoop
                case .closed: eof = true; break readLoop
                case .failed(let error): failure = error.message; break readLoop
                }
            case .connecting, .handshaking, .closed:
                break readLoop
            }
        }
        if failure == nil, !eof, let tls, case let updates = tls.keyUpdatesReceived,
           !keyUpdateBudget.allows(updates, bytesReceived: tlsBytesReceived, age: loop.batchNow.duration(since: openedAt)) {
            failure = "the peer sent \(updates) TLS key updates, more than a burst of \(KeyUpdateBudget.burst), then one per MiB received and per minute"
        }
        if let tls, tls.hasPendingData, !eof, failure == nil, !tlsReadWantsWrite {
            // Decrypted bytes wait inside OpenSSL where epoll cannot see them: come back for them.
            // Not while OpenSSL must write first (a KeyUpdate's reply into a full socket): that
            // waits for writability, else the read was retried at once, forever (found in review:
            // a client sending KeyUpdates and never reading spun the loop at 100 %).
            schedulePendingRead()
        }
        if let failure {
            recordEnd(.closed(failure))
        } else if eof {
            recordEnd(.closed(nil))
        }
        updateInterest()
        if total > 0 { owner?.legEvent(self, .received) }
    }

    private func schedulePendingRead() {
        guard !pendingReadScheduled else { return }
        pendingReadScheduled = true
        // One resumed read per wake-up: a peer whose records keep OpenSSL's buffer full (a
        // KeyUpdate flood) reads on after everyone else's turn, not in a loop of its own.
        if pendingReadWakeup == loop.wakeups {
            loop.execute(afterNextWait: self, kind: Deferred.pendingRead.rawValue)
        } else {
            loop.execute(afterCurrentBatch: self, kind: Deferred.pendingRead.rawValue)
        }
    }

    /// What a leg queues for after the batch (``EventLoop/execute(afterCurrentBatch:kind:)``).
    private enum Deferred: UInt8 {
        case pendingRead, flush, drainReport
    }

    func runAfterBatch(_ kind: UInt8) {
        switch Deferred(rawValue: kind) {
        case .pendingRead:
            pendingReadScheduled = false
            pendingReadWakeup = loop.wakeups
            if !readPaused && !isClosed { readAvailable() }
        case .flush:
            flushScheduled = false
            guard !isClosed, recordedEnd == nil else { return }
            writeQueued()
            if !isClosed, recordedEnd == nil, outbound.readableBytes == 0 { scheduleDrainReport() }
        case .drainReport:
            drainReportScheduled = false
            guard !isClosed, recordedEnd == nil, outbound.readableBytes == 0 else { return }
            owner?.legEvent(self, .drained)
        case nil:
            break
        }
    }

    // MARK: Writing

    /// Queues bytes; they are written once the current batch of events is handled. Never
    /// writes, fails or calls the owner in here.
    func send(_ bytes: ByteBuffer) {
        send(bytes.readableBytesView)
    }

    func send(_ bytes: ArraySlice<UInt8>) {
        guard !isClosed, recordedEnd == nil else { return }
        outbound.writeBytes(bytes)
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        loop.execute(afterCurrentBatch: self, kind: Deferred.flush.rawValue)
    }

    /// `drained`, after the current batch, once per batch, and only if the outbound buffer is
    /// still empty then (bytes queued meanwhile are reported by their own flush).
    private func scheduleDrainReport() {
        guard !drainReportScheduled else { return }
        drainReportScheduled = true
        loop.execute(afterCurrentBatch: self, kind: Deferred.drainReport.rawValue)
    }

    /// Writes as much of `outbound` as the socket takes now (e.g. before closing). A failure is
    /// recorded and reported later; the owner is not called from here.
    func flush() {
        guard !isClosed, recordedEnd == nil else { return }
        writeQueued()
    }

    private func writeQueued() {
        tlsWriteWantsRead = false
        var failure: String?
        writeLoop: while outbound.readableBytes > 0 {
            switch phase {
            case .plain:
                let result: Result<IOResult<Int>, Errno> = outbound.readableBytesView.withUnsafeBytes { ptr in
                    do throws(Errno) { return .success(try Socket.write(fd, from: ptr)) } catch { return .failure(error) }
                }
                switch result {
                case .success(.processed(let n)): outbound.moveReaderIndex(forwardBy: n)
                case .success(.wouldBlock): break writeLoop
                case .failure(let error):
                    failure = error.description
                    break writeLoop
                }
            case .tls(let connection):
                let chunk = outbound.readableBytesView.prefix(64 * 1024)
                let outcome = chunk.withUnsafeBytes { connection.write(from: $0) }
                switch outcome {
                case .done(let n): outbound.moveReaderIndex(forwardBy: n)
                case .wantWrite: break writeLoop
                case .wantRead: tlsWriteWantsRead = true; break writeLoop
                case .closed: failure = "connection closed"; break writeLoop
                case .failed(let error): failure = error.message; break writeLoop
                }
            case .connecting, .handshaking, .closed:
                break writeLoop
            }
        }
        if outbound.readableBytes == 0 {
            outbound.clear()
            if outbound.capacity > Self.largeBuffer { outbound = ByteBuffer() }
        } else {
            // Not after every partial write: that moved the whole unsent rest each time.
            outbound.discardReadBytesIfWorthwhile()
        }
        if let failure { recordEnd(.closed(failure)) }
        updateInterest()
    }

    /// Records the end of the connection (`closed` or `handshakeFailed`) and reports it once,
    /// after the current batch.
    private func recordEnd(_ event: LegEvent) {
        guard recordedEnd == nil else { return }
        recordedEnd = (event, false)
        // Nothing more will be written.
        outbound.clear()
        loop.execute(afterCurrentBatch: { [weak self] in
            guard let self, !self.isClosed, let end = self.recordedEnd, !end.reported else { return }
            self.recordedEnd = (end.event, true)
            self.owner?.legEvent(self, end.event)
        })
    }

    private func updateInterest(wantWrite: Bool? = nil) {
        guard let registration, !isClosed else { return }
        var interest: Interest = []
        if recordedEnd != nil {
            // Level-triggered: a dead socket would wake the loop again and again until closed.
            loop.setInterest([], for: registration)
            return
        }
        switch phase {
        case .connecting:
            interest = .writable
        case .handshaking:
            interest = wantWrite == true ? .writable : .readable
        case .plain, .tls:
            // While OpenSSL must write before it reads on (a KeyUpdate's reply into a full
            // socket), readability is of no use: every read would stop at that write again, and
            // a level-triggered readable or half-closed socket would wake the loop without end.
            if (!readPaused || tlsWriteWantsRead) && !tlsReadWantsWrite { interest.formUnion([.readable, .peerHangUp]) }
            if outbound.readableBytes > 0 || tlsReadWantsWrite { interest.insert(.writable) }
        case .closed:
            return
        }
        loop.setInterest(interest, for: registration)
    }

    /// Buffers this large are not kept once empty: one huge message must not pin its memory
    /// for the rest of the session.
    static let largeBuffer = 1 << 20

    /// Gives back a large buffer that is empty now (after a large message went through).
    func releaseLargeBuffers() {
        if inbound.readableBytes == 0 && inbound.capacity > Self.largeBuffer { inbound = ByteBuffer() }
        if outbound.readableBytes == 0 && outbound.capacity > Self.largeBuffer { outbound = ByteBuffer() }
    }

    /// Idle connections keep no buffers: a 16 KiB read buffer per leg would dominate their cost.
    /// OpenSSL's record buffers go too, and are freed after each record until the leg is busy
    /// again (``busyRecordCount`` records before the next sweep).
    func releaseIdleBuffers() {
        inbound.releaseIfEmpty()
        outbound.releaseIfEmpty()
        recordsSinceIdle = 0
        if case .tls(let connection) = phase, !connection.hasPendingData { connection.keepsBuffers = false }
    }

    /// Deregisters and closes the descriptor (once). Sends TLS close_notify on a best-effort basis.
    func close() {
        if isClosed { return }
        if case .tls(let connection) = phase { connection.shutdown() }
        phase = .closed
        // Released after the current batch: the owner may be running right now.
        if let owner { loop.execute(afterCurrentBatch: { _ = owner }) }
        owner = nil
        if let registration { loop.deregister(registration) }
        registration = nil
        closeDescriptor(fd)
        inbound = ByteBuffer()
        outbound = ByteBuffer()
    }
}
