import XCTest
import Audit
import Policy
@testable import Proxy

/// The recorded class is never weaker than what the server ran: when its CommandComplete tag
/// names a WRITE, DDL or ROLE command that is not the classified one, the record takes the
/// tag's command and class, with a note (review of the audit stream, t27_fn_prepare.py).
final class AuditPreparerTagClassTests: XCTestCase {
    func prepared(_ text: String, tag: String?, classes: Set<String>) -> [AuditEvent] {
        var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???", text: nil)
        statement.preparation = AuditPreparation(fullText: text, index: 1, textMode: .full, completedCommand: tag,
                                                 classes: classes)
        return AuditPreparer().prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement))
    }

    func note(_ event: AuditEvent?) -> String? {
        event?.details.first { $0.name == AuditPreparer.noteField }?.value
    }

    /// Parse s1 = `SELECT 1 AS harmless`, then a DO block deallocates s1 and prepares it as an
    /// INSERT: the Execute of s1 completes `INSERT 0 1`. Recorded as WRITE,INSERT with the text.
    func testStatementSwappedInsideAFunctionIsRecordedAsWhatRan() throws {
        let records = prepared("SELECT 1 AS harmless", tag: "INSERT 0 1", classes: ["WRITE"])
        let record = try XCTUnwrap(records.first?.statement)
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(record.auditClass, "WRITE")
        XCTAssertEqual(record.command, "INSERT")
        XCTAssertEqual(record.text, "SELECT 1 AS harmless")
        XCTAssertEqual(note(records.first)?.hasPrefix(AuditPreparer.otherCommandNote), true)
        XCTAssertEqual(prepared("SELECT 1 FROM a, b", tag: "CREATE TABLE", classes: ["DDL"]).first?.statement?.objectName, "")
        XCTAssertEqual(prepared("SELECT 1", tag: "GRANT", classes: ["ROLE"]).first?.statement?.auditClass, "ROLE")
    }

    /// SQL `EXECUTE p` of an INSERT completes `INSERT 0 1`: WRITE,INSERT (pgAudit's first
    /// record of it too), so `audit_classes = write` sees it.
    func testSQLExecuteOfAWriteIsWrite() throws {
        let record = try XCTUnwrap(prepared("EXECUTE q2(77)", tag: "INSERT 0 1", classes: ["WRITE"]).first?.statement)
        XCTAssertEqual("\(record.auditClass),\(record.command)", "WRITE,INSERT")
        XCTAssertEqual(prepared("EXECUTE q1(1)", tag: "SELECT 1", classes: ["MISC"]).first?.statement?.command, "EXECUTE")
    }

    /// A tag that names the command differently, or a weaker class, keeps the classification.
    func testOrdinaryTagsKeepTheClassification() {
        let cases: [(String, String, String)] = [
            ("CREATE TABLE t2 AS SELECT 1", "SELECT 1", "DDL,CREATE TABLE AS"),
            ("CREATE USER u1", "CREATE ROLE", "ROLE,CREATE ROLE"),
            ("INSERT INTO t VALUES (1)", "INSERT 0 1", "WRITE,INSERT"),
            ("COPY t FROM STDIN", "COPY 3", "WRITE,COPY"),
            ("SELECT f()", "SELECT 1", "READ,SELECT"),
            ("TRUNCATE t", "TRUNCATE TABLE", "WRITE,TRUNCATE TABLE"),
        ]
        for (sql, tag, expected) in cases {
            let events = prepared(sql, tag: tag, classes: ["READ", "WRITE", "DDL", "ROLE", "MISC"])
            let record = events.first?.statement
            XCTAssertEqual(record.map { "\($0.auditClass),\($0.command)" }, expected, sql)
            XCTAssertNil(note(events.first), sql)
        }
    }
}
