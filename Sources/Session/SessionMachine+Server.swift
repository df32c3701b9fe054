import Wire

/// Server → client: forwarded as it arrives; ReadyForQuery (transaction status, batch ends),
/// and per configuration CommandComplete, ErrorResponse, ParameterStatus and the replies the
/// lifecycle follows are held whole, up to ``Configuration/maxHeldServerBody``
/// (SessionMachine+ServerLimits.swift).
extension SessionMachine {
    /// What to do with the bytes at the front of the server's buffer.
    package mutating func serverStep(in buffer: ByteBuffer, now: Int64) -> Action {
        let startsMessage = serverTracker.isAtMessageBoundary
        let step: MessageStreamTracker.Step
        do {
            step = try serverTracker.nextStep(in: buffer)
        } catch {
            return .close(reason: "invalid message from server: \(error.message)", error: nil)
        }
        switch step {
        case .needMoreBytes:
            return .wait
        case .oversized(let frame):
            return serverOversized(frame, in: buffer, now: now)
        case .skip(let count):
            return .discardFromServer(count)
        case .forward(let count):
            if startsMessage { countReply(serverTracker.lastMessageType, now: now) }
            return .forwardToClient(count)
        case .inspect(let frame):
            do {
                return try serverMessage(frame, in: buffer, now: now)
            } catch {
                return .close(reason: "invalid message from server: \(error.message)", error: nil)
            }
        }
    }

    private mutating func serverMessage(_ frame: MessageFrame, in buffer: ByteBuffer, now: Int64) throws(WireError) -> Action {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        switch frame.type {
        case UInt8(ascii: "E"):
            return try serverError(frame, in: buffer, now: now)
        case UInt8(ascii: "S"):
            guard configuration.readOnly != nil || configuration.transactionPooling != nil || textReading != nil else {
                return .forwardToClient(frame.totalLength)
            }
            var bytes = ByteBuffer(bytes: buffer.readableBytesView.prefix(frame.totalLength))
            guard case .parameterStatus(let name, let value) = try BackendMessage.decode(frame: frame, from: &bytes) else {
                return .forwardToClient(frame.totalLength)
            }
            withTextReading { reading in
                reading.now.parameterStatus(name: name, value: value)
                reading.batch = reading.batch.merged(with: reading.now)
            }
            if configuration.transactionPooling != nil {
                poolingParameterStatus(name: name, value: value)
                // Backstop: the server reports a setting the client's statements changed, however
                // they did it (a function's set_config; the proxy's own exchanges never come
                // here): the session's settings are read again before the server goes back.
                settingsDirty = true
            }
            if configuration.readOnly != nil,
               case .breached(let reason)? = withGateStorage({ $0.tripwire.parameterStatusReceived(name: name, value: value) }) {
                // Nothing more goes up; the server connection is closed, never reused.
                serverUnusable = true
                events.append(.readOnlyBreached(reason))
                return .close(reason: reason,
                              error: ReadOnlyTripwire.errorFields(for: reason, identity: configuration.readOnly?.identity ?? ""))
            }
            return .forwardToClient(frame.totalLength)
        case UInt8(ascii: "C"):
            if CatalogChangeTag.changesCatalog(payload) { ranCatalogChange = true }
            let tag = String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
            if configuration.transactionPooling != nil { poolingCommandComplete(tag) }
            lifecycle.commandCompleteReceived(tag: tag, at: now)
            return .forwardToClient(frame.totalLength)
        case UInt8(ascii: "Z"):
            readyForQuery(payload.first, now: now)
            return .forwardToClient(frame.totalLength)
        case UInt8(ascii: "1"), UInt8(ascii: "3"):
            // ParseComplete/CloseComplete of what transaction pooling slipped in: dropped.
            if configuration.transactionPooling != nil && completionIsInjected() {
                return .replaceToClient(consume: frame.totalLength, bytes: ByteBuffer())
            }
            lifecycle.extendedReplyReceived()
            return .forwardToClient(frame.totalLength)
        default:
            countReply(frame.type, now: now)
            return .forwardToClient(frame.totalLength)
        }
    }

