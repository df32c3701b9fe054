import EventLoop
import Policy
import Wire
import Auth
import Glibc

/// The read-only gate's shell: every Query, Parse, FunctionCall and Sync of a read-only
/// session goes through ``ReadOnlyGate``; Query and Parse texts are classified first — at once
/// on a loop-cache hit, else on a ``ClassifierPool`` thread while the session waits (its loop
/// does not) — and server ErrorResponses go back through the gate.
extension ClientSession {
    /// A Query or Parse at the front of the client's buffer, waiting for its classification.
    struct PendingClassification {
        let ticket: UInt64
        let frame: MessageFrame
        let message: FrontendMessage
        let timer: TimerID
    }

    /// A fresh 128-bit token per refusal (``ReadOnlyGate``).
    static func refusalToken() -> String {
        Crypto.randomBytes(16).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// PostgreSQL's statement_timeout error (errcodes 57014; postgres.c ProcessInterrupts).
    static let classificationTimedOut = Refusal(sqlState: SQLState.queryCanceled,
                                                message: "canceling statement due to statement timeout",
                                                isPostgreSQLText: true)

    /// PostgreSQL has no statement length limit short of 1 GB ("invalid message length");
    /// the nearest case, program_limit_exceeded (54000), is used with our own text.
    static func statementTooLong(_ size: Int, limit: Int) -> Refusal {
        Refusal(sqlState: SQLState.programLimitExceeded,
                message: "statement is too long (\(size) bytes; readonly_max_statement_size is \(limit) bytes)",
                isPostgreSQLText: false)
    }

    /// A Query, Parse, FunctionCall or Sync of a read-only session, complete at the front of
    /// the client's buffer: forwarded as it is, or replaced by the gate's stand-in. Returns
    /// false when the message waits for its classification (it stays in the buffer).
    func gateClientMessage(_ frame: MessageFrame, to server: Leg) throws(WireError) -> Bool {
        guard readOnlyGate != nil else {
            server.send(client.inbound.readableBytesView.prefix(frame.totalLength))
            client.inbound.moveReaderIndex(forwardBy: frame.totalLength)
            return true
        }
        let isText = frame.type == UInt8(ascii: "Q") || frame.type == UInt8(ascii: "P")
        let maxSize = runtime.config.general.readOnlyMaxStatementSize
        if isText && frame.totalLength - 5 > maxSize {
            // Refused unread: no copy, no UTF-8 check, no parse of a text this long.
            let message: FrontendMessage = frame.type == UInt8(ascii: "Q")
                ? .query("") : .parse(name: Self.statementName(frame, in: client.inbound), query: "", parameterTypes: [])
            applyVerdict(for: message, frame, textIsUTF8: true,
                         classification: ReadOnlyGate.refusing(Self.statementTooLong(frame.totalLength - 5, limit: maxSize)), to: server)
            return true
        }
        // Decoded from a copy of this frame only: decoding moves a reader index, and doing that
        // on a copy of the whole inbound buffer would duplicate all of it.
        let message: FrontendMessage
        if frame.type == UInt8(ascii: "S") {
            message = .sync
        } else {
            var frameBytes = ByteBuffer(bytes: client.inbound.readableBytesView.prefix(frame.totalLength))
            message = try FrontendMessage.decode(frame: frame, from: &frameBytes)
        }
        let textIsUTF8 = Self.textIsUTF8(frame, in: client.inbound)
        guard textIsUTF8, let sql = ReadOnlyGate.sqlText(of: message) else {
            applyVerdict(for: message, frame, textIsUTF8: textIsUTF8, classification: nil, to: server)
            return true
        }
        // Only SQL text names relations: the catalog check applies to Query and Parse.
        let lookup = policy.classify(sql: sql, catalog: shared.catalogs.snapshot(for: databaseEntry), isQuery: frame.type == UInt8(ascii: "Q"),
                                     completion: { [weak self] done in self?.classificationArrived(done, bytes: frame.totalLength) })
        switch lookup {
        case .hit(let result):
            applyVerdict(for: message, frame, textIsUTF8: true, classification: result, to: server)
            return true
        case .pending(let ticket):
            let timer = loop.scheduleTimer(at: loop.now() + runtime.config.general.readOnlyClassifyTimeout) { [weak self] in
                self?.classificationTimedOut(ticket)
            }
            classifying = PendingClassification(ticket: ticket, frame: frame, message: message, timer: timer)
            updateClientReadPause()
            return false
        }
    }

    private func classificationArrived(_ done: ClassificationDone, bytes: Int) {
        guard let pending = classifying, pending.ticket == done.ticket, !finished else { return }
        loop.cancelTimer(pending.timer)
        logger.debug("statement of \(bytes) bytes classified in \(done.elapsed.millisecondsClamped) ms")
        resume(pending, classification: done.result, statementOffsets: done.statementOffsets)
    }

    private func classificationTimedOut(_ ticket: UInt64) {
        guard let pending = classifying, pending.ticket == ticket, !finished else { return }
        // The thread cannot be stopped inside the parser; its answer is dropped when it comes.
        policy.cancel(ticket)
        logger.warning("classification exceeded readonly_classify_timeout")
        resume(pending, classification: ReadOnlyGate.refusing(Self.classificationTimedOut))
    }

    private func resume(_ pending: PendingClassification, classification: ClassificationResult, statementOffsets: [Int]? = nil) {
        classifying = nil
        guard let server else { return }
        applyVerdict(for: pending.message, pending.frame, textIsUTF8: true, classification: classification,
                     statementOffsets: statementOffsets, to: server)
        forwardClientBytes()
    }

    /// Ends a classification still under way (the session is ending).
    func abandonClassification() {
        guard let pending = classifying else { return }
        classifying = nil
        loop.cancelTimer(pending.timer)
        policy.cancel(pending.ticket)
    }

    /// Sends the message (still at the front of the client's buffer) or its stand-in, and
    /// consumes it.
    private func applyVerdict(for message: FrontendMessage, _ frame: MessageFrame, textIsUTF8: Bool,
                              classification: ClassificationResult?, statementOffsets: [Int]? = nil, to server: Leg) {
        // A parameter declared with a flagged type's OID (a user cast, a domain CHECK calling
        // code) coerces through it although the text names no type.
        var typed: Refusal?
        if case .parse(_, _, let parameterTypes) = message, !parameterTypes.isEmpty {
            typed = shared.catalogs.snapshot(for: databaseEntry).refusal(forParameterTypes: parameterTypes)
        }
        // Mutated in place (not copied out and back), so its pending list is never duplicated.
        guard let verdict = readOnlyGate?.clientMessageReceived(message, textIsUTF8: textIsUTF8, classification: classification,
                                                                 statementOffsets: statementOffsets,
                                                                 parameterTypesRefusal: typed) else { return }
        switch verdict {
        case .forward:
            server.send(client.inbound.readableBytesView.prefix(frame.totalLength))
        case .replace(let bytes):
            refusalLog.log(to: logger, at: loop.now())
            server.send(bytes)
        }
        client.inbound.moveReaderIndex(forwardBy: frame.totalLength)
    }

    /// A Parse's statement name (up to its NUL), without decoding the rest.
    private static func statementName(_ frame: MessageFrame, in buffer: ByteBuffer) -> String {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        return String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Query and Parse text must be valid UTF-8: it is classified as UTF-8, so any other
    /// reading of the same bytes by the server could differ from what was judged. On raw
    /// memory (memchr, the stdlib's validator): per-byte closures cost seconds per 20 MB in a
    /// debug build, on the loop.
    static func textIsUTF8(_ frame: MessageFrame, in buffer: ByteBuffer) -> Bool {
        guard frame.type == UInt8(ascii: "Q") || frame.type == UInt8(ascii: "P") else { return true }
        return buffer.readableBytesView.prefix(frame.totalLength).withUnsafeBytes { raw -> Bool in
            guard raw.count > 5, let base = raw.baseAddress else { return true }
            var offset = 5
            // Query: text NUL. Parse: name NUL text NUL parameter types.
            for _ in 0..<(frame.type == UInt8(ascii: "P") ? 2 : 1) {
                let remaining = raw.count - offset
                guard remaining > 0 else { return true }
                let end = memchr(base + offset, 0, remaining).map { UnsafeRawPointer($0) - base } ?? raw.count
                let text = UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: UInt8.self), count: end - offset)
                guard String(validating: text, as: UTF8.self) != nil else { return false }
                offset = end + 1
            }
            return true
        }
    }

    /// A server ErrorResponse of a read-only session: the refusal in place of its stand-in's
    /// error, anything else unchanged.
    /// Returns the error the client was sent and whether it is the gate's refusal (for the
    /// audit stream).
    @discardableResult
    func gateServerError(_ frame: MessageFrame, from server: Leg) throws(WireError) -> (ErrorFields, refused: Bool)? {
        var frameBytes = ByteBuffer(bytes: server.inbound.readableBytesView.prefix(frame.totalLength))
        var sent: (ErrorFields, refused: Bool)?
        if case .errorResponse(let fields) = try BackendMessage.decode(frame: frame, from: &frameBytes) {
            if let replacement = readOnlyGate?.serverErrorReceived(fields) {
                var out = ByteBuffer()
                BackendMessage.errorResponse(replacement).encode(into: &out)
                client.send(out)
                server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
                return (replacement, true)
            }
            sent = (fields, false)
        }
        client.send(server.inbound.readableBytesView.prefix(frame.totalLength))
        server.inbound.moveReaderIndex(forwardBy: frame.totalLength)
        return sent
    }
}

