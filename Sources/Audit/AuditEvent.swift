/// Audit events: what Portcullis records about connections and statements, as values.
///
/// The statement record follows pgAudit's session audit record (pgAudit README, "Format":
/// AUDIT_TYPE, STATEMENT_ID, SUBSTATEMENT_ID, CLASS, COMMAND, OBJECT_TYPE, OBJECT_NAME,
/// STATEMENT, PARAMETER) and adds what only the proxy knows: the real client identity behind a
/// shared upstream role, the client's address and TLS, and the outcome as the client saw it.
/// Pure: formatting for journald and JSON lines is in `AuditEvent+Formats.swift`; writing is the
/// `AuditWriter`'s.

/// Who and where: fixed for a session once it is authenticated.
public struct AuditSession: Sendable, Equatable {
    public var sessionID: UInt64
    /// The user name the client logged in as (startup packet `user`).
    public var clientUser: String
    /// The identity the pg_ident.conf map or certificate resolved to, when it differs.
    public var mappedIdentity: String?
    public var certificateCN: String?
    public var certificateDN: String?
    /// The role the upstream connection uses (possibly shared by many identities).
    public var serverUser: String?
    public var database: String
    public var clientAddress: String
    public var clientPort: Int?
    public var tlsVersion: String?
    public var tlsCipher: String?
    public var backendPID: Int32?

    public init(sessionID: UInt64, clientUser: String, mappedIdentity: String? = nil, certificateCN: String? = nil,
                certificateDN: String? = nil, serverUser: String? = nil, database: String, clientAddress: String,
                clientPort: Int? = nil, tlsVersion: String? = nil, tlsCipher: String? = nil, backendPID: Int32? = nil) {
        self.sessionID = sessionID
        self.clientUser = clientUser
        self.mappedIdentity = mappedIdentity
        self.certificateCN = certificateCN
        self.certificateDN = certificateDN
        self.serverUser = serverUser
        self.database = database
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.tlsVersion = tlsVersion
        self.tlsCipher = tlsCipher
        self.backendPID = backendPID
    }
}

/// How a statement ended, as the client saw it.
public enum AuditOutcome: Sendable, Equatable {
    case ok
    /// Refused by Portcullis's policy before it reached the server.
    case refused(sqlState: String, message: String)
    /// The server answered with an error.
    case failed(sqlState: String, message: String)

    public var name: String {
        switch self {
        case .ok: "ok"
        case .refused: "refused"
        case .failed: "failed"
        }
    }

    public var sqlState: String? {
        switch self {
        case .ok: nil
        case .refused(let code, _), .failed(let code, _): code
        }
    }

    public var message: String? {
        switch self {
        case .ok: nil
        case .refused(_, let text), .failed(_, let text): text
        }
    }
}

/// pgAudit's PARAMETER field.
public enum AuditParameters: Sendable, Equatable {
    /// `log_parameter` off: `<not logged>`.
    case notLogged
    /// `log_parameter` on, the statement had none: `<none>`.
    case none
    /// Text values in order (nil for NULL); values longer than the configured maximum are
    /// already replaced by `<long param suppressed>`.
    case values([String?])
}

/// One pgAudit session record: a statement, or one relation of it with `log_relation`.
public struct AuditStatement: Sendable, Equatable {
    public var statementID: UInt64
    public var substatementID: UInt64
    /// READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET.
    public var auditClass: String
    /// The command tag, e.g. "SELECT", "CREATE TABLE".
    public var command: String
    /// pgAudit's OBJECT_TYPE ("TABLE", "VIEW", "FUNCTION", …) or empty.
    public var objectType: String
    /// Schema-qualified name, or empty.
    public var objectName: String
    /// The statement text as configured (full, normalized), nil for `<previously logged>`
    /// (`log_statement_once`) and for text mode `none` (`<not logged>`).
    public var text: String?
    public var textLogged: Bool
    public var parameters: AuditParameters
    public var outcome: AuditOutcome
    public var durationMicroseconds: Int64?
    public var rows: Int64?
    /// ReadyForQuery status after the statement: I, T or E.
    public var transactionStatus: String?
    /// Work left for the writer thread (never done on an event loop): cut the statement out
    /// of its Query string, classify it, mask and normalize its text. Nil once done.
    public var preparation: AuditPreparation?

