import XCTest
import Foundation
@testable import Audit

/// The renderings, checked against pgAudit's own output for the same records (pgaudit
/// expected/pgaudit.out, REL_15_STABLE) and against RFC 8259.
final class AuditFormatTests: XCTestCase {
    private let session = AuditSession(sessionID: 42, clientUser: "agent", mappedIdentity: "agent-7",
                                       certificateCN: "agent-7.example", certificateDN: "CN=agent-7.example,O=Acme",
                                       serverUser: "app_ro", database: "app", clientAddress: "127.0.0.1", clientPort: 51234,
                                       tlsVersion: "TLSv1.3", tlsCipher: "TLS_AES_256_GCM_SHA384", backendPID: 4711)

    /// The `backup` event's sizes and duration are JSON numbers, as AUDIT.md says of numbers.
    func testBackupEventNumbersAreJSONNumbers() {
        let event = AuditEvent(kind: .backup, timeMicroseconds: 0,
                               details: [AuditDetail("DURATION_S", "3"), AuditDetail("DUMP_BYTES", "10033478"),
                                         AuditDetail("STORED_BYTES", "4294730"), AuditDetail("BACKUP_ID", "0123")],
                               summary: "backup")
        XCTAssertTrue(event.jsonLine.contains(#""duration_s":3,"dump_bytes":10033478,"stored_bytes":4294730,"backup_id":"0123""#), event.jsonLine)
    }

    func testPgAuditLinesAsPgAuditWritesThem() {
        // pgaudit.out: AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.test,select * from test,<not logged>
        XCTAssertEqual(AuditStatement(statementID: 1, substatementID: 1, auditClass: "READ", command: "SELECT",
                                      objectType: "TABLE", objectName: "public.test", text: "select * from test").pgAuditLine,
                       "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.test,select * from test,<not logged>")
        // Commas and quotes make a field quoted, quotes doubled (append_valid_csv).
        XCTAssertEqual(AuditStatement(statementID: 2, substatementID: 1, auditClass: "MISC", command: "SET",
                                      text: "set a.b = '1,2'").pgAuditLine,
                       "AUDIT: SESSION,2,1,MISC,SET,,,\"set a.b = '1,2'\",<not logged>")
        XCTAssertEqual(AuditStatement(statementID: 3, substatementID: 1, auditClass: "READ", command: "SELECT",
                                      text: "select \"x\"\nfrom t").pgAuditLine,
                       "AUDIT: SESSION,3,1,READ,SELECT,,,\"select \"\"x\"\"\nfrom t\",<not logged>")
        // log_statement_once: later substatements say <previously logged>.
        XCTAssertEqual(AuditStatement(statementID: 4, substatementID: 2, auditClass: "WRITE", command: "INSERT",
                                      objectType: "TABLE", objectName: "public.t", text: nil, textLogged: false).pgAuditLine,
                       "AUDIT: SESSION,4,2,WRITE,INSERT,TABLE,public.t,<previously logged>,<previously logged>")
        // log_parameter: <none>, or the values as one CSV field.
        XCTAssertEqual(AuditStatement(statementID: 5, substatementID: 1, auditClass: "READ", command: "SELECT",
                                      text: "select 1", parameters: .none).pgAuditLine,
                       "AUDIT: SESSION,5,1,READ,SELECT,,,select 1,<none>")
        XCTAssertEqual(AuditStatement(statementID: 6, substatementID: 1, auditClass: "READ", command: "SELECT",
                                      text: "select $1, $2, $3", parameters: .values(["1", nil, "a,b"])).pgAuditLine,
                       "AUDIT: SESSION,6,1,READ,SELECT,,,\"select $1, $2, $3\",\"1,,\"\"a,b\"\"\"")
    }

    func testJournalFieldsNameTheRealIdentity() {
        let event = AuditEvent(kind: .statement, timeMicroseconds: 0, session: session,
                               statement: AuditStatement(statementID: 1, substatementID: 1, auditClass: "READ", command: "SELECT",
                                                         objectType: "TABLE", objectName: "public.t", text: "select * from t",
                                                         outcome: .refused(sqlState: "25006", message: "no"),
                                                         durationMicroseconds: 120, rows: 0, transactionStatus: "I"))
        let fields = Dictionary(event.journalFields, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(fields["MESSAGE"], "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.t,select * from t,<not logged>")
        XCTAssertEqual(fields["SYSLOG_IDENTIFIER"], "portcullis")
        XCTAssertEqual(fields["MESSAGE_ID"], AuditEventKind.statement.messageID)
        XCTAssertEqual(fields["CLIENT_CN"], "agent-7.example")
        XCTAssertEqual(fields["DB_USER"], "agent")
        XCTAssertEqual(fields["DB_IDENTITY"], "agent-7")
        XCTAssertEqual(fields["SERVER_USER"], "app_ro")
        XCTAssertEqual(fields["OUTCOME"], "refused")
        XCTAssertEqual(fields["SQLSTATE"], "25006")
        XCTAssertEqual(fields["DURATION_US"], "120")
        XCTAssertEqual(fields["BACKEND_PID"], "4711")
        for (name, _) in event.journalFields {
            XCTAssertTrue(name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }, name)
        }
        XCTAssertEqual(Set(AuditEventKind.allCases.map(\.messageID)).count, AuditEventKind.allCases.count)
    }

    /// `audit_journald_fields = compact`: statement records leave out what MESSAGE and the
    /// session's other records hold, and keep every field the journalctl cookbook filters on.
    func testCompactJournalFields() {
        let statement = AuditEvent(kind: .statement, timeMicroseconds: 0, session: session,
                                   statement: AuditStatement(statementID: 9, substatementID: 2, auditClass: "WRITE", command: "UPDATE",
                                                             objectType: "TABLE", objectName: "public.t", text: "update t set a = 1",
                                                             outcome: .failed(sqlState: "23505", message: "duplicate"),
                                                             durationMicroseconds: 120, rows: 0, transactionStatus: "E"))
        let full = Dictionary(statement.journalFields(.full), uniquingKeysWith: { a, _ in a })
        let compact = Dictionary(statement.journalFields(.compact), uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(Set(full.keys).subtracting(compact.keys),
                       Set(["AUDIT_STATEMENT", "AUDIT_STATEMENT_ID", "AUDIT_SUBSTATEMENT_ID", "AUDIT_OBJECT_TYPE", "IDENT_MAP",
                            "CLIENT_DN", "SERVER_USER", "CLIENT_PORT", "TLS_VERSION", "TLS_CIPHER", "BACKEND_PID"]).intersection(full.keys))
        for name in ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID", "AUDIT_EVENT", "SESSION_ID", "DB_USER", "DB_IDENTITY",
                     "CLIENT_CN", "DB_NAME", "CLIENT_ADDR", "AUDIT_CLASS", "AUDIT_COMMAND", "AUDIT_OBJECT", "OUTCOME", "SQLSTATE",
                     "ERROR_MESSAGE", "DURATION_US", "ROWS", "TRANSACTION_STATUS"] {
            XCTAssertEqual(compact[name], full[name], name)
            XCTAssertNotNil(compact[name], name)
        }
        XCTAssertEqual(compact["MESSAGE"], "AUDIT: SESSION,9,2,WRITE,UPDATE,TABLE,public.t,update t set a = 1,<not logged>")
        // Other events keep every field.
        let connect = AuditEvent(kind: .authenticated, timeMicroseconds: 0, session: session, summary: "connection authenticated")
        XCTAssertEqual(connect.journalFields(.compact).map(\.0), connect.journalFields(.full).map(\.0))
        XCTAssertTrue(connect.journalFields(.compact).contains { $0 == ("TLS_CIPHER", "TLS_AES_256_GCM_SHA384") })
    }

    /// The JSON line, byte for byte, with MESSAGE escaped in place in the render buffer (also
    /// when the escaped line is far longer than the buffer held).
    func testJSONLineExactly() {
        let event = AuditEvent(kind: .statement, timeMicroseconds: 1_796_403_019_571_355, priority: .notice,
                               session: AuditSession(sessionID: 7, clientUser: "u", database: "d", clientAddress: "[local]"),
                               statement: AuditStatement(statementID: 3, substatementID: 1, auditClass: "READ", command: "SELECT",
                                                         text: "select '\"a\"',\n1", outcome: .disconnected, rows: 2),
                               details: [AuditDetail("FUNCTION_OID", "42"), AuditDetail("DROPPED", "x")])
        XCTAssertEqual(event.jsonLine, #"{"time":"2026-12-04T16:50:19.571355Z","message":"AUDIT: SESSION,3,1,READ,SELECT,,,\"select '\"\"a\"\"',\n1\",<not logged>","#
            + #""message_id":"7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a10","audit_event":"statement","session_id":7,"db_user":"u","db_name":"d","#
            + #""client_addr":"[local]","audit_statement_id":3,"audit_substatement_id":1,"audit_class":"READ","audit_command":"SELECT","#
            + #""audit_statement":"select '\"a\"',\n1","outcome":"disconnected","rows":2,"function_oid":"42","dropped":"x","priority":"notice"}"#)
        let long = String(repeating: "\u{1}\"", count: 50_000)
        let big = AuditEvent(kind: .statement, timeMicroseconds: 0,
                             statement: AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "DO", text: long))
        let out = AuditRenderBuffer(capacity: 64)
        out.append("prefix")
        big.appendJSONLine(to: out)
        let line = String(decoding: out.bytes, as: UTF8.self)
        XCTAssertTrue(line.hasPrefix(#"prefix{"time":"1970-01-01T00:00:00.000000Z","message":"AUDIT: SESSION,1,1,MISC,DO,,,\"\u0001\"\""#))
        XCTAssertEqual(line.components(separatedBy: #"\u0001\"\""#).count - 1, 50_000)
        XCTAssertEqual(line.components(separatedBy: #"\u0001\""#).count - 1, 100_000)
        XCTAssertEqual(big.jsonLine, String(line.dropFirst(6)))
    }

    func testJSONLineEscapesEverythingAClientCouldSend() {
        let nasty = "a\"b\\c\nd\u{1B}[31m\u{0}e\u{2028}f\u{85}"
        let event = AuditEvent(kind: .statement, timeMicroseconds: 1_796_403_019_571_355, session: session,
                               statement: AuditStatement(statementID: 1, substatementID: 1, auditClass: "READ",
                                                         command: "SELECT", text: nasty, rows: 3))
        let line = event.jsonLine
        XCTAssertFalse(line.contains("\n"))
        XCTAssertFalse(line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x2028 || $0.value == 0x85 })
        XCTAssertTrue(line.hasPrefix("{\"time\":\"2026-12-04T16:50:19.571355Z\""), line)
        XCTAssertTrue(line.contains("\"rows\":3"), line)
        XCTAssertTrue(line.contains("\"session_id\":42"), line)
        XCTAssertTrue(line.contains("\\u001b[31m"), line)
        // Python's json module (a strict RFC 8259 parser) reads it back to the same text.
        let statement = try? pythonJSON(line, key: "audit_statement")
        XCTAssertEqual(statement, nasty)
        XCTAssertEqual(try? pythonJSON(line, key: "message"), event.statement?.pgAuditLine)
    }

    /// The byte-level escaper keeps every other multi-byte character as it is and escapes the
    /// C1 controls and U+2028/U+2029 wherever they stand.
    func testJSONEscapingAtTheByteLevel() {
        func json(_ text: String) -> String {
            var out: [UInt8] = []
            AuditEvent.appendJSONString(text, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertEqual(json("¢ é € \u{2027}\u{202A} 😀"), "\"¢ é € \u{2027}\u{202A} 😀\"")
        XCTAssertEqual(json("\u{80}\u{9F}\u{A0}"), "\"\\u0080\\u009f\u{A0}\"")
        XCTAssertEqual(json("x\u{2028}\u{2029}"), "\"x\\u2028\\u2029\"")
        XCTAssertEqual(json("\u{7F}\u{1}\t"), "\"\\u007f\\u0001\\t\"")
        XCTAssertEqual(json("\u{C2}\u{85}"), "\"\u{C2}\\u0085\"")
        var number: [UInt8] = []
        for value: Int64 in [0, 7, 1234567890123456789, -42] {
            number.removeAll()
            AuditEvent.appendDecimal(value, to: &number)
            XCTAssertEqual(String(decoding: number, as: UTF8.self), String(value))
        }
    }

    func testTimestamps() {
        XCTAssertEqual(AuditEvent.rfc3339(microseconds: 0), "1970-01-01T00:00:00.000000Z")
        XCTAssertEqual(AuditEvent.rfc3339(microseconds: 951_782_400_000_001), "2000-02-29T00:00:00.000001Z")
        XCTAssertEqual(AuditEvent.rfc3339(microseconds: -1), "1969-12-31T23:59:59.999999Z")
    }

    private func pythonJSON(_ line: String, key: String) throws -> String? {
        let path = NSTemporaryDirectory() + "audit-json-\(getpid()).txt"
        try line.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))[sys.argv[2]].encode('unicode_escape').decode())", path, key]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let escaped = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return nasty(fromPythonEscapes: escaped)
    }

    /// Python's unicode_escape, read back (only the escapes the test string produces).
    private func nasty(fromPythonEscapes text: String) -> String {
        var out = ""
        var scalars = Array(text.unicodeScalars)[...]
        while let s = scalars.popFirst() {
            guard s == "\\", let next = scalars.popFirst() else { out.unicodeScalars.append(s); continue }
            switch next {
            case "n": out += "\n"
            case "\\": out += "\\"
            case "x", "u":
                let count = next == "x" ? 2 : 4
                let hex = String(String.UnicodeScalarView(scalars.prefix(count)))
                scalars = scalars.dropFirst(count)
                out.unicodeScalars.append(Unicode.Scalar(UInt32(hex, radix: 16)!)!)
            default: out.unicodeScalars.append(next)
            }
        }
        return out
    }
}
