import XCTest
import Audit
import Policy
import Session
@testable import Proxy

/// Texts over 1 MiB (review t17_huge.py): padding a statement with a megabyte literal or
/// comment recorded `<unparsable statement redacted>` with no object, or lost a later
/// statement's text, so it hid which table was touched and what ran.
final class AuditPreparerCutTextTests: XCTestCase {
    let all = Set(["READ", "WRITE", "FUNCTION", "ROLE", "DDL", "MISC", "MISC_SET"])
    let pad = String(repeating: "x", count: 1 << 20)

    func records(_ text: String, index: Int = 1, tag: String?, classes: Set<String>? = nil,
                 mode: AuditPreparation.TextMode = .full) -> [AuditEvent] {
        var statement = AuditStatement(statementID: 1, substatementID: UInt64(index), auditClass: "MISC", command: "???", text: nil)
        statement.preparation = AuditPreparation(fullText: StatementLifecycle.bounded(text), index: index, textMode: mode,
                                                 completedCommand: tag, classes: classes ?? all)
        return AuditPreparer().prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement))
    }

    func testALiteralCutKeepsTheCommandTheTableAndTheTail() throws {
        let sql = "UPDATE t SET v = 'owned' WHERE id = 960 OR v = '\(pad)'"
        let record = try XCTUnwrap(records(sql, tag: "UPDATE 1").first?.statement)
        XCTAssertEqual(record.auditClass, "WRITE")
        XCTAssertEqual(record.command, "UPDATE")
        XCTAssertEqual(record.objectName, "t")
        let text = try XCTUnwrap(record.text)
        XCTAssertTrue(text.hasPrefix("UPDATE t SET v = 'owned' WHERE id = 960 OR v = <redacted to the cut>…<"), text)
        XCTAssertLessThan(text.utf8.count, 200 << 10)
    }

    func testALaterStatementBehindACutLiteralIsShownAndNamed() throws {
        let sql = "SELECT '\(pad)'; UPDATE t SET v = 'owned2' WHERE id = 960"
        // Written whatever audit_classes: it holds the kept end.
        let first = try XCTUnwrap(records(sql, tag: "SELECT 1", classes: ["WRITE"]).first)
        let statement = try XCTUnwrap(first.statement)
        XCTAssertEqual(statement.command, "SELECT")
        XCTAssertTrue(statement.text?.hasSuffix("; UPDATE t SET v = 'owned2' WHERE id = 960") == true, statement.text ?? "")
        let note = try XCTUnwrap(first.details.first { $0.name == AuditPreparer.noteField }?.value)
        XCTAssertTrue(note.contains("whole statements in the kept end: UPDATE t"), note)
        let second = try XCTUnwrap(records(sql, index: 2, tag: "UPDATE 1").first?.statement)
        XCTAssertEqual(second.auditClass, "WRITE")
        XCTAssertEqual(second.command, "UPDATE")
        XCTAssertTrue(second.text?.contains("substatement 1") == true)
    }

    func testAStatementAfterACutCommentIsNamed() throws {
        let record = try XCTUnwrap(records("/* \(pad) */ UPDATE t SET v = 'owned3' WHERE id = 960", tag: "UPDATE 1").first?.statement)
        XCTAssertEqual(record.command, "UPDATE")
        XCTAssertEqual(record.objectName, "t")
        // Its constants are redacted: the tail cannot tell where the statement began.
        XCTAssertTrue(record.text?.hasSuffix(" UPDATE t SET v = '<redacted>' WHERE id = 960") == true, record.text ?? "")
    }

    func testWithoutATagTheClassIsWrite() throws {
        let record = try XCTUnwrap(records("SELECT '\(pad)'", tag: nil).first?.statement)
        XCTAssertEqual(record.auditClass, "WRITE")
    }

    func testSecretsAnywhereInACutTextStayMasked() throws {
        // A password cut off in the head; in the tail, one whose PASSWORD keyword was not kept,
        // one inside a literal whose start was not kept, and a whole statement's.
        let cases = [
            "ALTER ROLE r PASSWORD 'hunter2\(pad)hunter2'",
            "SELECT '\(pad)', 'hunter2'; ALTER ROLE r PASSWORD 'hunter2'",
            "SELECT '\(pad) password=hunter2'",
            "SELECT $q$\(pad) password=hunter2 $q$",
            "SELECT /* \(pad) */ dblink_connect('host=x password=hunter2')",
            "SELECT set_config('app.password', '\(pad)hunter2', false)",
        ]
        for sql in cases {
            for record in records(sql, tag: "SELECT 1") {
                XCTAssertFalse(record.statement?.text?.contains("hunter2") ?? false, "\(sql.suffix(60)): \(record.statement?.text?.suffix(120) ?? "")")
            }
        }
        let normalized = try XCTUnwrap(records("SELECT '\(pad)'; SELECT 'visible'", tag: "SELECT 1", mode: .normalized).first?.statement?.text)
        XCTAssertFalse(normalized.contains("visible"))
    }

    func testWholeStatementsOfTheHeadAreRecordedAsUsual() throws {
        let sql = "DELETE FROM a WHERE id = 1; UPDATE t SET v = '\(pad)'"
        let first = try XCTUnwrap(records(sql, tag: "DELETE 1").first?.statement)
        XCTAssertEqual(first.text, "DELETE FROM a WHERE id = 1")
        XCTAssertEqual(first.objectName, "a")
        let second = try XCTUnwrap(records(sql, index: 2, tag: "UPDATE 1").first?.statement)
        XCTAssertEqual(second.objectName, "t")
    }

    func testTheLifecycleKeepsHeadAndTail() throws {
        let text = "A" + pad + "Z"
        let cut = try XCTUnwrap(CutText(StatementLifecycle.bounded(text)))
        XCTAssertEqual(cut.totalBytes, text.utf8.count)
        XCTAssertTrue(cut.tail.hasSuffix("xZ"))
        XCTAssertTrue(cut.head.hasPrefix("Ax"))
        XCTAssertNil(CutText(StatementLifecycle.bounded("SELECT 1")))
    }
}
