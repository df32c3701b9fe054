import Glibc
import Policy
import Wire

/// Client → server: each message is forwarded as it arrives, or held whole when the gate, the
/// lifecycle or Terminate needs it.
extension SessionMachine {
    /// PostgreSQL's statement_timeout error (errcodes 57014; postgres.c ProcessInterrupts):
    /// what a statement gets whose classification ran out of `readonly_classify_timeout`.
    package static let classificationTimedOut = Refusal(sqlState: SQLState.queryCanceled,
                                                        message: "canceling statement due to statement timeout",
                                                        isPostgreSQLText: true)

    /// PostgreSQL has no statement length limit short of 1 GB ("invalid message length");
    /// the nearest case, program_limit_exceeded (54000), is used with our own text.
    package static func statementTooLong(_ size: Int, limit: Int) -> Refusal {
        Refusal(sqlState: SQLState.programLimitExceeded,
                message: "statement is too long (\(size) bytes; readonly_max_statement_size is \(limit) bytes)",
                isPostgreSQLText: false)
    }

    /// What to do with the bytes at the front of the client's buffer. The shell runs the
    /// action (consuming exactly what it says) and asks again until ``Action/wait``.
    package mutating func clientStep(in buffer: ByteBuffer, now: Int64) -> Action {
        if isHoldingClientMessages { return .wait }
        let startsMessage = clientTracker.isAtMessageBoundary
        let step: MessageStreamTracker.Step
        do {
            step = try clientTracker.nextStep(in: buffer)
        } catch {
            // postgres.c SocketBackend: an unknown type or a bad length is FATAL 08P01.
            return .close(reason: error.message, error: .error(sqlState: error.sqlState, message: error.message, severity: "FATAL"))
        }
        switch step {
        case .needMoreBytes:
            return .wait
        case .skip(let count):
            return .discardFromClient(count)
        case .oversized(let frame):
            return refuseOversized(frame, in: buffer, now: now)
        case .forward(let count):
            if startsMessage {
                countMessage(clientTracker.lastMessageType, now: now)
                noteSync(clientTracker.lastMessageType)
            }
            return .forwardToServer(count)
        case .inspect(let frame) where frame.type == Self.terminate:
            return terminateReceived(frame)
        case .inspect(let frame):
            let gated = gateStorage != nil && ReadOnlyGate.inspectedClientTypes.contains(frame.type)
            // Transaction pooling classifies every Query and Parse text (pins).
            let pooled = configuration.transactionPooling != nil
                && (frame.type == UInt8(ascii: "Q") || frame.type == UInt8(ascii: "P"))
            if configuration.followsStatements { follow(frame, in: buffer, now: now) } else { countMessage(frame.type, now: now) }
            noteSync(frame.type)
            if configuration.transactionPooling != nil && frame.type == UInt8(ascii: "F") { poolingFunctionCall(frame, in: buffer) }
            if configuration.readOnly != nil {
                if frame.type == UInt8(ascii: "C") { readOnlyCloseSeen(frame, in: buffer) }
                if frame.type == UInt8(ascii: "B"), let action = judgeBindAgain(frame, in: buffer) { return action }
                if frame.type == UInt8(ascii: "E"), let action = judgeExecuteAgain(frame, in: buffer) { return action }
            }
            if configuration.transactionPooling != nil
                && (frame.type == UInt8(ascii: "B") || frame.type == UInt8(ascii: "D") || frame.type == UInt8(ascii: "C")) {
                return preparedStatementStep(frame, in: buffer)
            }
            guard gated || pooled else { return .forwardToServer(frame.totalLength) }
            return gateClientMessage(frame, in: buffer)
        }
    }

    /// The classification of the message ``Action/classify(_:)`` asked for (a refusal as a
    /// whole with ``ReadOnlyGate/refusing(_:)`` when it ran out of time). Returns what to
    /// send in its place, or ``Action/wait`` when nothing was asked.
    package mutating func classified(_ result: ClassificationResult, statementOffsets: [Int]? = nil,
                                     parameterTypesRefusal: Refusal? = nil) -> Action {
        guard let pending = pendingClassification else { return .wait }
        pendingClassification = nil
        return judged(pending, result, statementOffsets: statementOffsets, parameterTypesRefusal: parameterTypesRefusal)
    }

    // MARK: Read-only gate

