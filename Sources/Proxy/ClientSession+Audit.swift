import Policy
import Session
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
    var textMode: AuditPreparation.TextMode
    /// The session's `audit_classes` (identity's, else database entry's, else global).
    var classes: Set<String>
    let settings: AuditSettings
    let connectedAt: MonotonicInstant
    var bytesIn = 0
    var bytesOut = 0
    /// Events that found the queue full (backpressure): submitted first when there is room.
    /// Bounded by what one read from each leg can produce: while it is not empty neither the
    /// client nor the server is read (``ClientSession/updateServerReadPause()``), so a Query of
    /// a million statements cannot pile up a million events here.
    var overflow = FIFOQueue<AuditEvent>()
    /// How the server read the text of the statements reported next (``SessionMachine/Event/textReading(_:)``).
    var textReading = ServerTextReading()
    var ended = false

    init(loopAudit: LoopAudit, info: AuditSession, settings: AuditSettings, connectedAt: MonotonicInstant) {
        self.loopAudit = loopAudit
        self.info = info
        self.settings = settings
        self.textMode = ClientSession.textMode(settings.statementText)
        self.classes = settings.classes
        self.connectedAt = connectedAt
    }

    var isBlocked: Bool { !overflow.isEmpty }
}

extension ClientSession {
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
        guard let remote = startup?.remote else { return }
        audit = SessionAudit(loopAudit: loopAudit,
                             info: AuditSession(sessionID: sessionID, clientUser: "", database: "",
                                                clientAddress: remote.isUnix ? "[local]" : remote.host,
                                                clientPort: remote.isUnix ? nil : Int(remote.port)),
                             settings: settings, connectedAt: loop.now())
    }

    /// `backendPID`: the backend the event happened on, when not the session's first
    /// (a statement under transaction pooling).
    func emitAudit(_ kind: AuditEventKind, priority: AuditPriority = .info, withSession: Bool = true,
                   statement: AuditStatement? = nil, details: [AuditDetail] = [], summary: String = "",
                   backendPID: Int32? = nil) {
        guard let audit, !audit.ended || kind == .disconnect else { return }
        var info = audit.info
        if let backendPID, backendPID != info.backendPID { info.backendPID = backendPID }
        let event = AuditEvent(kind: kind, timeMicroseconds: LoopAudit.wallClockMicroseconds(), priority: priority,
                               session: withSession ? info : nil, clientAddress: audit.info.clientAddress,
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
            _ = audit.overflow.popFirst()
        }
        guard !finished else { return }
        updateServerReadPause()
        updateClientReadPause()
        if client.inbound.readableBytes > 0 { forwardClientBytes() }
    }

    var auditBlocked: Bool { audit?.isBlocked ?? false }

    /// pgAudit `log_parameter` for this session's machine: only with statement text `full`
    /// (a normalized or omitted text must not leak its constants through the parameters).
    var auditParameterLogging: SessionMachine.ParameterLogging? {
        guard let audit, audit.settings.logParameter, audit.textMode == .full else { return nil }
        return .init(maxSize: audit.settings.logParameterMaxSize)
    }

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
        audit.info.certificateCN = startup?.clientCertificate?.commonName
        audit.info.certificateDN = startup?.clientCertificate?.distinguishedName
        if let tls = client.tls {
            audit.info.tlsVersion = tls.protocolVersion
            audit.info.tlsCipher = tls.cipherName
        }
        audit.info.mappedIdentity = request.authenticatedIdentity
        audit.info.identMap = request.identMap
        let identity = runtime.config.identities[request.clientUser]
        if let mode = identity?.auditStatementText {
            audit.textMode = Self.textMode(mode)
        }
        // As PostgreSQL applies per-role over per-database settings (pgaudit.log set with
        // ALTER ROLE wins over ALTER DATABASE, docs 20.1.3/ALTER ROLE).
        if let classes = identity?.auditClasses ?? request.database.auditClasses {
            audit.classes = classes
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
        audit.info.certificateCN = startup?.clientCertificate?.commonName
        audit.info.certificateDN = startup?.clientCertificate?.distinguishedName
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
        // Statements sent whose outcome never came: recorded as disconnected, so a client
        // that vanishes mid-statement still leaves its statement in the stream.
        let records = session?.sessionEnded(now: Int64(loop.now().nanoseconds)) ?? []
        // How the server read the text they came in, reported with them (found in review: a
        // client leaving in its first Query string, before any ReadyForQuery had reported the
        // reading, had it split as libpg_query reads it although standard_conforming_strings
        // was off from the start-up packet).
        takeSessionEvents()
        for record in records { emitStatement(record) }
        let elapsed = loop.now().duration(since: audit.connectedAt)
        let statements = session?.statementCount ?? 0
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        emitAudit(.disconnect, withSession: !audit.info.clientUser.isEmpty,
                  details: [AuditDetail("DURATION_US", String(micros)), AuditDetail("BYTES_IN", String(audit.bytesIn)),
                            AuditDetail("BYTES_OUT", String(audit.bytesOut)),
                            AuditDetail("STATEMENTS", String(statements))],
                  summary: "disconnection: session time \(micros / 1000) ms, \(statements) statement(s)")
        audit.ended = true
        audit.loopAudit.forget(self)
        // Events still waiting for room are handed over regardless of the bound: the session
        // is gone, so nothing can wait for them any more.
        for event in audit.overflow.elements {
            switch audit.loopAudit.policy {
            case .drop: audit.loopAudit.queue.submitOrDrop(event)
            case .backpressure: audit.loopAudit.queue.submitBeyondBound(event)
            }
        }
        audit.overflow.removeAll()
    }

    // MARK: Statements

    /// A statement's outcome, from the session machine's lifecycle events.
    func emitStatement(_ record: StatementLifecycle.Record) {
        guard let audit else { return }
        let outcome: AuditOutcome
        switch record.outcome {
        case .ok: outcome = .ok
        case .failed(let code, let text): outcome = .failed(sqlState: code, message: text)
        case .refused(let code, let text): outcome = .refused(sqlState: code, message: text)
        case .disconnected: outcome = .disconnected
        }
        let isFunctionCall: Bool
        var details: [AuditDetail] = []
        if case .functionCall(let oid) = record.source {
            isFunctionCall = true
            details.append(AuditDetail("FUNCTION_OID", String(oid)))
        } else {
            isFunctionCall = false
        }
        // Command and rows are read from the tag on the writer thread (AuditPreparer), as is
        // everything else that takes more than copying references.
        var statement = AuditStatement(statementID: record.statementID, substatementID: record.substatementID,
                                       auditClass: "MISC", command: "???", text: nil, textLogged: true,
                                       outcome: outcome, durationMicroseconds: max(0, record.finishedAt - record.startedAt) / 1000,
                                       transactionStatus: record.transactionStatus.map { String(UnicodeScalar($0)) })
        if audit.settings.logParameter && audit.textMode == .full && !isFunctionCall {
            statement.parameters = record.parameters.map { $0.isEmpty ? AuditParameters.none : .values($0) } ?? AuditParameters.none
        }
        statement.preparation = AuditPreparation(fullText: record.text, index: Int(record.substatementID), textMode: audit.textMode,
                                                 completedCommand: record.tag, isFunctionCall: isFunctionCall,
                                                 classes: audit.classes, logRelation: audit.settings.logRelation,
                                                 logStatementOnce: audit.settings.logStatementOnce,
                                                 textKnown: record.textKnown, throughEndOfString: record.throughEndOfString)
        statement.preparation?.unsplitReason = audit.textReading.divergence
        statement.preparation?.standardConformingStrings = audit.textReading.standardConformingStrings
        statement.preparation?.clientEncoding = ClientEncodingPolicy.isReadOnlyAllowed(audit.textReading.clientEncoding)
            ? nil : audit.textReading.clientEncoding
        // BACKEND_PID is the backend that ran the statement (transaction pooling attaches one
        // per transaction), so the record matches PostgreSQL's own log lines (%p).
        emitAudit(.statement, priority: record.outcome == .ok ? .info : .notice, statement: statement, details: details,
                  backendPID: record.backendPID)
    }
}
