import EventLoop
import TLS
import Wire
import Glibc

/// What a leg tells its session. Called on the loop thread, and only from the loop itself — a
/// readiness event or the work run after the current batch — never from inside a call the
/// delegate made on the leg (`send`, `flush`, `close`, `readPaused`, `startTLS`), so a delegate
/// never has its state torn down under its own feet.
protocol LegDelegate: AnyObject {
    func legConnected(_ leg: Leg, error: Errno?)
    func legHandshakeCompleted(_ leg: Leg)
    func legHandshakeFailed(_ leg: Leg, reason: String)
    func legReceivedBytes(_ leg: Leg)
    /// The first byte, peeked (MSG_PEEK) before anything is read, when `peekFirstByte` is set:
    /// a TLS ClientHello must be left in the socket for OpenSSL.
    func legPeekedFirstByte(_ leg: Leg, byte: UInt8)
    func legDrained(_ leg: Leg)
    /// The peer closed (EOF; `reason` nil) or a read or write failed. Reported once, after the
    /// batch of events in which it was seen; bytes read before it were handed over first.
    func legClosed(_ leg: Leg, reason: String?)
}

/// One socket of a session (the client's or the server's): non-blocking reads and writes, plain
/// or through OpenSSL, with explicit inbound/outbound buffers and epoll interest kept in step.
/// This is shell code; the decisions are made by the session's pure machines.
final class Leg: ReadinessHandler {
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
    /// Strong, so a delegate stays alive for the whole of a call it is in (it may drop its last
    /// other reference there); the cycle is broken in `close()`.
    var delegate: (any LegDelegate)?
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
    private var tlsWriteWantsRead = false
    private var pendingReadScheduled = false
    var peekFirstByte = false
    /// The peer closed its side (EOF); remaining inbound bytes may still be processed.
    private(set) var sawEOF = false
    /// A read or write failed, or EOF was read: recorded here, reported once through
    /// `legClosed` after the current batch. No more I/O is attempted on the socket.
    private var recordedEnd: (reason: String?, reported: Bool)?
    private var flushScheduled = false

    init(loop: EventLoop, fd: Int32, name: String, connecting: Bool) {
        self.loop = loop
        self.fd = fd
        self.name = name
        phase = connecting ? .connecting : .plain
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
    /// handshake itself is driven by readiness events, so no delegate call happens in here.
    func startTLS(_ connection: TLSConnection) {
        writeQueued()
        phase = .handshaking(connection)
        // A TLS client speaks first; a TLS server waits for the ClientHello.
        updateInterest(wantWrite: true)
    }

    /// True once a failure or EOF was recorded: the owner should stop using the leg.
    var hasEnded: Bool { recordedEnd != nil }

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
                delegate?.legConnected(self, error: error)
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
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
            if n == 1 {
                delegate?.legPeekedFirstByte(self, byte: byte)
                if isClosed { return }
                if case .handshaking = phase { return }
            }
        }
        if events.isWritable || (tlsWriteWantsRead && events.isReadable) {
            writeQueued()
            if isClosed || recordedEnd != nil { return }
            if outbound.readableBytes == 0 { delegate?.legDrained(self) }
            if isClosed { return }
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
            delegate?.legHandshakeCompleted(self)
            // With read-ahead, OpenSSL may already hold the peer's first message.
            if !isClosed && connection.hasPendingData && !readPaused { readAvailable() }
        case .wantRead:
            updateInterest(wantWrite: false)
        case .wantWrite:
            updateInterest(wantWrite: true)
        case .closed:
            updateInterest(wantWrite: false)
            delegate?.legHandshakeFailed(self, reason: "connection closed during TLS handshake")
        case .failed(let error):
            updateInterest(wantWrite: false)
            delegate?.legHandshakeFailed(self, reason: error.message)
        }
    }

    /// Reads what is available (bounded per wake-up) and hands it to the delegate. Only called
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
                        inbound.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]).assumingMemoryBound(to: UInt8.self))
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
                    inbound.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]).assumingMemoryBound(to: UInt8.self))
                    total += n
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
        if let tls, tls.hasPendingData, !eof, failure == nil {
            // Decrypted bytes wait inside OpenSSL where epoll cannot see them: come back for them.
            schedulePendingRead()
        }
        if let failure {
            recordEnd(reason: failure)
        } else if eof {
            sawEOF = true
            recordEnd(reason: nil)
        }
        updateInterest()
        if total > 0 { delegate?.legReceivedBytes(self) }
    }

    private func schedulePendingRead() {
        guard !pendingReadScheduled else { return }
        pendingReadScheduled = true
        loop.execute(afterCurrentBatch: { [weak self] in
            guard let self else { return }
            self.pendingReadScheduled = false
            if !self.readPaused && !self.isClosed { self.readAvailable() }
        })
    }

    // MARK: Writing

    /// Queues bytes; they are written once the current batch of events is handled. Never
    /// writes, fails or calls the delegate in here.
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
        loop.execute(afterCurrentBatch: { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            guard !self.isClosed, self.recordedEnd == nil else { return }
            self.writeQueued()
            if !self.isClosed, self.recordedEnd == nil, self.outbound.readableBytes == 0 { self.delegate?.legDrained(self) }
        })
    }

    /// Writes as much of `outbound` as the socket takes now (e.g. before closing). A failure is
    /// recorded and reported later; the delegate is not called from here.
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
            outbound.discardReadBytes()
        }
        if let failure { recordEnd(reason: failure) }
        updateInterest()
    }

    /// Records the end of the connection and reports it once, after the current batch.
    private func recordEnd(reason: String?) {
        guard recordedEnd == nil else { return }
        recordedEnd = (reason, false)
        // Nothing more will be written.
        outbound.clear()
        loop.execute(afterCurrentBatch: { [weak self] in
            guard let self, !self.isClosed, let end = self.recordedEnd, !end.reported else { return }
            self.recordedEnd = (end.reason, true)
            self.delegate?.legClosed(self, reason: end.reason)
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
            if !readPaused || tlsWriteWantsRead { interest.formUnion([.readable, .peerHangUp]) }
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
    func releaseIdleBuffers() {
        inbound.releaseIfEmpty()
        outbound.releaseIfEmpty()
    }

    /// Deregisters and closes the descriptor (once). Sends TLS close_notify on a best-effort basis.
    func close() {
        if isClosed { return }
        if case .tls(let connection) = phase { connection.shutdown() }
        phase = .closed
        // Released after the current batch: the delegate may be running right now.
        if let delegate { loop.execute(afterCurrentBatch: { _ = delegate }) }
        delegate = nil
        if let registration { loop.deregister(registration) }
        registration = nil
        closeDescriptor(fd)
        inbound = ByteBuffer()
        outbound = ByteBuffer()
    }
}
