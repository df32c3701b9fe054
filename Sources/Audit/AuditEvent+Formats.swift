/// The three renderings of an event: pgAudit's line, journald fields, one JSON object.
///
/// All three come from one field list (``AuditEvent/visitFields(_:fields:)``) and are rendered
/// byte by byte into an ``AuditRenderBuffer``, without intermediate strings: the writer thread
/// renders every event this way, and string building was most of its time per event.

/// Which fields a record carries.
public enum AuditFieldSet: String, Sendable, Equatable {
    /// Every field.
    case full
    /// Statement records leave out what their MESSAGE (the pgAudit line) already holds —
    /// AUDIT_STATEMENT, AUDIT_STATEMENT_ID, AUDIT_SUBSTATEMENT_ID, AUDIT_OBJECT_TYPE — and the
    /// session's constant fields — DB_IDENTITY's map IDENT_MAP, CLIENT_DN, SERVER_USER,
    /// CLIENT_PORT, TLS_VERSION, TLS_CIPHER, BACKEND_PID — which the session's `authenticated`
    /// and `disconnect` records carry (same SESSION_ID). Other events are as in `full`.
    /// For journald, whose own CPU per entry grows with the number and size of fields.
    case compact
}

extension AuditStatement {
    /// `AUDIT: SESSION,<statement id>,<substatement id>,<CLASS>,<COMMAND>,<OBJECT_TYPE>,<OBJECT_NAME>,<STATEMENT>,<PARAMETER>`
    /// as pgAudit writes it (pgaudit.c, log_audit_event): each field through append_valid_csv
    /// (quoted only when it holds a comma, a double quote, CR or LF; quotes doubled).
    public var pgAuditLine: String {
        let out = AuditRenderBuffer(capacity: 256)
        appendPGAuditLine(to: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// ``pgAuditLine`` appended to `out`.
    func appendPGAuditLine(to out: AuditRenderBuffer) {
        out.append("AUDIT: SESSION,")
        out.appendDecimal(Int64(truncatingIfNeeded: statementID))
        out.append(UInt8(ascii: ","))
        out.appendDecimal(Int64(truncatingIfNeeded: substatementID))
        out.append(UInt8(ascii: ","))
        out.append(auditClass)
        out.append(UInt8(ascii: ","))
        Self.appendCSV(command, to: out)
        out.append(UInt8(ascii: ","))
        Self.appendCSV(objectType, to: out)
        out.append(UInt8(ascii: ","))
        Self.appendCSV(objectName, to: out)
        out.append(UInt8(ascii: ","))
        if textLogged, let text {
            Self.appendCSV(text, to: out)
            out.append(UInt8(ascii: ","))
            switch parameters {
            case .notLogged: out.append("<not logged>")
            case .none: out.append("<none>")
            case .values(let values):
                var joined = ""
                for (index, value) in values.enumerated() {
                    if index > 0 { joined += "," }
                    if let value { Self.appendCSV(value, to: &joined) }
                }
                Self.appendCSV(joined, to: out)
            }
        } else if textLogged {
            out.append("<not logged>,<not logged>")
        } else {
            out.append("<previously logged>,<previously logged>")
        }
    }

    static func needsCSVQuotes(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }
    }

    /// append_valid_csv into bytes.
    static func appendCSV(_ value: String, to out: AuditRenderBuffer) {
        let done: Void? = value.utf8.withContiguousStorageIfAvailable { bytes in
            guard needsCSVQuotes(bytes) else {
                out.append(UnsafeRawBufferPointer(bytes))
                return
            }
            out.append(UInt8(ascii: "\""))
            var start = 0
            for index in bytes.indices where bytes[index] == UInt8(ascii: "\"") {
                // Up to and including the quote, then the quote again.
                out.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start...index])))
                out.append(UInt8(ascii: "\""))
                start = index + 1
            }
            out.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start...])))
            out.append(UInt8(ascii: "\""))
        }
        if done == nil {
            var line = ""
            appendCSV(value, to: &line)
            out.append(line)
        }
    }

    static func appendCSV(_ value: String, to line: inout String) {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }) else {
            line += value
            return
        }
        line += "\""
        for character in value {
            if character == "\"" { line += "\"" }
            line.append(character)
        }
        line += "\""
    }
}