    /// A reply the lifecycle follows, by its type alone (when it was not held whole, or needs
    /// nothing but its type).
    private mutating func countReply(_ type: UInt8, now: Int64) {
        switch type {
        case UInt8(ascii: "C"): lifecycle.commandCompleteReceived(tag: "", at: now)
        case UInt8(ascii: "I"): lifecycle.emptyQueryReceived(at: now)
        case UInt8(ascii: "s"): lifecycle.portalSuspendedReceived(at: now)
        case UInt8(ascii: "G"): lifecycle.copyInStarted()
        case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "T"), UInt8(ascii: "n"): lifecycle.extendedReplyReceived()
        case UInt8(ascii: "E"): lifecycle.errorReceived(sqlState: "", message: "", refused: false, at: now)
        default: break
        }
    }

    /// An ErrorResponse: the refusal in place of its stand-in's error, anything else unchanged.
    private mutating func serverError(_ frame: MessageFrame, in buffer: ByteBuffer, now: Int64) throws(WireError) -> Action {
        var bytes = ByteBuffer(bytes: buffer.readableBytesView.prefix(frame.totalLength))
        guard case .errorResponse(let fields) = try BackendMessage.decode(frame: frame, from: &bytes) else {
            return .forwardToClient(frame.totalLength)
        }
        guard let replacement = serverErrorReceived(fields, now: now) else { return .forwardToClient(frame.totalLength) }
        var out = ByteBuffer()
        BackendMessage.errorResponse(replacement).encode(into: &out)
        return .replaceToClient(consume: frame.totalLength, bytes: out)
    }

    /// What every ErrorResponse settles, held whole or cut (SessionMachine+ServerLimits.swift):
    /// transaction pooling's completions, the gate's pending refusals, the statement's outcome.
    /// Returns the refusal to send in its place when it is a stand-in's error.
    mutating func serverErrorReceived(_ fields: ErrorFields, now: Int64) -> ErrorFields? {
        let skipsToSync = lifecycle.errorSkipsToSync
        if configuration.transactionPooling != nil {
            completionsAfterError(skipsToSync: skipsToSync)
            dropConfirmedReleases()
        }
        let replacement = withGate { $0.serverErrorReceived(fields, skipsToSync: skipsToSync) } ?? nil
        let sent = replacement ?? fields
        lifecycle.errorReceived(sqlState: sent.sqlState ?? "XX000", message: sent.message ?? "", refused: replacement != nil, at: now,
                                raisedReadingCopy: Self.raisedReadingCopy(fields))
        // An error in a copy-in whose window Syncs the server ignored: it skips to a Sync the
        // client has yet to send, so the session is busy until then.
        if lifecycle.awaitsClientSync { unsynced = true }
        return replacement
    }

    /// The error was raised while a copy-in read the client's data, so after the server read a
    /// copy message: CopyGetData's own (CopyFail's 57014 "COPY from stdin failed", 08P01 for
    /// another message type; copyfromparse.c), or one whose outermost context is
    /// CopyFromErrorCallback's "COPY <table>, line N…" (copyfrom.c installs it after the
    /// BEFORE STATEMENT triggers, for the row loop; its only check before reading the first row
    /// is CHECK_FOR_INTERRUPTS, whose errors come from ProcessInterrupts). The routine (`R`) is
    /// never translated; a context translated by lc_messages is not recognised, which only
    /// fails closed.
    static func raisedReadingCopy(_ fields: ErrorFields) -> Bool {
        let routine = fields["R"]
        if routine == "CopyGetData" { return true }
        guard routine != nil, routine != "ProcessInterrupts", let context = fields["W"],
              let outermost = context.split(separator: "\n").last else { return false }
        return outermost.hasPrefix("COPY ")
    }

    /// ReadyForQuery: the server is idle again until the client sends more (docs 55.2.2: one
    /// per Query, FunctionCall and Sync).
    private mutating func readyForQuery(_ statusByte: UInt8?, now: Int64) {
        withGate { $0.readyForQueryReceived() }
        if let statusByte, let status = TransactionStatus(rawValue: statusByte) { transactionStatus = status }
        // DDL counts once its transaction is over (committed or not: a refresh is cheap).
        if ranCatalogChange && transactionStatus == .idle {
            ranCatalogChange = false
            events.append(.catalogChanged)
        }
        // Stamped now, while the backend that ran them is still attached (transaction pooling
        // detaches it once the session is at rest).
        let records = lifecycle.readyForQueryReceived(status: statusByte ?? UInt8(ascii: "I"), at: now)
            .map { stampedWithBackend($0) }
        if configuration.transactionPooling != nil { poolingReadyForQuery() }
        if configuration.followsStatements {
            if !records.isEmpty { reportTextReading() }
            for record in records { events.append(.statementFinished(record)) }
        }
        // The next batch is read as the server reads text now (it parses a Query string whole
        // before running any of it: postgres.c exec_simple_query, pg_parse_query).
        withTextReading { $0.batch = $0.now }
    }

    /// `record` with the process ID of the backend attached now, which is the one that ran it:
    /// its replies came from this backend (audit BACKEND_PID, docs/TRANSACTION_POOLING.md).
    func stampedWithBackend(_ record: StatementLifecycle.Record) -> StatementLifecycle.Record {
        var stamped = record
        stamped.backendPID = backend?.processID
        return stamped
    }

    /// ``Event/textReading(_:)`` for the records about to be reported, when it changed.
    mutating func reportTextReading() {
        guard let reading = textReading, reading.batch != reading.reported else { return }
        let batch = reading.batch
        withTextReading { $0.reported = batch }
        events.append(.textReading(batch))
    }
}
