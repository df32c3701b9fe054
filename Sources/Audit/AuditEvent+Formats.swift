/// The three renderings of an event: pgAudit's line, journald fields, one JSON object.

extension AuditStatement {
    /// `AUDIT: SESSION,<statement id>,<substatement id>,<CLASS>,<COMMAND>,<OBJECT_TYPE>,<OBJECT_NAME>,<STATEMENT>,<PARAMETER>`
    /// as pgAudit writes it (pgaudit.c, log_audit_event): each field through append_valid_csv
    /// (quoted only when it holds a comma, a double quote, CR or LF; quotes doubled).
    public var pgAuditLine: String {
        var line = "AUDIT: SESSION,\(statementID),\(substatementID),\(auditClass),"
        Self.appendCSV(command, to: &line)
        line += ","
        Self.appendCSV(objectType, to: &line)
        line += ","
        Self.appendCSV(objectName, to: &line)
        line += ","
        if textLogged, let text {
            Self.appendCSV(text, to: &line)
            line += ","
            switch parameters {
            case .notLogged: line += "<not logged>"
            case .none: line += "<none>"
            case .values(let values):
                var joined = ""
                for (index, value) in values.enumerated() {
                    if index > 0 { joined += "," }
                    if let value { Self.appendCSV(value, to: &joined) }
                }
                Self.appendCSV(joined, to: &line)
            }
        } else if textLogged {
            line += "<not logged>,<not logged>"
        } else {
            line += "<previously logged>,<previously logged>"
        }
        return line
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

extension AuditEvent {
    /// MESSAGE: the pgAudit line for statements, the summary otherwise.
    public var message: String {
        statement?.pgAuditLine ?? summary
    }

    /// journald fields, in a fixed order (names: upper case, digits and underscores, as
    /// sd_journal_sendv requires). Absent values are left out rather than sent empty.
    public var journalFields: [(String, String)] {
        var fields: [(String, String)] = [
            ("MESSAGE", message),
            ("PRIORITY", String(priority.rawValue)),
            ("SYSLOG_IDENTIFIER", "portcullis"),
            ("MESSAGE_ID", kind.messageID),
            ("AUDIT_EVENT", kind.rawValue),
        ]
        func add(_ name: String, _ value: String?) {
            if let value { fields.append((name, value)) }
        }
        if let session {
            add("SESSION_ID", String(session.sessionID))
            add("DB_USER", session.clientUser)
            add("DB_IDENTITY", session.mappedIdentity)
            add("CLIENT_CN", session.certificateCN)
            add("CLIENT_DN", session.certificateDN)
            add("SERVER_USER", session.serverUser)
            add("DB_NAME", session.database)
            add("CLIENT_PORT", session.clientPort.map(String.init))
            add("TLS_VERSION", session.tlsVersion)
            add("TLS_CIPHER", session.tlsCipher)
            add("BACKEND_PID", session.backendPID.map(String.init))
        }
        add("CLIENT_ADDR", clientAddress)
        if let statement {
            add("AUDIT_STATEMENT_ID", String(statement.statementID))
            add("AUDIT_SUBSTATEMENT_ID", String(statement.substatementID))
            add("AUDIT_CLASS", statement.auditClass)
            add("AUDIT_COMMAND", statement.command)
            if !statement.objectType.isEmpty { add("AUDIT_OBJECT_TYPE", statement.objectType) }
            if !statement.objectName.isEmpty { add("AUDIT_OBJECT", statement.objectName) }
            if statement.textLogged { add("AUDIT_STATEMENT", statement.text) }
            add("OUTCOME", statement.outcome.name)
            add("SQLSTATE", statement.outcome.sqlState)
            add("ERROR_MESSAGE", statement.outcome.message)
            add("DURATION_US", statement.durationMicroseconds.map { String($0) })
            add("ROWS", statement.rows.map { String($0) })
            add("TRANSACTION_STATUS", statement.transactionStatus)
        }
        for detail in details { fields.append((detail.name, detail.value)) }
        return fields
    }

    /// One JSON object (no newline): `time` in RFC 3339 UTC with microseconds, then the journald
    /// fields under their lower-case names (SYSLOG_IDENTIFIER and PRIORITY omitted, `priority`
    /// as its name), numbers as JSON numbers.
    public var jsonLine: String {
        var out = "{\"time\":\""
        out += Self.rfc3339(microseconds: timeMicroseconds)
        out += "\""
        for (name, value) in journalFields where name != "SYSLOG_IDENTIFIER" && name != "PRIORITY" {
            out += ",\""
            out += name.lowercased()
            out += "\":"
            if Self.numericFields.contains(name), !value.isEmpty, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                out += value
            } else {
                Self.appendJSONString(value, to: &out)
            }
        }
        out += ",\"priority\":\"\(priority)\"}"
        return out
    }

    static let numericFields: Set<String> = [
        "SESSION_ID", "CLIENT_PORT", "BACKEND_PID", "AUDIT_STATEMENT_ID", "AUDIT_SUBSTATEMENT_ID", "DURATION_US", "ROWS",
        "BYTES_IN", "BYTES_OUT", "STATEMENTS", "DROPPED",
    ]

    /// RFC 8259 string: quote, backslash and every control character escaped; other text as is.
    static func appendJSONString(_ value: String, to out: inout String) {
        out += "\""
        // Printable ASCII without quote or backslash (most values): appended whole, not
        // scalar by scalar.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out += value
            out += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                         || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// 2026-12-04T16:39:34.123456Z (proleptic Gregorian, UTC), without Foundation.
    static func rfc3339(microseconds: Int64) -> String {
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
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):"
            + "\(pad(secondOfDay % 60, 2)).\(pad(micros, 6))Z"
    }
}