    /// A read-only session's Query or Parse whose header declares a text over
    /// `readonly_max_statement_size`: refused at once, its stand-in sent, and its bytes dropped
    /// as they arrive (``MessageStreamTracker/Step/oversized(_:)``), never held whole.
    private mutating func refuseOversized(_ frame: MessageFrame, in buffer: ByteBuffer, now: Int64) -> Action {
        let isQuery = frame.type == UInt8(ascii: "Q")
        let limit = configuration.readOnly?.maxStatementSize ?? .max
        let refusal = Self.statementTooLong(frame.totalLength - 5, limit: limit)
        // A Parse's statement name first (the text is never read): whether it is the unnamed
        // statement decides what the refusal does to the client's statements. Up to 64 bytes of
        // it are waited for; a longer name is cut there (PostgreSQL keys names by 63 bytes).
        var nameBytes: [UInt8] = []
        if !isQuery {
            let arrived = buffer.readableBytesView.dropFirst(5).prefix(64)
            if let nul = arrived.firstIndex(of: 0) {
                nameBytes = Array(arrived[..<nul])
            } else if arrived.count < 64 {
                return .wait
            } else {
                nameBytes = Array(arrived)
            }
        }
        let name = String(decoding: nameBytes, as: UTF8.self)
        let message: FrontendMessage = isQuery ? .query("") : .parse(name: name, query: "", parameterTypes: [])
        if configuration.followsStatements {
            let text = "<statement of \(frame.totalLength - 5) bytes, refused unread>"
            if isQuery { lifecycle.queryReceived(text, at: now) } else { lifecycle.parseReceived(name: name, text: text) }
        } else {
            countMessage(frame.type, now: now)
        }
        noteSync(frame.type)
        let consumed = min(buffer.readableBytes, frame.totalLength)
        clientTracker.skipRest(of: frame, consumed: consumed)
        let rawParse = isQuery ? nil : FrontendMessage.RawParse(name: nameBytes, query: [], parameterTypes: [])
        switch verdict(for: message, frame, rawParse: rawParse, textIsUTF8: true, classification: ReadOnlyGate.refusing(refusal)) {
        case .replaceToServer(_, let bytes): return .replaceToServer(consume: consumed, bytes: bytes)
        case .rewriteToServer(_, let bytes): return .replaceToServer(consume: consumed, bytes: bytes)
        case .forwardToServer, .discardFromClient, .forwardToClient, .discardFromServer, .replaceToClient, .classify, .releaseServer,
             .terminate, .wait:
            // A refusal always has its stand-in; nothing of this message may reach the server.
            return .close(reason: "statement too long", error: .error(sqlState: refusal.sqlState, message: refusal.message, severity: "FATAL"))
        case .close(let reason, let error):
            return .close(reason: reason, error: error)
        }
    }

