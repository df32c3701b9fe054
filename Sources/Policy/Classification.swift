/// The result types of ``StatementClassifier``.
///
/// Audit classes follow pgAudit's `pgaudit.log` classes (pgAudit README, "pgaudit.log").

/// pgAudit statement class.
public enum AuditClass: String, Sendable, Equatable, CaseIterable {
    case read = "READ"
    case write = "WRITE"
    case function = "FUNCTION"
    case role = "ROLE"
    case ddl = "DDL"
    case misc = "MISC"
    case miscSet = "MISC_SET"
}

/// Why a statement is refused for a read-only identity.
public struct Refusal: Sendable, Equatable {
    /// SQLSTATE to send in the ErrorResponse: 25006 (read_only_sql_transaction),
    /// 42601 (syntax_error) for SQL the parser rejects, 54001/54000 for ``ClassifierBudget``.
    public let sqlState: String
    public let message: String
    /// True when `message` is the exact text PostgreSQL itself uses for this refusal
    /// (PreventCommandIfReadOnly in src/backend/tcop/utility.c, or the parser's error).
    public let isPostgreSQLText: Bool
    /// 1-based character position for syntax errors (ErrorResponse field `P`), else nil.
    public let cursorPosition: Int?

    public init(sqlState: String, message: String, isPostgreSQLText: Bool, cursorPosition: Int? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.isPostgreSQLText = isPostgreSQLText
        self.cursorPosition = cursorPosition
    }

    /// PostgreSQL's text: "cannot execute %s in a read-only transaction" (SQLSTATE 25006).
    static func readOnly(_ commandName: String) -> Refusal {
        Refusal(sqlState: "25006", message: "cannot execute \(commandName) in a read-only transaction",
                isPostgreSQLText: true)
    }

    /// Portcullis policy refusals PostgreSQL would not raise in a read-only transaction
    /// (VACUUM, LOCK, NOTIFY, SET ROLE, ...). Same SQLSTATE so clients treat them alike.
    static func policy(_ text: String) -> Refusal {
        Refusal(sqlState: "25006", message: "\(text) is not allowed for a read-only identity",
                isPostgreSQLText: false)
    }
}

/// The decision for one statement of a (possibly multi-statement) query string.
public struct StatementClassification: Sendable, Equatable {
    /// The command tag PostgreSQL would report, e.g. "SELECT", "INSERT", "CREATE TABLE".
    public let commandTag: String
    public let auditClass: AuditClass
    /// nil when the statement may run for a read-only identity.
    public let refusal: Refusal?
    /// Relations and functions the statement names, each (kind, schema, name, access) once,
    /// in the order the parse tree is walked (fields in protobuf order, so a WITH list comes
    /// after the main query).
    public let objects: [ObjectReference]
    /// Names PostgreSQL resolves through the catalog beyond ``objects``: operators, type
    /// names, attribute-notation function calls (``CatalogLookup``); for the catalog check only.
    public let lookups: [CatalogLookup]
    /// `COPY table TO STDOUT`: the stored rows go out through output functions, no expression
    /// is evaluated (src/backend/commands/copyto.c), so no cast or domain check runs.
    public let copiesStoredRows: Bool
    /// State the statement leaves on its server connection beyond its transaction, or
    /// removes from it (``SessionStateEffects``): what transaction pooling pins on.
    public let sessionEffects: SessionStateEffects
    /// Prepared statements it names in SQL — PREPARE, EXECUTE (also under EXPLAIN or CREATE
    /// TABLE AS), DEALLOCATE of one name — as PostgreSQL keys them (the identifier after
    /// downcasing and truncation): SQL reaches protocol-level statements too (prepare.c keeps
    /// both in one hash table), which transaction pooling must keep apart per client.
    public let preparedStatementNames: [String]

    public var isAllowedForReadOnly: Bool { refusal == nil }

    public init(commandTag: String, auditClass: AuditClass, refusal: Refusal?, objects: [ObjectReference] = [],
                lookups: [CatalogLookup] = [], copiesStoredRows: Bool = false, sessionEffects: SessionStateEffects = [],
                preparedStatementNames: [String] = []) {
        self.commandTag = commandTag
        self.auditClass = auditClass
        self.refusal = refusal
        self.objects = objects
        self.lookups = lookups
        self.copiesStoredRows = copiesStoredRows
        self.sessionEffects = sessionEffects
        self.preparedStatementNames = preparedStatementNames
    }

    /// The same statement with another refusal (a catalog check's), objects kept.
    public func refused(_ refusal: Refusal) -> StatementClassification {
        StatementClassification(commandTag: commandTag, auditClass: auditClass, refusal: refusal, objects: objects,
                                lookups: lookups, copiesStoredRows: copiesStoredRows, sessionEffects: sessionEffects,
                                preparedStatementNames: preparedStatementNames)
    }
}

/// The decision for a whole query string.
public struct ClassificationResult: Sendable, Equatable {
    /// One entry per statement, in order. Empty for an empty query or a syntax error.
    public let statements: [StatementClassification]
    /// Set when the whole string is refused (fail closed): libpg_query rejected the text, or it
    /// exceeds ``ClassifierBudget`` (54001 stack depth limit exceeded, 54000 tree too large).
    public let syntaxError: Refusal?

    public init(statements: [StatementClassification], syntaxError: Refusal?) {
        self.statements = statements
        self.syntaxError = syntaxError
    }

    /// True only when the text parsed and every statement is allowed.
    public var isAllowedForReadOnly: Bool {
        syntaxError == nil && statements.allSatisfy(\.isAllowedForReadOnly)
    }

    /// The refusal to send: the syntax error, else the first refused statement's.
    public var firstRefusal: Refusal? {
        syntaxError ?? statements.lazy.compactMap(\.refusal).first
    }
}
