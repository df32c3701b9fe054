import Audit
import Policy
import CPgQuery

/// Finishes statement records on the audit writer thread, so no parse runs on an event loop:
/// cuts each statement out of its Query string (libpg_query's split, as PostgreSQL's raw
/// parser), classifies it (pgAudit class, command, objects), masks passwords
/// (``SecretMasker``, in every text mode) and normalizes when asked. Statements of classes not
/// in `audit_classes` are left out here.
final class AuditPreparer: @unchecked Sendable {
    private let classes: Set<String>
    /// Cached by literal-free text, as the loops' read-only caches: one parse per statement shape.
    private var classifier = CachingStatementClassifier(capacity: 4096)
    /// The last Query string's split and classification: one parse per string, not per statement.
    private var lastText: String?
    private var lastOffsets: [Int]?
    private var lastClassification: ClassificationResult?

    /// Used from the writer thread only.
    init(classes: Set<String>) {
        self.classes = classes
    }

    func prepare(_ event: inout AuditEvent) -> Bool {
        guard var statement = event.statement, let work = statement.preparation else { return true }
        statement.preparation = nil
        if work.isFunctionCall {
            statement.auditClass = "FUNCTION"
            statement.command = "FUNCTION CALL"
        } else {
            if lastText != work.fullText {
                lastText = work.fullText
                lastOffsets = StatementSplitter.statementOffsets(work.fullText)
                lastClassification = classifier.classify(sql: work.fullText)
            }
            let piece = Self.statementText(work.fullText, offsets: lastOffsets, index: work.index)
            let classified = lastClassification.flatMap { result in
                result.statements.indices.contains(work.index - 1) ? result.statements[work.index - 1] : nil
            }
            if let classified {
                statement.auditClass = classified.auditClass.rawValue
                statement.command = classified.commandTag
                let names = classified.objects.filter { $0.kind == .relation }.map(\.qualifiedName)
                var seen: Set<String> = []
                statement.objectName = names.filter { seen.insert($0).inserted }.joined(separator: ",")
                if !statement.objectName.isEmpty { statement.objectType = "TABLE" }
            } else {
                let command = work.completedCommand ?? "???"
                statement.command = command
                statement.auditClass = Self.auditClass(forCommand: command)
            }
            switch work.textMode {
            case .none:
                statement.text = nil
            case .full:
                statement.text = Self.masked(piece)
            case .normalized:
                statement.text = Self.masked(Self.normalized(piece) ?? piece)
            }
            statement.textLogged = true
        }
        event.statement = statement
        return classes.contains(statement.auditClass)
    }

    /// The `index`-th (1-based) statement of `text`, without surrounding blanks and its `;`.
    static func statementText(_ text: String, offsets: [Int]?, index: Int) -> String {
        let bytes = Array(text.utf8)
        guard let offsets, offsets.indices.contains(index - 1) else { return text }
        let start = min(max(0, offsets[index - 1]), bytes.count)
        let end = offsets.indices.contains(index) ? min(max(start, offsets[index]), bytes.count) : bytes.count
        var slice = bytes[start..<end]
        while let last = slice.last, last == UInt8(ascii: ";") || last == 32 || (9...13).contains(last) { slice.removeLast() }
        while let first = slice.first, first == 32 || (9...13).contains(first) { slice.removeFirst() }
        return String(decoding: slice, as: UTF8.self)
    }

    /// ``SecretMasker/mask(_:)``, skipped for text without a quote or dollar sign: every secret
    /// it redacts is a string constant ('…', E'…', U&'…', $$…$$), which needs one of them.
    static func masked(_ sql: String) -> String {
        guard sql.utf8.contains(where: { $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "$") }) else { return sql }
        return SecretMasker.mask(sql)
    }

    static func normalized(_ sql: String) -> String? {
        let result = pg_query_normalize(sql)
        defer { pg_query_free_normalize_result(result) }
        guard result.error == nil, let text = result.normalized_query else { return nil }
        return String(cString: text)
    }

    /// The class for a statement libpg_query could not classify (its text too long to keep,
    /// or not parsable), from its CommandComplete command — a documented difference from pgAudit.
    static func auditClass(forCommand command: String) -> String {
        let first = command.split(separator: " ").first.map(String.init) ?? ""
        switch first {
        case "SELECT", "FETCH", "MOVE": return "READ"
        case "COPY": return "WRITE"
        case "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE": return "WRITE"
        case "GRANT", "REVOKE": return "ROLE"
        case "CREATE", "ALTER", "DROP":
            return command.contains("ROLE") || command.contains("USER") || command.contains("GROUP") ? "ROLE" : "DDL"
        case "SET", "RESET": return "MISC_SET"
        case "DO", "CALL": return "FUNCTION"
        default: return "MISC"
        }
    }
}