    /// A Query, Parse, FunctionCall or Sync of a read-only session, whole at the front.
    private mutating func gateClientMessage(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action {
        let isQuery = frame.type == UInt8(ascii: "Q")
        let isText = isQuery || frame.type == UInt8(ascii: "P")
        let limit = configuration.readOnly?.maxStatementSize ?? configuration.transactionPooling?.maxClassifiedSize ?? Int.max
        // A read-only session's text over its limit never gets here: refused from its header
        // (``refuseOversized``).
        let tooLong = isText && frame.totalLength - 5 > limit
        let message: FrontendMessage
        // Transaction pooling forwards, keeps and prepares again a Parse's own bytes.
        var rawParse: FrontendMessage.RawParse?
        if frame.type == UInt8(ascii: "S") {
            message = .sync
        } else {
            do {
                message = try Self.decode(frame, in: buffer)
                if configuration.transactionPooling != nil && frame.type == UInt8(ascii: "P") {
                    var bytes = buffer
                    rawParse = try FrontendMessage.RawParse.decode(frame: frame, from: &bytes)
                }
            } catch {
                return .close(reason: error.message, error: .error(sqlState: error.sqlState, message: error.message, severity: "FATAL"))
            }
        }
        if tooLong {
            // A read-write identity's text in transaction pooling: forwarded (and kept, for a
            // named statement) but not parsed; it counts as unclassified.
            return verdict(for: message, frame, rawParse: rawParse, sentFrom: buffer, textIsUTF8: true,
                           classification: ReadOnlyGate.refusing(Self.statementTooLong(frame.totalLength - 5, limit: limit)))
        }
        let textIsUTF8 = Self.textIsUTF8(frame, in: buffer)
        guard textIsUTF8, let sql = ReadOnlyGate.sqlText(of: message) else {
            return verdict(for: message, frame, rawParse: rawParse, sentFrom: buffer, textIsUTF8: textIsUTF8, classification: nil)
        }
        var parameterTypes: [Int32] = []
        if case .parse(_, _, let types) = message { parameterTypes = types }
        pendingClassification = PendingClassification(frame: frame, message: message, rawParse: rawParse)
        return .classify(ClassificationRequest(sql: sql, isQuery: isQuery, parameterTypes: parameterTypes,
                                               messageLength: frame.totalLength))
    }

    mutating func verdict(for message: FrontendMessage, _ frame: MessageFrame, rawParse: FrontendMessage.RawParse?,
                                  sentFrom buffer: ByteBuffer? = nil, textIsUTF8: Bool,
                                  classification: ClassificationResult?, statementOffsets: [Int]? = nil,
                                  parameterTypesRefusal: Refusal? = nil) -> Action {
        let original = classification
        var classification = classification
        var parameterTypesRefusal = parameterTypesRefusal
        var statementPins: SessionStateEffects = []
        if configuration.transactionPooling != nil {
            (classification, statementPins) = poolingJudged(message, textIsUTF8: textIsUTF8, classification: classification)
            // The catalog's verdict on parameter types is the read-only gate's alone.
            if configuration.readOnly == nil { parameterTypesRefusal = nil }
        }
        let textCounts = textIsUTF8 || configuration.readOnly == nil
        let judged = withGate {
            $0.clientMessageReceived(message, textIsUTF8: textCounts,
                                     classification: classification, statementOffsets: statementOffsets,
                                     parameterTypesRefusal: parameterTypesRefusal)
        }
        let allowed = if case .replace = judged { false } else { true }
        // Transaction pooling: prepared statements the text names in SQL, made the client's own
        // on this server first (SessionMachine+SQLStatementNames.swift).
        var prelude = ByteBuffer()
        if configuration.transactionPooling != nil && allowed {
            if let original, original.syntaxError == nil {
                var isParse = false
                if case .parse = message { isParse = true }
                sqlStatementReferences(original, isParse: isParse, into: &prelude)
            } else if ReadOnlyGate.sqlText(of: message) != nil {
                // Not read (too long, too deep, not UTF-8): it may name any statement in SQL.
                closeOtherClientsStatements(into: &prelude)
            }
        }
        if configuration.transactionPooling != nil, case .query(let text) = message {
            let dropsAll = original.map { result in
                result.syntaxError == nil ? result.statements.filter { !$0.sessionEffects.isDisjoint(with: [.deallocateAll, .discardAll]) }.count : 0
            } ?? 0
            poolingQuerySent(allowed: allowed, dropsAll: dropsAll)
            if prelude.readableBytes > 0, judged.map({ if case .forward = $0 { true } else { false } }) ?? true {
                if let buffer {
                    // Not classified (too long, not UTF-8: a LATIN1 client's text): its own bytes,
                    // which the decoded String holds only lossily.
                    prelude.writeBytes(buffer.readableBytesView.prefix(frame.totalLength))
                } else {
                    // Classified, so valid UTF-8: encoded again byte for byte.
                    FrontendMessage.query(text).encode(into: &prelude)
                }
                return .rewriteToServer(consume: frame.totalLength, bytes: prelude)
            }
        }
        if configuration.transactionPooling != nil, case .parse = message, let rawParse {
            // Statements follow the client (SessionMachine+PreparedStatements.swift), as the
            // bytes it sent: the decoded message's Strings are UTF-8 read lossily.
            guard !rawParse.name.isEmpty else {
                poolingUnnamedParse(rawParse, allowed: allowed, pins: statementPins)
                if case .replace(let bytes) = judged { return .replaceToServer(consume: frame.totalLength, bytes: bytes) }
                guard prelude.readableBytes == 0 else {
                    rawParse.encode(into: &prelude)
                    return .rewriteToServer(consume: frame.totalLength, bytes: prelude)
                }
                return .forwardToServer(frame.totalLength)
            }
            var sent = ByteBuffer()
            if case .replace(let bytes) = judged { sent = bytes } else { rawParse.encode(into: &sent) }
            return poolingParse(rawParse, sent: sent, allowed: allowed, pins: statementPins, consume: frame.totalLength, prelude: prelude)
        }
        guard let verdict = judged else {
            return .forwardToServer(frame.totalLength)
        }
        switch verdict {
        case .forward: return .forwardToServer(frame.totalLength)
        case .replace(let bytes): return .replaceToServer(consume: frame.totalLength, bytes: bytes)
        }
    }

    // MARK: Statement lifecycle

    /// A complete client message the lifecycle follows, seen once (a message waiting for its
    /// classification is not looked at again).
    private mutating func follow(_ frame: MessageFrame, in buffer: ByteBuffer, now: Int64) {
        switch frame.type {
        case UInt8(ascii: "S"):
            lifecycle.syncReceived()
            return
        case UInt8(ascii: "c"), UInt8(ascii: "f"):
            lifecycle.copyEndReceived()
            return
        case UInt8(ascii: "Q"), UInt8(ascii: "P"):
            // Text in another client encoding is converted for the record (the server converts
            // it before parsing: postgres.c pg_client_to_server), not read as UTF-8.
            if let reading = textReading?.now, !reading.isUTF8, let (name, bytes) = Self.textBytes(frame, in: buffer) {
                let text = ClientText.decode(bytes, encoding: reading.clientEncoding).text
                if frame.type == UInt8(ascii: "Q") { lifecycle.queryReceived(text, at: now) } else { lifecycle.parseReceived(name: name, text: text) }
                return
            }
            // The usual Query is read in place: one string, without decoding a copy of the frame.
            if frame.type == UInt8(ascii: "Q"), let text = Self.queryText(frame, in: buffer) {
                lifecycle.queryReceived(text, at: now)
                return
            }
        default:
            break
        }
        // A message that does not decode still reaches the server, which answers it (a
        // malformed Query or FunctionCall: 08P01 and ReadyForQuery): counted by its type.
        guard let message = try? Self.decode(frame, in: buffer) else { return countMessage(frame.type, now: now) }
        switch message {
        case .query(let text): lifecycle.queryReceived(text, at: now)
        case .parse(let name, let text, _): lifecycle.parseReceived(name: name, text: text)
        case .bind(let bind):
            let parameters = configuration.parameterLogging.map { Self.loggedParameters(bind, maxSize: $0.maxSize) }
            lifecycle.bindReceived(portal: bind.portal, statement: bind.statement, parameters: parameters)
        case .execute(let portal, _): lifecycle.executeReceived(portal: portal, at: now)
        case .close(let target, let name): lifecycle.closeReceived(isStatement: target == .statement, name: name)
        case .functionCall(let call): lifecycle.functionCallReceived(oid: UInt32(bitPattern: call.functionOID), at: now)
        case .describe: lifecycle.extendedMessageReceived()
        case .copyData: lifecycle.copyDataReceived()
        case .sync, .flush, .terminate, .copyDone, .copyFail, .passwordMessage, .saslInitialResponse, .saslResponse:
            break
        }
    }

    /// Bind values as the audit record's PARAMETER shows them (pgAudit `log_parameter`):
    /// text-format values as text, values longer than `maxSize` bytes (when above 0) as
    /// pgAudit's `<long param suppressed>`, binary-format values as `\\x` and hex (pgAudit runs
    /// the type's output function, which the proxy cannot), NULL as nil.
    ///
    /// Runs on the loop: a suppressed value costs only its length check, a kept one a single
    /// bulk pass (text: the stdlib's UTF-8 validation; binary: ``hexText(_:)``). The per-byte
    /// array appends this replaced took about 1 s per 62 MB value, stalling every session of
    /// the loop.
    package static func loggedParameters(_ bind: FrontendMessage.Bind, maxSize: Int) -> [String?] {
        bind.parameters.enumerated().map { index, value -> String? in
            guard let value else { return nil }
            if maxSize > 0 && value.count > maxSize { return "<long param suppressed>" }
            let format = bind.parameterFormats.count == 1 ? bind.parameterFormats[0]
                : (bind.parameterFormats.indices.contains(index) ? bind.parameterFormats[index] : 0)
            if format == 0 { return String(decoding: value, as: UTF8.self) }
            return value.withUnsafeBufferPointer { hexText($0) }
        }
    }

    /// `\x` and two lower-case hex digits per byte, as PostgreSQL's `byteaout` writes bytea
    /// in hex (src/backend/utils/adt/varlena.c), straight into the string's own storage: one
    /// allocation of exactly the output's size, no intermediate array.
    package static func hexText(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: 2 + 2 * bytes.count) { out -> Int in
            out[0] = UInt8(ascii: "\\")
            out[1] = UInt8(ascii: "x")
            var position = 2
            for byte in bytes {
                out[position] = hexDigit(byte >> 4)
                out[position + 1] = hexDigit(byte & 15)
                position += 2
            }
            return position
        }
    }