/// A field's two names: journald's (upper case, digits and underscores, as sd_journal_sendv
/// requires) and JSON's (its lower case).
struct AuditFieldName {
    let journal: StaticString
    let json: StaticString

    static let message = AuditFieldName(journal: "MESSAGE", json: "message")
    static let messageID = AuditFieldName(journal: "MESSAGE_ID", json: "message_id")
    static let auditEvent = AuditFieldName(journal: "AUDIT_EVENT", json: "audit_event")
    static let sessionID = AuditFieldName(journal: "SESSION_ID", json: "session_id")
    static let dbUser = AuditFieldName(journal: "DB_USER", json: "db_user")
    static let dbIdentity = AuditFieldName(journal: "DB_IDENTITY", json: "db_identity")
    static let identMap = AuditFieldName(journal: "IDENT_MAP", json: "ident_map")
    static let clientCN = AuditFieldName(journal: "CLIENT_CN", json: "client_cn")
    static let clientDN = AuditFieldName(journal: "CLIENT_DN", json: "client_dn")
    static let serverUser = AuditFieldName(journal: "SERVER_USER", json: "server_user")
    static let dbName = AuditFieldName(journal: "DB_NAME", json: "db_name")
    static let clientPort = AuditFieldName(journal: "CLIENT_PORT", json: "client_port")
    static let tlsVersion = AuditFieldName(journal: "TLS_VERSION", json: "tls_version")
    static let tlsCipher = AuditFieldName(journal: "TLS_CIPHER", json: "tls_cipher")
    static let backendPID = AuditFieldName(journal: "BACKEND_PID", json: "backend_pid")
    static let clientAddress = AuditFieldName(journal: "CLIENT_ADDR", json: "client_addr")
    static let statementID = AuditFieldName(journal: "AUDIT_STATEMENT_ID", json: "audit_statement_id")
    static let substatementID = AuditFieldName(journal: "AUDIT_SUBSTATEMENT_ID", json: "audit_substatement_id")
    static let auditClass = AuditFieldName(journal: "AUDIT_CLASS", json: "audit_class")
    static let command = AuditFieldName(journal: "AUDIT_COMMAND", json: "audit_command")
    static let objectType = AuditFieldName(journal: "AUDIT_OBJECT_TYPE", json: "audit_object_type")
    static let object = AuditFieldName(journal: "AUDIT_OBJECT", json: "audit_object")
    static let statement = AuditFieldName(journal: "AUDIT_STATEMENT", json: "audit_statement")
    static let outcome = AuditFieldName(journal: "OUTCOME", json: "outcome")
    static let sqlState = AuditFieldName(journal: "SQLSTATE", json: "sqlstate")
    static let errorMessage = AuditFieldName(journal: "ERROR_MESSAGE", json: "error_message")
    static let duration = AuditFieldName(journal: "DURATION_US", json: "duration_us")
    static let rows = AuditFieldName(journal: "ROWS", json: "rows")
    static let transactionStatus = AuditFieldName(journal: "TRANSACTION_STATUS", json: "transaction_status")
}

/// Receives an event's fields, in order, from ``AuditEvent/visitFields(_:fields:)``.
/// PRIORITY and SYSLOG_IDENTIFIER are not visited: each rendering places them itself.
protocol AuditFieldVisitor {
    /// MESSAGE: the pgAudit line for statements, the summary otherwise.
    mutating func message(_ event: AuditEvent)
    mutating func text(_ name: AuditFieldName, _ value: String)
    mutating func number(_ name: AuditFieldName, _ value: Int64)
    /// Event-specific fields, named at run time (``AuditDetail``).
    mutating func detail(_ name: String, text: String)
    mutating func detail(_ name: String, number: Int64)
}

