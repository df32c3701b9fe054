import Audit
import AuditSink
import Config
import EventLoop
import Glibc
import Wire

/// Posted to a loop when the audit writer made room in a queue that had been full.
struct AuditRoom: Sendable {}

/// One loop's side of the audit stream: its bounded queue and the sessions waiting for room.
final class LoopAudit {
    let queue: AuditQueue
    let policy: AuditQueueFullPolicy
    /// Sessions that stopped reading their client until the queue has room (backpressure).
    private var waiting: [ObjectIdentifier: ClientSession] = [:]

    init(queue: AuditQueue, policy: AuditQueueFullPolicy) {
        self.queue = queue
        self.policy = policy
    }

    func wait(_ session: ClientSession) { waiting[ObjectIdentifier(session)] = session }
    func forget(_ session: ClientSession) { waiting[ObjectIdentifier(session)] = nil }

    func roomAvailable() {
        let sessions = Array(waiting.values)
        waiting.removeAll()
        for session in sessions { session.auditRoomAvailable() }
    }

    /// Wall-clock microseconds (events carry real time; durations use the monotonic clock).
    static func wallClockMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// One session's audit state.
final class SessionAudit {
    let loopAudit: LoopAudit
    var info: AuditSession
    var lifecycle = StatementLifecycle()
    var textMode: AuditPreparation.TextMode
    let connectedAt: MonotonicInstant
    var bytesIn = 0
    var bytesOut = 0
    /// Events that found the queue full (backpressure): submitted first when there is room.
    var overflow: [AuditEvent] = []
    /// The client message at the front of the buffer was already observed (it waits for its
    /// read-only classification and will be inspected again).
    var frontObserved = false
    var ended = false

    init(loopAudit: LoopAudit, info: AuditSession, textMode: AuditPreparation.TextMode, connectedAt: MonotonicInstant) {
        self.loopAudit = loopAudit
        self.info = info
        self.textMode = textMode
        self.connectedAt = connectedAt
    }

    var isBlocked: Bool { !overflow.isEmpty }
}

extension ClientSession {
    /// Client message types the lifecycle follows (besides the gate's and Terminate).
    /// CopyDone and CopyFail end a copy-in: Syncs sent before them are ignored by the server.
    static let auditedClientTypes: Set<UInt8> = Set("QPBECSFcf".utf8)
    /// Server message types the lifecycle follows.
    static let auditedServerTypes: Set<UInt8> = Set("CEIsZG".utf8)

    static func textMode(_ mode: AuditSettings.TextMode) -> AuditPreparation.TextMode {
        switch mode {
        case .full: .full
        case .normalized: .normalized
        case .none: .none
        }
    }

    /// Called by the loop when the session is made, before `start`.
    func enableAudit(_ loopAudit: LoopAudit) {
        let settings = runtime.config.general.audit
        audit = SessionAudit(loopAudit: loopAudit,
                             info: AuditSession(sessionID: sessionID, clientUser: "", database: "",
                                                clientAddress: remote.isUnix ? "[local]" : remote.host,
                                                clientPort: remote.isUnix ? nil : Int(remote.port)),
                             textMode: Self.textMode(settings.statementText), connectedAt: loop.now())
        clientTracker = MessageStreamTracker(maxMessageLength: runtime.config.general.maxMessageSize,
                                             inspecting: [UInt8(ascii: "X")], validTypes: MessageStreamTracker.frontendTypes)
    }

    func emitAudit(_ kind: AuditEventKind, priority: AuditPriority = .info, withSession: Bool = true,
                   statement: AuditStatement? = nil, details: [AuditDetail] = [], summary: String = "") {
        guard let audit, !audit.ended || kind == .disconnect else { return }
        let event = AuditEvent(kind: kind, timeMicroseconds: LoopAudit.wallClockMicroseconds(), priority: priority,
                               session: withSession ? audit.info : nil, clientAddress: audit.info.clientAddress,
                               statement: statement, details: details, summary: summary)
        submitAudit(event)
    }

    private func submitAudit(_ event: AuditEvent) {
        guard let audit else { return }
        switch audit.loopAudit.policy {
        case .drop:
            audit.loopAudit.queue.submitOrDrop(event)
        case .backpressure:
            if audit.overflow.isEmpty && audit.loopAudit.queue.submit(event) { return }
            // Kept in order behind what is already waiting; the client is not read until the
            // writer made room (``auditRoomAvailable``).
            audit.overflow.append(event)
            audit.loopAudit.wait(self)
            updateClientReadPause()
        }
    }

