/// Audit events: what Portcullis records about connections and statements, as values.
///
/// The statement record follows pgAudit's session audit record (pgAudit README, "Format":
/// AUDIT_TYPE, STATEMENT_ID, SUBSTATEMENT_ID, CLASS, COMMAND, OBJECT_TYPE, OBJECT_NAME,
/// STATEMENT, PARAMETER) and adds what only the proxy knows: the real client identity behind a
/// shared upstream role, the client's address and TLS, and the outcome as the client saw it.
/// Pure: formatting for journald and JSON lines is in `AuditEvent+Formats.swift`; writing is the
/// `AuditWriter`'s.

/// Who and where: fixed for a session once it is authenticated.
///
/// Copy-on-write: every record of a session carries it, and a copy is one reference, not a
/// dozen strings to retain on the event loop and again on the writer thread.
public struct AuditSession: Sendable, Equatable {
    private final class Storage: @unchecked Sendable {
        // Mutated only while uniquely referenced (the `field:` subscript copies first), never shared then.
        var sessionID: UInt64
        var clientUser: String
        var mappedIdentity: String?
        var identMap: String?
        var certificateCN: String?
        var certificateDN: String?
        var serverUser: String?
        var database: String
        var clientAddress: String
        var clientPort: Int?
        var tlsVersion: String?
        var tlsCipher: String?
        var backendPID: Int32?

        init(sessionID: UInt64, clientUser: String, mappedIdentity: String?, identMap: String?, certificateCN: String?,
             certificateDN: String?, serverUser: String?, database: String, clientAddress: String, clientPort: Int?,
             tlsVersion: String?, tlsCipher: String?, backendPID: Int32?) {
            self.sessionID = sessionID
            self.clientUser = clientUser
            self.mappedIdentity = mappedIdentity
            self.identMap = identMap
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

        func copy() -> Storage {
            Storage(sessionID: sessionID, clientUser: clientUser, mappedIdentity: mappedIdentity, identMap: identMap,
                    certificateCN: certificateCN, certificateDN: certificateDN, serverUser: serverUser, database: database,
                    clientAddress: clientAddress, clientPort: clientPort, tlsVersion: tlsVersion, tlsCipher: tlsCipher,
                    backendPID: backendPID)
        }
    }

    private var storage: Storage

    /// Copy-on-write access to one stored field.
    private subscript<Value>(field field: ReferenceWritableKeyPath<Storage, Value>) -> Value {
        get { storage[keyPath: field] }
        set {
            if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
            storage[keyPath: field] = newValue
        }
    }

    public var sessionID: UInt64 { get { self[field: \.sessionID] } set { self[field: \.sessionID] = newValue } }
    /// The user name the client logged in as (startup packet `user`).
    public var clientUser: String { get { self[field: \.clientUser] } set { self[field: \.clientUser] = newValue } }
    /// The authenticated identity PostgreSQL would record for the login (its `authn_id`,
    /// docs 21.1 "log_connections": "identity=…"): the certificate's CN or DN for `cert` and
    /// `clientcert=verify-full`, the operating-system user for `peer`, the user name for
    /// password methods; nil for `trust`.
    public var mappedIdentity: String? { get { self[field: \.mappedIdentity] } set { self[field: \.mappedIdentity] = newValue } }
    /// The pg_ident.conf map that allowed `mappedIdentity` to log in as `clientUser`.
    public var identMap: String? { get { self[field: \.identMap] } set { self[field: \.identMap] = newValue } }
    public var certificateCN: String? { get { self[field: \.certificateCN] } set { self[field: \.certificateCN] = newValue } }
    public var certificateDN: String? { get { self[field: \.certificateDN] } set { self[field: \.certificateDN] = newValue } }
    /// The role the upstream connection uses (possibly shared by many identities).
    public var serverUser: String? { get { self[field: \.serverUser] } set { self[field: \.serverUser] = newValue } }
    public var database: String { get { self[field: \.database] } set { self[field: \.database] = newValue } }
    public var clientAddress: String { get { self[field: \.clientAddress] } set { self[field: \.clientAddress] = newValue } }
    public var clientPort: Int? { get { self[field: \.clientPort] } set { self[field: \.clientPort] = newValue } }
    public var tlsVersion: String? { get { self[field: \.tlsVersion] } set { self[field: \.tlsVersion] = newValue } }
    public var tlsCipher: String? { get { self[field: \.tlsCipher] } set { self[field: \.tlsCipher] = newValue } }
    public var backendPID: Int32? { get { self[field: \.backendPID] } set { self[field: \.backendPID] = newValue } }

    public init(sessionID: UInt64, clientUser: String, mappedIdentity: String? = nil, identMap: String? = nil, certificateCN: String? = nil,
                certificateDN: String? = nil, serverUser: String? = nil, database: String, clientAddress: String,
                clientPort: Int? = nil, tlsVersion: String? = nil, tlsCipher: String? = nil, backendPID: Int32? = nil) {
        storage = Storage(sessionID: sessionID, clientUser: clientUser, mappedIdentity: mappedIdentity, identMap: identMap,
                          certificateCN: certificateCN, certificateDN: certificateDN, serverUser: serverUser, database: database,
                          clientAddress: clientAddress, clientPort: clientPort, tlsVersion: tlsVersion, tlsCipher: tlsCipher,
                          backendPID: backendPID)
    }

