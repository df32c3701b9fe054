import Audit
import Policy
import Session

/// Statements of a Query or Parse text longer than ``StatementLifecycle/maxTextBytes``, which
/// the session kept as its head and its tail (``CutText``). pgAudit logs the whole text; the
/// record keeps what a reader needs to see what ran — the statement's command (the server's
/// CommandComplete tag), the relations the kept parts name, the kept text with secrets masked
/// (``CutTextMasker``, fail-closed) — and says what was not kept (docs/AUDIT.md, "Long
/// statement texts").
extension AuditPreparer {
    /// The note of every record of a cut text.
    static let cutNote = "query string cut"

    func prepareCut(_ event: AuditEvent, _ cut: CutText, into out: inout [AuditEvent]) {
        guard var statement = event.statement, var work = statement.preparation else { return }
        let head = CutTextMasker.head(cut.head)
        let headBytes = Array(head.scannable.utf8)
        let complete = String(decoding: headBytes[..<min(head.lastBoundary, headBytes.count)], as: UTF8.self)
        // The statements wholly in the head, as the parser splits them (none when it cannot).
        let whole = head.lastBoundary == 0 ? 0 : (StatementSplitter.statementOffsets(complete)?.count ?? 0)
        let cutStart = whole > 0 ? min(head.lastBoundary, headBytes.count) : 0
        let cutIndex = whole + 1
        if work.throughEndOfString {
            // The session ended in this string: its statement and every later one may have
            // run — each whole one of the head, the cut one, and (one record for them all)
            // those whose text was not kept.
            let last = work.index > cutIndex ? work.index : cutIndex + 1
            for index in work.index...last {
                var one = event
                var each = statement
                each.substatementID = UInt64(index)
                each.preparation?.index = index
                each.preparation?.throughEndOfString = false
                one.statement = each
                prepareCut(one, cut, into: &out)
            }
            return
        }
        if work.index <= whole {
            work.fullText = complete
            statement.preparation = work
            var one = event
            one.statement = statement
            prepare(one, into: &out)
            return
        }
        statement.preparation = nil
        // Class never weaker than the truth: the server's tag, as for a text the session does
        // not know.
        let completed = work.completedCommand.map(Self.commandAndRows)
        if statement.rows == nil { statement.rows = completed?.rows }
        (statement.command, statement.auditClass) = Self.commandAndClass(fromTag: completed?.command)
        // The error may quote what was not kept (or not shown).
        statement.outcome = Self.withoutValues(statement.outcome)
        statement.textLogged = true
        Self.redactParameters(of: &statement)
        let span = "\(cut.totalBytes) bytes, bytes \(cut.head.utf8.count + 1) to \(cut.head.utf8.count + cut.omittedBytes) not kept"
        var prepared = event
        if work.index == cutIndex {
            let part = String(decoding: headBytes[cutStart...], as: UTF8.self)
            let tail = CutTextMasker.tail(cut.tail, allConstants: work.textMode == .normalized)
            var relations = CutTextMasker.relations(in: part)
            for name in tail.relations where !relations.contains(name) { relations.append(name) }
            statement.objectName = relations.joined(separator: ",")
            if !relations.isEmpty { statement.objectType = "TABLE" }
            switch work.textMode {
            case .none: statement.text = nil
            case .full, .normalized:
                let shown = work.textMode == .full ? Self.masked(part) : CutTextMasker.constantsRedacted(part)
                statement.text = shown + (head.redactedBytes > 0 ? CutTextMasker.cutConstruct : "")
                    + Self.omittedMarker(cut.omittedBytes) + tail.masked
            }
            var note = "\(Self.cutNote) (\(span)): command and class from the server's CommandComplete tag, objects as named"
                + " in the kept parts; this record holds the kept end; later statements are recorded by their tags;"
                + " logged whatever audit_classes"
            let found = keptEndStatements(cut.tail, starts: tail.statementStarts)
            if !found.isEmpty { note += "; whole statements in the kept end: " + found.joined(separator: "; ") }
            prepared.statement = statement
            prepared.details.append(AuditDetail(Self.noteField, note))
            // Written whatever audit_classes: it carries the kept end of the string, which
            // may be the only text of a later statement (`SELECT '<1 MB>'; UPDATE t …`).
            out.append(prepared)
            return
        }
        statement.text = work.textMode == .none ? nil : "<not kept: substatement \(cutIndex) holds the kept end of the cut query string>"
        guard work.classes.contains(statement.auditClass) else { return }
        prepared.statement = statement
        prepared.details.append(AuditDetail(Self.noteField, "\(Self.cutNote) (\(span)): command and class from the server's CommandComplete tag"))
        out.append(prepared)
    }

    /// The command and relations of whole statements the kept end holds under some reading
    /// of it (no literal: commands and names only), at most ``maxKeptEndStatements``.
    private func keptEndStatements(_ tail: String, starts: [Int]) -> [String] {
        let bytes = Array(tail.utf8)
        var found: [String] = []
        for start in starts where start < bytes.count {
            let rest = String(decoding: bytes[start...], as: UTF8.self)
            let result = classifier.classify(sql: rest)
            guard result.syntaxError == nil else { continue }
            for classified in result.statements {
                let relations = Self.relations(classified.objects)
                let entry = relations.isEmpty ? classified.commandTag : "\(classified.commandTag) \(relations.joined(separator: ","))"
                if !found.contains(entry) && found.count < Self.maxKeptEndStatements { found.append(entry) }
            }
        }
        return found
    }

    static let maxKeptEndStatements = 20

    static func omittedMarker(_ bytes: Int) -> String { "…<\(bytes) bytes not kept>…" }
}