    /// The writer took events from this loop's queue: submit what waited, read again.
    func auditRoomAvailable() {
        guard let audit else { return }
        while let first = audit.overflow.first {
            guard audit.loopAudit.queue.submit(first) else {
                audit.loopAudit.wait(self)
                return
            }
            audit.overflow.removeFirst()
        }
        guard !finished else { return }
        updateClientReadPause()
        if client.inbound.readableBytes > 0 { forwardClientBytes() }
    }

    var auditBlocked: Bool { audit?.isBlocked ?? false }

    // MARK: Connection events

    func auditConnected() {
        guard let audit else { return }
        emitAudit(.connect, withSession: false,
                  details: audit.info.clientPort.map { [AuditDetail("CLIENT_PORT", String($0))] } ?? [],
                  summary: "connection received: host=\(audit.info.clientAddress)\(audit.info.clientPort.map { " port=\($0)" } ?? "")")
    }

    func auditTLSFailed(_ reason: String) {
        emitAudit(.tlsHandshakeFailed, priority: .warning, withSession: false, details: [AuditDetail("REASON", reason)],
                  summary: "TLS handshake failed: \(reason)")
    }

    func auditAuthenticated(_ request: UpstreamRequest) {
        guard let audit else { return }
        audit.info.clientUser = request.clientUser
        audit.info.database = request.databaseName
        audit.info.serverUser = request.serverUser
        audit.info.certificateCN = clientCertificate?.commonName
        audit.info.certificateDN = clientCertificate?.distinguishedName
        if let tls = client.tls {
            audit.info.tlsVersion = tls.protocolVersion
            audit.info.tlsCipher = tls.cipherName
        }
        if let mode = runtime.config.identities[request.clientUser]?.auditStatementText {
            audit.textMode = Self.textMode(mode)
        }
        var details = [AuditDetail("IDENTITY_MODE", request.mode.rawValue)]
        if let method = request.authMethod { details.append(AuditDetail("AUTH_METHOD", method)) }
        if let origin = request.ruleOrigin { details.append(AuditDetail("HBA_LINE", origin)) }
        emitAudit(.authenticated, details: details,
                  summary: "connection authenticated: user=\(request.clientUser) database=\(request.databaseName)"
                      + " method=\(request.authMethod ?? "none") server_user=\(request.serverUser)")
    }

    func auditAuthenticationFailed(_ failure: AuthenticationFailure) {
        guard let audit else { return }
        audit.info.clientUser = failure.user
        audit.info.database = failure.database
        audit.info.certificateCN = clientCertificate?.commonName
        audit.info.certificateDN = clientCertificate?.distinguishedName
        emitAudit(.authenticationFailed, priority: .warning,
                  details: [AuditDetail("AUTH_METHOD", failure.method ?? "none"), AuditDetail("HBA_LINE", failure.ruleOrigin ?? "none"),
                            AuditDetail("SQLSTATE", failure.sqlState), AuditDetail("REASON", failure.message)],
                  summary: failure.logMessage)
    }

    func auditBackendStarted(processID: Int32) {
        audit?.info.backendPID = processID
    }

    func auditCancelRequest(processID: Int32, known: Bool) {
        emitAudit(.cancelRequest, withSession: false,
                  details: [AuditDetail("TARGET_BACKEND_PID", String(processID)), AuditDetail("KNOWN_KEY", known ? "yes" : "no")],
                  summary: known ? "cancel request forwarded for backend \(processID)" : "cancel request with unknown key ignored")
    }

    func auditDisconnected() {
        guard let audit, !audit.ended else { return }
        let elapsed = loop.now().duration(since: audit.connectedAt)
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        emitAudit(.disconnect, withSession: !audit.info.clientUser.isEmpty,
                  details: [AuditDetail("DURATION_US", String(micros)), AuditDetail("BYTES_IN", String(audit.bytesIn)),
                            AuditDetail("BYTES_OUT", String(audit.bytesOut)),
                            AuditDetail("STATEMENTS", String(audit.lifecycle.statementCount))],
                  summary: "disconnection: session time \(micros / 1000) ms, \(audit.lifecycle.statementCount) statement(s)")
        audit.ended = true
        audit.loopAudit.forget(self)
        // Events still waiting for room are handed over regardless of the bound: the session
        // is gone, so nothing can wait for them any more.
        for event in audit.overflow { audit.loopAudit.queue.submitOrDrop(event) }
        audit.overflow.removeAll()
    }

