import Audit
import Policy
import Session

/// Finishes statement records on the audit writer thread, so no parse runs on an event loop:
/// cuts each statement out of its Query string (libpg_query's split, as PostgreSQL's raw
/// parser), classifies it (pgAudit class, command, objects), masks passwords
/// (``SecretMasker``, in every text mode) and normalizes when asked. Statements of classes not
/// in the session's `audit_classes` are left out here; with `audit_log_relation` a READ or WRITE
/// statement becomes one record per relation it names (pgAudit `log_relation`), and with
/// `audit_log_statement_once` only the first of them carries the text and parameters.
final class AuditPreparer: @unchecked Sendable {
    /// Cached by literal-free text, as the loops' read-only caches: one parse per statement shape.
    var classifier = CachingStatementClassifier(capacity: 4096)
    /// The last Query string's split and classification: one parse per string, not per statement.
    private var lastText: String?
    /// The last text looked at for a cut (``CutText``) and what it held: the records of one
    /// Query string share its text, and finding the cut reads all of it (found in CI: 100,000
    /// statements of one 900 kB string read it 100,000 times, and the writer fell minutes behind).
    private var lastCut: (text: String, cut: CutText?)?
    private var lastOffsets: [Int]?
    private var lastClassification: ClassificationResult?

    /// Used from the writer thread only.
    init() {}

    /// The records to write for `event` (none when its class is not logged).
    func prepare(_ event: AuditEvent) -> [AuditEvent] {
        var out: [AuditEvent] = []
        prepare(event, into: &out)
        return out
    }