extension AuditPriority {
    /// The name in JSON lines.
    var name: StaticString {
        switch self {
        case .error: "error"
        case .warning: "warning"
        case .notice: "notice"
        case .info: "info"
        }
    }
}

extension AuditEvent {
    /// MESSAGE: the pgAudit line for statements, the summary otherwise.
    public var message: String {
        statement?.pgAuditLine ?? summary
    }

    /// Every field present, in a fixed order; absent values are left out rather than sent
    /// empty. The one list both renderings (journald, JSON lines) are made from.
    func visitFields<V: AuditFieldVisitor>(_ visitor: inout V, fields: AuditFieldSet = .full) {
        visitor.message(self)
        visitor.text(.messageID, kind.messageID)
        visitor.text(.auditEvent, kind.rawValue)
        let full = fields == .full || statement == nil
        if let session {
            visitor.number(.sessionID, Int64(truncatingIfNeeded: session.sessionID))
            visitor.text(.dbUser, session.clientUser)
            if let value = session.mappedIdentity { visitor.text(.dbIdentity, value) }
            if full, let value = session.identMap { visitor.text(.identMap, value) }
            if let value = session.certificateCN { visitor.text(.clientCN, value) }
            if full, let value = session.certificateDN { visitor.text(.clientDN, value) }
            if full, let value = session.serverUser { visitor.text(.serverUser, value) }
            visitor.text(.dbName, session.database)
            if full, let value = session.clientPort { visitor.number(.clientPort, Int64(value)) }
            if full, let value = session.tlsVersion { visitor.text(.tlsVersion, value) }
            if full, let value = session.tlsCipher { visitor.text(.tlsCipher, value) }
            if full, let value = session.backendPID { visitor.number(.backendPID, Int64(value)) }
        }
        if let clientAddress { visitor.text(.clientAddress, clientAddress) }
        if let statement {
            if full {
                visitor.number(.statementID, Int64(truncatingIfNeeded: statement.statementID))
                visitor.number(.substatementID, Int64(truncatingIfNeeded: statement.substatementID))
            }
            visitor.text(.auditClass, statement.auditClass)
            visitor.text(.command, statement.command)
            if full, !statement.objectType.isEmpty { visitor.text(.objectType, statement.objectType) }
            if !statement.objectName.isEmpty { visitor.text(.object, statement.objectName) }
            if full, statement.textLogged, let text = statement.text { visitor.text(.statement, text) }
            visitor.text(.outcome, statement.outcome.name)
            switch statement.outcome {
            case .ok, .disconnected: break
            case .refused(let code, let text), .failed(let code, let text):
                visitor.text(.sqlState, code)
                visitor.text(.errorMessage, text)
            }
            if let value = statement.durationMicroseconds { visitor.number(.duration, value) }
            if let value = statement.rows { visitor.number(.rows, value) }
            if let value = statement.transactionStatus { visitor.text(.transactionStatus, value) }
        }
        for detail in details {
            if Self.numericFields.contains(detail.name), let value = Int64(detail.value) {
                visitor.detail(detail.name, number: value)
            } else {
                visitor.detail(detail.name, text: detail.value)
            }
        }
    }

    /// journald fields, in ``visitFields(_:fields:)``'s order (MESSAGE, PRIORITY,
    /// SYSLOG_IDENTIFIER, MESSAGE_ID, …).
    public var journalFields: [(String, String)] { journalFields(.full) }

    public func journalFields(_ fields: AuditFieldSet) -> [(String, String)] {
        let out = AuditRenderBuffer()
        var offsets: [(Int, Int)] = []
        appendJournalEntry(to: out, fields: fields, ranges: &offsets)
        return offsets.map { start, length in
            let entry = UnsafeRawBufferPointer(rebasing: out.bytes[start..<(start + length)])
            let equals = entry.firstIndex(of: UInt8(ascii: "=")) ?? entry.count
            return (String(decoding: UnsafeRawBufferPointer(rebasing: entry[..<equals]), as: UTF8.self),
                    String(decoding: UnsafeRawBufferPointer(rebasing: entry[(equals + 1)...]), as: UTF8.self))
        }
    }