    /// One nibble's lower-case hex digit without a table or a branch: "0"…"9", then "a"…"f"
    /// (39 = "a" - "0" - 10, added when the nibble is 10 or more).
    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble &+ 48 &+ ((nibble &+ 6) >> 4) &* 39
    }

    /// Without `followsStatements`: a client message seen by its type alone, for the
    /// replies it will be owed (a Query, FunctionCall or Sync each ends in ReadyForQuery, an
    /// Execute may start a copy-in, CopyDone/CopyFail end one).
    private mutating func countMessage(_ type: UInt8, now: Int64) {
        switch type {
        case UInt8(ascii: "Q"): lifecycle.queryReceived("", at: now)
        case UInt8(ascii: "F"): lifecycle.functionCallReceived(oid: 0, at: now)
        case UInt8(ascii: "E"): lifecycle.executeReceived(portal: "", at: now)
        case UInt8(ascii: "S"): lifecycle.syncReceived()
        case UInt8(ascii: "c"), UInt8(ascii: "f"): lifecycle.copyEndReceived()
        case UInt8(ascii: "d"): lifecycle.copyDataReceived()
        case UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "D"), UInt8(ascii: "C"): lifecycle.extendedMessageReceived()
        default: break
        }
    }

    // MARK: Frames

    /// Decoded from a copy of this frame only: decoding moves a reader index, and doing that on
    /// a copy of the whole buffer would duplicate all of it.
    static func decode(_ frame: MessageFrame, in buffer: ByteBuffer) throws(WireError) -> FrontendMessage {
        // A copy of the buffer value shares its storage: decoding reads the frame's bytes in
        // place (FrameDecoder.takePayload takes exactly `frame.totalLength`).
        var bytes = buffer
        return try FrontendMessage.decode(frame: frame, from: &bytes)
    }

    /// A Query's text when the payload is the text and its NUL, as FrontendMessage.decode
    /// reads it (nil otherwise: the full decode decides).
    static func queryText(_ frame: MessageFrame, in buffer: ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard frame.totalLength > 5, view.count >= frame.totalLength else { return nil }
        return view[(view.startIndex + 5)..<(view.startIndex + frame.totalLength)].withUnsafeBytes { raw -> String? in
            guard let base = raw.baseAddress, let nul = memchr(base, 0, raw.count), UnsafeRawPointer(nul) - base == raw.count - 1 else {
                return nil
            }
            return String(decoding: UnsafeRawBufferPointer(start: base, count: raw.count - 1), as: UTF8.self)
        }
    }

    /// A Query's text, or a Parse's statement name and text, as bytes (protocol 55.7: Query is
    /// one String, Parse a String name then a String query); nil when they are not terminated.
    static func textBytes(_ frame: MessageFrame, in buffer: ByteBuffer) -> (name: String, text: ArraySlice<UInt8>)? {
        let payload = Array(buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5))
        guard let first = payload.firstIndex(of: 0) else { return nil }
        if frame.type == UInt8(ascii: "Q") { return ("", payload[..<first]) }
        let rest = payload[(first + 1)...]
        guard let second = rest.firstIndex(of: 0) else { return nil }
        return (String(decoding: payload[..<first], as: UTF8.self), rest[..<second])
    }

    /// A Parse's statement name (up to its NUL) as sent, without decoding the rest.
    static func statementNameBytes(_ frame: MessageFrame, in buffer: ByteBuffer) -> [UInt8] {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        return Array(payload.prefix { $0 != 0 })
    }

    /// Query and Parse text must be valid UTF-8: it is classified as UTF-8, so any other
    /// reading of the same bytes by the server could differ from what was judged. On raw
    /// memory (memchr, the stdlib's validator): per-byte closures cost seconds per 20 MB in a
    /// debug build, on the loop.
    package static func textIsUTF8(_ frame: MessageFrame, in buffer: ByteBuffer) -> Bool {
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
}