    /// The records to write for `event`, appended to `out` (no array per event).
    func prepare(_ event: AuditEvent, into out: inout [AuditEvent]) {
        guard var statement = event.statement, let work = statement.preparation else {
            out.append(event)
            return
        }
        // A text over maxTextBytes, kept as head and tail (AuditPreparer+CutText.swift).
        if work.textKnown && !work.isFunctionCall && work.unsplitReason == nil, let cut = cutText(work.fullText) {
            prepareCut(event, cut, into: &out)
            return
        }
        // Not when the server may read the text otherwise (it is then not split at all).
        if work.throughEndOfString && !work.isFunctionCall && work.textKnown && work.unsplitReason == nil {
            // The session ended in this string: the statement it was in and every later one
            // may have run, so each is recorded, with its own class and text.
            split(work.fullText)
            for index in work.index...max(work.index, lastOffsets?.count ?? 1) {
                var one = event
                var each = statement
                each.substatementID = UInt64(index)
                each.preparation?.index = index
                each.preparation?.throughEndOfString = false
                one.statement = each
                prepare(one, into: &out)
            }
            return
        }
        statement.preparation = nil
        // The CommandComplete tag is split here, not on the event loop.
        let completed = work.completedCommand.map(Self.commandAndRows)
        if statement.rows == nil { statement.rows = completed?.rows }
        var relations: [String] = []
        var notes: [String] = []
        if work.isFunctionCall {
            statement.auditClass = "FUNCTION"
            statement.command = "FUNCTION CALL"
        } else if !work.textKnown {
            // An Execute of a prepared statement whose text the session does not know.
            (statement.command, statement.auditClass) = Self.commandAndClass(fromTag: completed?.command)
            statement.text = work.textMode == .none ? nil : work.fullText
            statement.textLogged = true
            // Fail closed: the values are the parameters of a text the proxy never saw (a SQL
            // PREPARE, or one run inside a function), so whether one is a password or a secret
            // setting's value (`SELECT set_config($1, $2, false)`) cannot be told.
            Self.redactParameters(of: &statement)
        } else if let reason = work.unsplitReason {
            // Fail closed: the server may have cut and read this text otherwise than libpg_query
            // would (the string `SELECT 'x\'; SELECT $$'; DELETE …` is two SELECTs to it and a
            // SELECT and a DELETE to a server with standard_conforming_strings off). Not split,
            // and neither class nor objects taken from it: the command and class are the
            // server's CommandComplete tag's, and the record is written whatever audit_classes.
            let command = completed?.command ?? "???"
            statement.command = command
            statement.auditClass = Self.auditClass(forCommand: command)
            let piece = work.index <= 1 ? work.fullText : Self.unsplitText
            // Cut (``CutText``): the head masked as the server read it, the kept end not shown
            // (its scanner state is not known, and the server's reading differs besides).
            let cut = CutText(piece)
            switch work.textMode {
            case .none: statement.text = nil
            case .full, .normalized:
                statement.text = cut.map {
                    SecretMasker.mask($0.head, standardConformingStrings: work.standardConformingStrings)
                        + Self.omittedMarker($0.omittedBytes) + CutTextMasker.unreadableTail
                } ?? Self.masked(piece, standardConformingStrings: work.standardConformingStrings)
            }
            statement.textLogged = true
            if case .values(let values) = statement.parameters {
                statement.parameters = .values(cut == nil ? SecretMasker.maskParameters(values, sql: piece)
                                                          : values.map { $0.map { _ in Self.redactedParameter } })
            }
            if cut != nil { statement.outcome = Self.withoutValues(statement.outcome) }
            notes.append("\(Self.unsplitNote): \(reason)")
        } else {
            split(work.fullText)
            let piece = Self.statementText(work.fullText, offsets: lastOffsets, index: work.index)
            let classified = lastClassification.flatMap { result in
                result.statements.indices.contains(work.index - 1) ? result.statements[work.index - 1] : nil
            }
            if let classified {
                statement.auditClass = classified.auditClass.rawValue
                statement.command = classified.commandTag
                relations = Self.relations(classified.objects)
                statement.objectName = relations.count == 1 ? relations[0] : relations.joined(separator: ",")
                if !statement.objectName.isEmpty { statement.objectType = "TABLE" }
                if let completed, let ran = Self.strongerCommand(completed.command, than: statement) {
                    // The server ran something else than the text shows: a statement prepared
                    // again inside a function under the same name (`EXECUTE 'DEALLOCATE s1';
                    // EXECUTE 'PREPARE s1 AS INSERT …'`), or SQL `EXECUTE p` of an INSERT.
                    // Recorded as what ran, so `audit_classes = write` keeps it; the relations
                    // named by the text are not the ones it touched, so none are given.
                    notes.append("\(Self.otherCommandNote): the text shows \(statement.command), "
                                 + "the server's CommandComplete is \(ran.command)")
                    statement.command = ran.command
                    statement.auditClass = ran.auditClass
                    relations = []
                    statement.objectName = ""
                    statement.objectType = ""
                }
            } else {
                let command = completed?.command ?? "???"
                statement.command = command
                statement.auditClass = Self.auditClass(forCommand: command)
            }
            switch work.textMode {
            case .none:
                statement.text = nil
            case .full:
                let masked = Self.masked(piece)
                // A secret the masker took out of the text may be repeated by the error.
                if masked != piece { statement.outcome = Self.withoutValues(statement.outcome) }
                statement.text = masked
            case .normalized:
                // What normalization left (utility statements, a function body after LANGUAGE
                // sql, a text with a syntax error) loses its constants too, numbers included
                // (found in review: `BEGIN ATOMIC SELECT 'x' || 123456789` kept the number).
                statement.text = Self.masked(SecretMasker.maskingConstants(CachingStatementClassifier.normalized(piece) ?? piece,
                                                                           numbers: true))
            }
            statement.textLogged = true
            // Parameters are data the text does not show: masked as the text is (a password
            // passed as $1 to set_config or dblink_connect).
            if case .values(let values) = statement.parameters {
                statement.parameters = .values(SecretMasker.maskParameters(values, sql: piece))
            }
        }
        if let encoding = work.clientEncoding, statement.text?.unicodeScalars.contains("\u{FFFD}") == true {
            notes.append("client_encoding \(encoding): bytes that did not convert to UTF-8 are shown as U+FFFD")
        }
        // Without the statement's literals (text `none` or `normalized`) the error does not
        // repeat them either (`invalid input syntax for type integer: "…"`).
        if work.textMode != .full { statement.outcome = Self.withoutValues(statement.outcome) }
        guard work.unsplitReason != nil || work.classes.contains(statement.auditClass) else { return }
        var prepared = event
        prepared.statement = statement
        if !notes.isEmpty { prepared.details.append(AuditDetail(Self.noteField, notes.joined(separator: "; "))) }
        if work.unsplitReason != nil {
            out.append(prepared)
            return
        }
        // pgAudit log_relation: "a separate log entry for each relation … referenced in a
        // SELECT or DML statement" — what its executor permission-check hook sees, so not
        // utility commands such as TRUNCATE or COPY. With one relation (or none) the single
        // record already is that entry.
        guard work.logRelation, relations.count > 1, Self.relationCommands.contains(statement.command) else {
            out.append(prepared)
            return
        }
        // Bounded: a statement may name tens of thousands of relations (they need not even
        // exist), and each record carries its text; past the first ``maxRelationRecords`` the
        // rest share one record naming how many there were, so one statement cannot make the
        // writer (and, under backpressure, every session of the loop) work without bound.
        let listed = relations.prefix(Self.maxRelationRecords)
        for (index, relation) in listed.enumerated() {
            var record = event
            var one = statement
            one.objectType = "TABLE"
            one.objectName = relation
            if work.logStatementOnce && index > 0 { one.textLogged = false }
            record.statement = one
            out.append(record)
        }
        if relations.count > listed.count {
            var record = event
            var rest = statement
            rest.objectType = "TABLE"
            rest.objectName = "(\(relations.count - listed.count) more relations)"
            if work.logStatementOnce { rest.textLogged = false }
            record.statement = rest
            out.append(record)
        }
    }