    public static func == (lhs: AuditSession, rhs: AuditSession) -> Bool {
        if lhs.storage === rhs.storage { return true }
        let a = lhs.storage, b = rhs.storage
        return a.sessionID == b.sessionID && a.clientUser == b.clientUser && a.mappedIdentity == b.mappedIdentity
            && a.identMap == b.identMap && a.certificateCN == b.certificateCN && a.certificateDN == b.certificateDN
            && a.serverUser == b.serverUser && a.database == b.database && a.clientAddress == b.clientAddress
            && a.clientPort == b.clientPort && a.tlsVersion == b.tlsVersion && a.tlsCipher == b.tlsCipher
            && a.backendPID == b.backendPID
    }
}

/// How a statement ended, as the client saw it.
public enum AuditOutcome: Sendable, Equatable {
    case ok
    /// Refused by Portcullis's policy before it reached the server.
    case refused(sqlState: String, message: String)
    /// The server answered with an error.
    case failed(sqlState: String, message: String)
    /// The session ended before the statement's outcome arrived: it may or may not have run.
    case disconnected

    public var name: String {
        switch self {
        case .ok: "ok"
        case .refused: "refused"
        case .failed: "failed"
        case .disconnected: "disconnected"
        }
    }

    public var sqlState: String? {
        switch self {
        case .ok, .disconnected: nil
        case .refused(let code, _), .failed(let code, _): code
        }
    }

    public var message: String? {
        switch self {
        case .ok, .disconnected: nil
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
    /// The CommandComplete tag ("SELECT 1"), when the statement completed: the writer takes
    /// the command and the row count from it (a bare command is read as itself).
    public var completedCommand: String?
    public var isFunctionCall: Bool
    /// The classes recorded for this session (identity's, else database entry's, else the
    /// global `audit_classes`).
    public var classes: Set<String>
    /// `audit_log_relation` and `audit_log_statement_once` as they were when the session started.
    public var logRelation: Bool
    public var logStatementOnce: Bool
    /// Why the server may have read `fullText` otherwise than libpg_query does
    /// (``ServerTextReading/divergence``): the text is then not split and its class not taken
    /// from the classifier (docs/AUDIT.md, "Text the server reads differently"). Nil normally.
    public var unsplitReason: String?
    /// The server's `standard_conforming_strings` (the secret masker scans as it did).
    public var standardConformingStrings = true
    /// The session's `client_encoding` when it is not UTF-8 (the text was converted from it,
    /// or holds U+FFFD where it could not be), nil for UTF-8.
    public var clientEncoding: String?
    /// False: the statement's text is not known (an Execute of a prepared statement made by
    /// SQL `PREPARE`, or whose name was forgotten); `fullText` says so and is written as it is,
    /// and the class comes from the CommandComplete tag (docs/AUDIT.md, "Statement text").
    public var textKnown: Bool
    /// The session ended while this Query string ran: the record stands for statement `index`
    /// and every later one of the string, each recorded (the server may have run them).
    public var throughEndOfString: Bool

    public init(fullText: String, index: Int, textMode: TextMode, completedCommand: String?, isFunctionCall: Bool = false,
                classes: Set<String>, logRelation: Bool = false, logStatementOnce: Bool = false, textKnown: Bool = true,
                throughEndOfString: Bool = false) {
        self.textKnown = textKnown
        self.throughEndOfString = throughEndOfString
        self.logRelation = logRelation
        self.logStatementOnce = logStatementOnce
        self.fullText = fullText
        self.index = index
        self.textMode = textMode
        self.completedCommand = completedCommand
        self.isFunctionCall = isFunctionCall
        self.classes = classes
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
    /// A backup finished (good or failed), taken by the daemon's schedule or `backup run`.
    case backup

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
        case .backup: "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a1b"
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

extension AuditEvent {
    /// The storage of the event's large parts, as identities (never read through): events
    /// that share them (the substatements of one Query string carry the same `fullText`, the
    /// Executes of one portal the same parameters) hold that memory once.
    public struct SharedStorage: Equatable, Sendable {
        var text: UInt = 0
        var parameters: UInt = 0
        public init() {}
    }

    /// Text shorter than this is not looked at for sharing: small strings are stored inline.
    static let sharedThreshold = 4096

    public var sharedStorage: SharedStorage {
        var shared = SharedStorage()
        if let text = statement?.preparation?.fullText, text.utf8.count >= Self.sharedThreshold {
            shared.text = text.utf8.withContiguousStorageIfAvailable { UInt(bitPattern: $0.baseAddress) } ?? 0
        }
        if case .values(let values)? = statement?.parameters, !values.isEmpty {
            shared.parameters = values.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        }
        return shared
    }

    /// About how many bytes the event keeps alive while it is queued: its texts, parameters
    /// and details (UTF-8 counts, O(1) for native strings; O(parameters) for those), plus a
    /// fixed 256 for the values themselves. The text or parameters of `previous` (the event
    /// queued before it) are not counted again when this event shares them.
    public func heldBytes(sharingWith previous: SharedStorage = SharedStorage()) -> Int {
        var bytes = 256 + summary.utf8.count + (clientAddress?.utf8.count ?? 0)
        for detail in details { bytes += detail.name.utf8.count + detail.value.utf8.count }
        guard let statement else { return bytes }
        bytes += statement.command.utf8.count + statement.objectName.utf8.count + (statement.text?.utf8.count ?? 0)
        let shared = sharedStorage
        if case .values(let values) = statement.parameters, shared.parameters == 0 || shared.parameters != previous.parameters {
            for value in values { bytes += 16 + (value?.utf8.count ?? 0) }
        }
        if let preparation = statement.preparation, shared.text == 0 || shared.text != previous.text {
            bytes += preparation.fullText.utf8.count + (preparation.completedCommand?.utf8.count ?? 0)
        }
        return bytes
    }
}
