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