    /// The event's journald entry, `NAME=value` one after another in `out`, and where each
    /// starts and how long it is in `ranges` (appended to; for sd_journal_sendv's iovecs,
    /// made once the buffer no longer moves).
    public func appendJournalEntry(to out: AuditRenderBuffer, fields: AuditFieldSet, ranges: inout [(Int, Int)]) {
        var visitor = JournalVisitor(out: out, ranges: ranges)
        ranges = []
        visitFields(&visitor, fields: fields)
        ranges = visitor.ranges
    }

    /// One JSON object (no newline): `time` in RFC 3339 UTC with microseconds, then the journald
    /// fields under their lower-case names (SYSLOG_IDENTIFIER and PRIORITY omitted, `priority`
    /// as its name), numbers as JSON numbers.
    public var jsonLine: String {
        let out = AuditRenderBuffer()
        appendJSONLine(to: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    public func appendJSONLine(to out: inout [UInt8]) {
        let buffer = AuditRenderBuffer()
        appendJSONLine(to: buffer)
        out.append(contentsOf: buffer.bytes)
    }

    /// ``jsonLine`` appended to `out` as UTF-8 (no newline).
    public func appendJSONLine(to out: AuditRenderBuffer) {
        out.append(#"{"time":""#)
        Self.appendRFC3339(microseconds: timeMicroseconds, to: out)
        out.append(UInt8(ascii: "\""))
        var visitor = JSONVisitor(out: out)
        visitFields(&visitor)
        out.append(#","priority":""#)
        out.append(priority.name)
        out.append(#""}"#)
    }

    static let numericFields: Set<String> = [
        "SESSION_ID", "CLIENT_PORT", "BACKEND_PID", "AUDIT_STATEMENT_ID", "AUDIT_SUBSTATEMENT_ID", "DURATION_US", "ROWS",
        "BYTES_IN", "BYTES_OUT", "STATEMENTS", "DROPPED", "MAX_SIZE", "WAITING",
        // `backup` events (found in review: they came out as strings in the JSON lines).
        "DURATION_S", "DUMP_BYTES", "STORED_BYTES",
    ]

    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        let buffer = AuditRenderBuffer(capacity: 32)
        buffer.appendDecimal(value)
        out.append(contentsOf: buffer.bytes)
    }

    static func appendJSONString(_ value: String, to out: inout [UInt8]) {
        let buffer = AuditRenderBuffer()
        appendJSONString(value, to: buffer)
        out.append(contentsOf: buffer.bytes)
    }

    /// RFC 8259 string into UTF-8 bytes: quote, backslash and every control character escaped
    /// (C0, DEL, the C1 range U+0080–U+009F, and U+2028/U+2029, which some JavaScript readers
    /// take as line ends); other text as is. Works on the UTF-8 bytes: the escaped scalars
    /// are recognised by their encodings (C2 80–C2 9F, E2 80 A8/A9).
    static func appendJSONString(_ value: String, to out: AuditRenderBuffer) {
        out.append(UInt8(ascii: "\""))
        if value.utf8.withContiguousStorageIfAvailable({ appendJSONEscaped($0, to: out) }) == nil {
            var copy = value
            copy.withUTF8 { appendJSONEscaped($0, to: out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The escaping of ``appendJSONString(_:to:)``, without the quotes: runs of bytes that need
    /// none are copied whole.
    static func appendJSONEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: AuditRenderBuffer) {
        let hex: StaticString = "0123456789abcdef"
        func unicodeEscape(_ scalar: UInt32) {
            let digits = hex.utf8Start
            out.append(UInt8(ascii: "\\"), UInt8(ascii: "u"))
            out.append(digits[Int(scalar >> 12 & 15)], digits[Int(scalar >> 8 & 15)])
            out.append(digits[Int(scalar >> 4 & 15)], digits[Int(scalar & 15)])
        }
        let count = bytes.count
        var runStart = 0
        var index = 0
        while index < count {
            let byte = bytes[index]
            // Plain: printable ASCII but quote and backslash, and UTF-8 bytes other than the
            // lead bytes of the escaped C1 controls and line separators.
            if (byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\"))
                || (byte >= 0x80 && byte != 0xC2 && byte != 0xE2) {
                index += 1
                continue
            }
            if runStart < index { out.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart..<index]))) }
            index += 1
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\"), UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"), UInt8(ascii: "\\"))
            case 10: out.append(UInt8(ascii: "\\"), UInt8(ascii: "n"))
            case 13: out.append(UInt8(ascii: "\\"), UInt8(ascii: "r"))
            case 9: out.append(UInt8(ascii: "\\"), UInt8(ascii: "t"))
            case 0xC2:
                // U+0080–U+009F are C2 80–C2 9F.
                if index < count, (0x80...0x9F).contains(bytes[index]) {
                    unicodeEscape(UInt32(bytes[index]))
                    index += 1
                } else {
                    out.append(byte)
                }
            case 0xE2:
                // U+2028/U+2029 are E2 80 A8/A9.
                if index + 1 < count, bytes[index] == 0x80, bytes[index + 1] == 0xA8 || bytes[index + 1] == 0xA9 {
                    unicodeEscape(bytes[index + 1] == 0xA8 ? 0x2028 : 0x2029)
                    index += 2
                } else {
                    out.append(byte)
                }
            default:
                // The other C0 controls and DEL.
                unicodeEscape(UInt32(byte))
            }
            runStart = index
        }
        if runStart < count { out.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart..<count]))) }
    }

    /// 2026-12-04T16:39:34.123456Z (proleptic Gregorian, UTC), without Foundation.
    static func rfc3339(microseconds: Int64) -> String {
        let out = AuditRenderBuffer(capacity: 32)
        appendRFC3339(microseconds: microseconds, to: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    static func appendRFC3339(microseconds: Int64, to out: AuditRenderBuffer) {
        let micros = ((microseconds % 1_000_000) + 1_000_000) % 1_000_000
        let seconds = (microseconds - micros) / 1_000_000
        var days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil from days (H. Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        if year >= 0 && year <= 9999 {
            out.appendPadded(year, width: 4)
        } else {
            out.appendDecimal(year)
        }
        out.append(UInt8(ascii: "-"))
        out.appendPadded(month, width: 2)
        out.append(UInt8(ascii: "-"))
        out.appendPadded(day, width: 2)
        out.append(UInt8(ascii: "T"))
        out.appendPadded(secondOfDay / 3600, width: 2)
        out.append(UInt8(ascii: ":"))
        out.appendPadded(secondOfDay / 60 % 60, width: 2)
        out.append(UInt8(ascii: ":"))
        out.appendPadded(secondOfDay % 60, width: 2)
        out.append(UInt8(ascii: "."))
        out.appendPadded(micros, width: 6)
        out.append(UInt8(ascii: "Z"))
    }
}

/// JSON lines: `,"name":value` per field.
private struct JSONVisitor: AuditFieldVisitor {
    let out: AuditRenderBuffer

    private func key(_ name: StaticString) {
        out.append(UInt8(ascii: ","), UInt8(ascii: "\""))
        out.append(name)
        out.append(UInt8(ascii: "\""), UInt8(ascii: ":"))
    }

    private func key(_ name: String) {
        out.append(UInt8(ascii: ","), UInt8(ascii: "\""))
        for byte in name.utf8 { out.append(byte >= 65 && byte <= 90 ? byte + 32 : byte) }
        out.append(UInt8(ascii: "\""), UInt8(ascii: ":"))
    }

    mutating func message(_ event: AuditEvent) {
        key(AuditFieldName.message.json)
        guard let statement = event.statement else {
            AuditEvent.appendJSONString(event.summary, to: out)
            return
        }
        // The pgAudit line is rendered at the end of the buffer, escaped after itself, and the
        // escaped copy moved down over it: no second buffer, no string.
        let lineStart = out.count
        statement.appendPGAuditLine(to: out)
        let lineLength = out.count - lineStart
        // Room for the worst case (every byte a \u escape) first, so the buffer does not move
        // while the line is read from it.
        out.reserve(lineLength * 6 + 2)
        let escapedStart = out.count
        out.append(UInt8(ascii: "\""))
        AuditEvent.appendJSONEscaped(UnsafeBufferPointer(start: out.address(at: lineStart).assumingMemoryBound(to: UInt8.self),
                                                         count: lineLength), to: out)
        out.append(UInt8(ascii: "\""))
        let escapedLength = out.count - escapedStart
        out.address(at: lineStart).copyMemory(from: out.address(at: escapedStart), byteCount: escapedLength)
        out.truncate(to: lineStart + escapedLength)
    }

    mutating func text(_ name: AuditFieldName, _ value: String) {
        key(name.json)
        AuditEvent.appendJSONString(value, to: out)
    }

    mutating func number(_ name: AuditFieldName, _ value: Int64) {
        key(name.json)
        out.appendDecimal(value)
    }

    mutating func detail(_ name: String, text: String) {
        key(name)
        AuditEvent.appendJSONString(text, to: out)
    }

    mutating func detail(_ name: String, number: Int64) {
        key(name)
        out.appendDecimal(number)
    }
}

/// journald: `NAME=value` entries one after another, with where each is.
private struct JournalVisitor: AuditFieldVisitor {
    let out: AuditRenderBuffer
    var ranges: [(Int, Int)]
    private var start = 0

    init(out: AuditRenderBuffer, ranges: [(Int, Int)]) {
        self.out = out
        self.ranges = ranges
        self.ranges.removeAll(keepingCapacity: true)
    }

    private mutating func begin(_ name: StaticString) {
        start = out.count
        out.append(name)
        out.append(UInt8(ascii: "="))
    }

    private mutating func begin(_ name: String) {
        start = out.count
        out.append(name)
        out.append(UInt8(ascii: "="))
    }

    private mutating func end() { ranges.append((start, out.count - start)) }

    /// MESSAGE is one line in `journalctl -o cat` and syslog forwarding: a CR or LF in it (a
    /// statement's text or a bind parameter, CSV-quoted in the pgAudit line) would start a line
    /// that can pass for another record. They become `\r` and `\n` there; AUDIT_STATEMENT and the
    /// JSON lines keep the text exact.
    private mutating func escapeLineBreaks(from position: Int) {
        let value = UnsafeRawBufferPointer(rebasing: out.bytes[position...])
        guard value.contains(where: { $0 == 10 || $0 == 13 }) else { return }
        let copy = Array(value)
        out.truncate(to: position)
        for byte in copy {
            switch byte {
            case 10: out.append(UInt8(ascii: "\\"), UInt8(ascii: "n"))
            case 13: out.append(UInt8(ascii: "\\"), UInt8(ascii: "r"))
            default: out.append(byte)
            }
        }
    }

    mutating func message(_ event: AuditEvent) {
        begin(AuditFieldName.message.journal)
        let valueStart = out.count
        if let statement = event.statement { statement.appendPGAuditLine(to: out) } else { out.append(event.summary) }
        escapeLineBreaks(from: valueStart)
        end()
        begin("PRIORITY")
        out.appendDecimal(Int64(event.priority.rawValue))
        end()
        begin("SYSLOG_IDENTIFIER")
        out.append("portcullis")
        end()
    }

    mutating func text(_ name: AuditFieldName, _ value: String) {
        begin(name.journal)
        out.append(value)
        end()
    }

    mutating func number(_ name: AuditFieldName, _ value: Int64) {
        begin(name.journal)
        out.appendDecimal(value)
        end()
    }

    mutating func detail(_ name: String, text: String) {
        begin(name)
        out.append(text)
        end()
    }

    mutating func detail(_ name: String, number: Int64) {
        begin(name)
        out.appendDecimal(number)
        end()
    }
}