    /// Classifies `text` and finds where its statements start, unless it was the last one.
    private func cutText(_ text: String) -> CutText? {
        // Equal strings of one storage compare in O(1).
        if let lastCut, lastCut.text == text { return lastCut.cut }
        let cut = CutText(text)
        lastCut = (text, cut)
        return cut
    }

    private func split(_ text: String) {
        guard lastText != text else { return }
        lastText = text
        lastClassification = classifier.classify(sql: text)
        // A string of one statement is that statement: no split (a second raw parse,
        // uncached, which profiled as much as the rest of the preparation together).
        lastOffsets = lastClassification?.statements.count == 1 && lastClassification?.syntaxError == nil
            ? [0] : StatementSplitter.statementOffsets(text)
    }

    /// `outcome` with its error message's values taken out (``messageWithoutValues(_:)``); the
    /// SQLSTATE stays.
    static func withoutValues(_ outcome: AuditOutcome) -> AuditOutcome {
        switch outcome {
        case .failed(let code, let message): .failed(sqlState: code, message: messageWithoutValues(message))
        case .refused(let code, let message): .refused(sqlState: code, message: messageWithoutValues(message))
        case .ok, .disconnected: outcome
        }
    }

    /// An error message without the values it quotes: PostgreSQL's messages put values (and
    /// names) in double quotes, a few in single quotes (Error Message Style Guide, "Use of
    /// Quotes"), and each number standing alone is a value too (`value 99999999999 is out of
    /// range`: `?`; words with digits, `int4`, stay). PostgreSQL does not escape a quote inside
    /// the value it quotes (`syntax error at or near ""pw""`), so no quote can be known to
    /// close one: everything from the first quote to the last, of either kind, becomes `"?"`
    /// (found in review: taking the next quote as the closing one let `"Tr0ub4dor&3"` and
    /// `"Jane Roe"` out of a message whose statement text was not logged).
    static func messageWithoutValues(_ message: String) -> String {
        let bytes = Array(message.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        func isWordByte(_ byte: UInt8) -> Bool {
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 || byte >= 128
        }
        func isQuote(_ byte: UInt8) -> Bool { byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") }
        let lastQuote = bytes.lastIndex(where: isQuote)
        while index < bytes.count {
            let byte = bytes[index]
            if isQuote(byte), let lastQuote {
                out += [byte, UInt8(ascii: "?"), bytes[lastQuote]]
                index = lastQuote + 1
            } else if (48...57).contains(byte), out.last.map({ !isWordByte($0) }) ?? true {
                var end = index
                while end < bytes.count, isWordByte(bytes[end]) || bytes[end] == UInt8(ascii: ".") { end += 1 }
                if bytes[index..<end].allSatisfy({ (48...57).contains($0) || $0 == UInt8(ascii: ".") }) {
                    out.append(UInt8(ascii: "?"))
                } else {
                    out += bytes[index..<end]
                }
                index = end
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The relations named, each once, in order.
    static func relations(_ objects: [ObjectReference]) -> [String] {
        var names: [String] = []
        if objects.count <= 16 {
            for object in objects where object.kind == .relation && !names.contains(object.qualifiedName) {
                names.append(object.qualifiedName)
            }
            return names
        }
        var seen: Set<String> = []
        for object in objects where object.kind == .relation && seen.insert(object.qualifiedName).inserted {
            names.append(object.qualifiedName)
        }
        return names
    }

    /// A CommandComplete tag's command without its counts ("INSERT 0 1" → "INSERT") and its
    /// row count (the last number, for the tags that report one: cmdtaglist.h rowcount), as
    /// ``StatementLifecycle/Record`` reads them. A bare command is itself, without rows.
    static func commandAndRows(_ tag: String) -> (command: String, rows: Int64?) {
        var words = tag.split(separator: " ")
        let rows = words.last.flatMap { Int64($0) }
        while let last = words.last, words.count > 1, Int64(last) != nil { words.removeLast() }
        return (words.count == 1 ? String(words[0]) : words.joined(separator: " "), rows)
    }

    static let relationCommands: Set<String> = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"]
    /// `audit_log_relation` records per statement at most (then one for the rest).
    static let maxRelationRecords = 100

    /// The `index`-th (1-based) statement of `text`, without surrounding blanks and its `;`.
    static func statementText(_ text: String, offsets: [Int]?, index: Int) -> String {
        // Never the whole string again for each of its statements: a Query of 100,000
        // statements would write its text 100,000 times (and scan it as often for secrets).
        guard let offsets else { return index <= 1 ? text : Self.unsplitText }
        guard offsets.indices.contains(index - 1) else { return Self.notKeptText }
        // The whole string with nothing to trim (a client's usual one statement): itself, no copy.
        if offsets.count == 1, let first = text.utf8.first, let last = text.utf8.last,
           !Self.isBlank(first), !Self.isBlank(last), last != UInt8(ascii: ";") {
            return text
        }
        let bytes = Array(text.utf8)
        let start = min(max(0, offsets[index - 1]), bytes.count)
        let end = offsets.indices.contains(index) ? min(max(start, offsets[index]), bytes.count) : bytes.count
        var slice = bytes[start..<end]
        while let last = slice.last, last == UInt8(ascii: ";") || last == 32 || (9...13).contains(last) { slice.removeLast() }
        while let first = slice.first, first == 32 || (9...13).contains(first) { slice.removeFirst() }
        return String(decoding: slice, as: UTF8.self)
    }

    static func isBlank(_ byte: UInt8) -> Bool { byte == 32 || (9...13).contains(byte) }

    /// The text of a statement after the first of a Query string that could not be split (the
    /// record of statement 1 carries the whole string).
    static let unsplitText = "<not split: the whole query string is in substatement 1>"
    /// The text of a statement the split of its string does not reach.
    static let notKeptText = "<not kept: beyond the statements of the query string>"

    /// ``SecretMasker/mask(_:standardConformingStrings:)``, skipped only when
    /// ``SecretMasker/mayChange(_:)`` says it would change nothing: not merely for text without
    /// a quote, since bare values of secret settings (`SET app.password = S3cret`,
    /// `SET app.db_password = 31337001`) have none and were written as they came.
    static func masked(_ sql: String, standardConformingStrings: Bool = true) -> String {
        guard SecretMasker.mayChange(sql) else { return sql }
        return SecretMasker.mask(sql, standardConformingStrings: standardConformingStrings)
    }

    /// A bind parameter value not written (the masker's word for it, ``SecretMasker/maskParameters(_:sql:)``).
    static let redactedParameter = "<redacted>"

    /// The field that says why a record's text is not what it would normally be.
    static let noteField = "AUDIT_TEXT_NOTE"
    /// The start of the note of a Query string recorded whole (``AuditPreparation/unsplitReason``).
    static let unsplitNote = "not split into statements nor classified by the proxy, logged whatever audit_classes"

    /// The classes a command can be recorded as when its CommandComplete tag shows it ran in
    /// place of what the text shows (``strongerCommand(_:than:)``).
    static let taggedClasses: Set<String> = ["WRITE", "DDL", "ROLE"]

    /// The command and class to record when the server's CommandComplete command (`completed`)
    /// is not the statement's classified command and is of a class the classification does not
    /// give: WRITE, DDL or ROLE (``auditClass(forCommand:)``) — the server ran a different
    /// statement than its text. Nil otherwise: the command alone differing (CREATE USER's tag is
    /// `CREATE ROLE`, CREATE TABLE AS's `SELECT n`) keeps the classification, as pgAudit's.
    static func strongerCommand(_ completed: String, than statement: AuditStatement) -> (command: String, auditClass: String)? {
        guard completed != statement.command else { return nil }
        let tagged = auditClass(forCommand: completed)
        guard taggedClasses.contains(tagged), tagged != statement.auditClass else { return nil }
        return (completed, tagged)
    }

    /// The start of the note of a record whose command and class are its CommandComplete tag's.
    static let otherCommandNote = "the server ran a different command than the text shows; command and class are its tag's"

    /// The command and class of a statement whose text is not classified (not known to the
    /// session, or too long to keep): the CommandComplete tag's; without one (failed,
    /// suspended, disconnected) the class cannot be told and is WRITE, so that
    /// `audit_classes = write` keeps what may have been a write.
    static func commandAndClass(fromTag command: String?) -> (command: String, auditClass: String) {
        guard let command else { return ("???", "WRITE") }
        return (command, auditClass(forCommand: command))
    }

    /// Each parameter value written as `<redacted>` (NULL stays NULL), only their number shown:
    /// for values whose statement text the record cannot classify.
    static func redactParameters(of statement: inout AuditStatement) {
        if case .values(let values) = statement.parameters {
            statement.parameters = .values(values.map { $0.map { _ in redactedParameter } })
        }
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