    // MARK: Statements

    /// A complete client message at the front of the client's buffer (before it is gated or
    /// forwarded). Observed once even when it waits for a classification.
    func auditClientMessage(_ frame: MessageFrame) {
        guard let audit, !audit.frontObserved else { return }
        audit.bytesIn += frame.totalLength
        let now = Int64(loop.now().nanoseconds)
        if frame.type == UInt8(ascii: "S") { audit.lifecycle.syncReceived(); return }
        if frame.type == UInt8(ascii: "c") || frame.type == UInt8(ascii: "f") { audit.lifecycle.copyEndReceived(); return }
        var bytes = ByteBuffer(bytes: client.inbound.readableBytesView.prefix(frame.totalLength))
        guard let message = try? FrontendMessage.decode(frame: frame, from: &bytes) else { return }
        switch message {
        case .query(let text): audit.lifecycle.queryReceived(text, at: now)
        case .parse(let name, let text, _): audit.lifecycle.parseReceived(name: name, text: text)
        case .bind(let bind): audit.lifecycle.bindReceived(portal: bind.portal, statement: bind.statement)
        case .execute(let portal, _): audit.lifecycle.executeReceived(portal: portal, at: now)
        case .close(let target, let name): audit.lifecycle.closeReceived(isStatement: target == .statement, name: name)
        case .functionCall(let call): audit.lifecycle.functionCallReceived(oid: UInt32(bitPattern: call.functionOID), at: now)
        default: break
        }
    }

    /// A server message the lifecycle follows, complete at the front of the server's buffer.
    /// `sentError`: for an ErrorResponse, what the client was sent and whether the gate
    /// replaced the server's error with a refusal.
    func auditServerMessage(_ frame: MessageFrame, from server: Leg, sentError: (ErrorFields, refused: Bool)? = nil) {
        guard let audit else { return }
        audit.bytesOut += frame.totalLength
        let now = Int64(loop.now().nanoseconds)
        let payload = server.inbound.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        switch frame.type {
        case UInt8(ascii: "C"):
            audit.lifecycle.commandCompleteReceived(tag: String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self), at: now)
        case UInt8(ascii: "I"):
            audit.lifecycle.emptyQueryReceived(at: now)
        case UInt8(ascii: "s"):
            audit.lifecycle.portalSuspendedReceived()
        case UInt8(ascii: "G"):
            audit.lifecycle.copyInStarted()
        case UInt8(ascii: "E"):
            guard let (fields, refused) = sentError else { return }
            audit.lifecycle.errorReceived(sqlState: fields.sqlState ?? "XX000", message: fields.message ?? "", refused: refused, at: now)
        case UInt8(ascii: "Z"):
            let status = payload.first ?? UInt8(ascii: "I")
            for record in audit.lifecycle.readyForQueryReceived(status: status, at: now) {
                emitStatement(record)
            }
        default:
            break
        }
    }

    private func emitStatement(_ record: StatementLifecycle.Record) {
        guard let audit else { return }
        let outcome: AuditOutcome
        switch record.outcome {
        case .ok: outcome = .ok
        case .failed(let code, let text): outcome = .failed(sqlState: code, message: text)
        case .refused(let code, let text): outcome = .refused(sqlState: code, message: text)
        }
        let isFunctionCall: Bool
        var details: [AuditDetail] = []
        if case .functionCall(let oid) = record.source {
            isFunctionCall = true
            details.append(AuditDetail("FUNCTION_OID", String(oid)))
        } else {
            isFunctionCall = false
        }
        var statement = AuditStatement(statementID: record.statementID, substatementID: record.substatementID,
                                       auditClass: "MISC", command: record.command ?? "???", text: nil, textLogged: true,
                                       outcome: outcome, durationMicroseconds: max(0, record.finishedAt - record.startedAt) / 1000,
                                       rows: record.rows,
                                       transactionStatus: record.transactionStatus.map { String(UnicodeScalar($0)) })
        statement.preparation = AuditPreparation(fullText: record.text, index: Int(record.substatementID), textMode: audit.textMode,
                                                 completedCommand: record.command, isFunctionCall: isFunctionCall)
        emitAudit(.statement, priority: record.outcome == .ok ? .info : .notice, statement: statement, details: details)
    }
}