    public init(statementID: UInt64, substatementID: UInt64, auditClass: String, command: String,
                objectType: String = "", objectName: String = "", text: String?, textLogged: Bool = true,
                parameters: AuditParameters = .notLogged, outcome: AuditOutcome = .ok,
                durationMicroseconds: Int64? = nil, rows: Int64? = nil, transactionStatus: String? = nil) {
        self.statementID = statementID
        self.substatementID = substatementID
        self.auditClass = auditClass
        self.command = command
        self.objectType = objectType
        self.objectName = objectName
        self.text = text
        self.textLogged = textLogged
        self.parameters = parameters
        self.outcome = outcome
        self.durationMicroseconds = durationMicroseconds
        self.rows = rows
        self.transactionStatus = transactionStatus
    }
}

/// What the writer thread does to a statement record before writing it.
public struct AuditPreparation: Sendable, Equatable {
    public enum TextMode: String, Sendable {
        case full
        case normalized
        case none
    }

    /// The whole Query string (or Parse text) the statement came in.
    public var fullText: String
    /// 1-based position of the statement in `fullText`.
    public var index: Int
    public var textMode: TextMode
    /// The CommandComplete tag's command, when the statement completed.
    public var completedCommand: String?
    public var isFunctionCall: Bool

    public init(fullText: String, index: Int, textMode: TextMode, completedCommand: String?, isFunctionCall: Bool = false) {
        self.fullText = fullText
        self.index = index
        self.textMode = textMode
        self.completedCommand = completedCommand
        self.isFunctionCall = isFunctionCall
    }
}

/// Every kind of event, each with its own journald MESSAGE_ID.
public enum AuditEventKind: String, Sendable, CaseIterable {
    case statement
    case connect
    case tlsHandshakeFailed = "tls_handshake_failed"
    case authenticated
    case authenticationFailed = "authentication_failed"
    case disconnect
    case cancelRequest = "cancel_request"
    case reload
    case poolExhausted = "pool_exhausted"
    case sessionEnded = "session_ended"
    case auditDropped = "audit_dropped"

    /// journald MESSAGE_ID (128-bit, fixed per kind; `journalctl MESSAGE_ID=…` finds them).
    public var messageID: String {
        switch self {
        case .statement: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a10"
        case .connect: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a11"
        case .tlsHandshakeFailed: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a12"
        case .authenticated: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a13"
        case .authenticationFailed: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a14"
        case .disconnect: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a15"
        case .cancelRequest: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a16"
        case .reload: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a17"
        case .poolExhausted: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a18"
        case .sessionEnded: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a19"
        case .auditDropped: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a1a"
        }
    }
}

/// syslog priorities (journald PRIORITY).
public enum AuditPriority: Int, Sendable {
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
}

public struct AuditEvent: Sendable, Equatable {
    public var kind: AuditEventKind
    /// Wall-clock time, microseconds since the Unix epoch (injected by the shell).
    public var timeMicroseconds: Int64
    public var priority: AuditPriority
    public var session: AuditSession?
    /// Connection events before authentication know only the address.
    public var clientAddress: String?
    public var statement: AuditStatement?
    /// Event-specific fields (journald names, upper case): METHOD, HBA_LINE, REASON, BYTES_IN, …
    public var details: [AuditDetail]
    /// The human line for events other than statements.
    public var summary: String

    public init(kind: AuditEventKind, timeMicroseconds: Int64, priority: AuditPriority = .info,
                session: AuditSession? = nil, clientAddress: String? = nil, statement: AuditStatement? = nil,
                details: [AuditDetail] = [], summary: String = "") {
        self.kind = kind
        self.timeMicroseconds = timeMicroseconds
        self.priority = priority
        self.session = session
        self.clientAddress = clientAddress ?? session?.clientAddress
        self.statement = statement
        self.details = details
        self.summary = summary
    }
}

public struct AuditDetail: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}
