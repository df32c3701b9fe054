import XCTest
@testable import Audit

/// A bind parameter (or text) holding a line break cannot start a forged line in
/// `journalctl -o cat`: MESSAGE escapes CR and LF, the structured fields keep them.
final class AuditJournalLineBreakTests: XCTestCase {
    func testMessageEscapesLineBreaksAndStatementStaysExact() {
        let forged = "x\nAUDIT: SESSION,9,1,READ,SELECT,,,select 1,<none>\r"
        let event = AuditEvent(kind: .statement, timeMicroseconds: 0,
                               statement: AuditStatement(statementID: 1, substatementID: 1, auditClass: "WRITE", command: "INSERT",
                                                         text: "insert into t values ($1)\n", parameters: .values([forged])))
        let fields = Dictionary(event.journalFields, uniquingKeysWith: { a, _ in a })
        let message = fields["MESSAGE"] ?? ""
        XCTAssertFalse(message.contains("\n") || message.contains("\r"), message)
        XCTAssertEqual(message, "AUDIT: SESSION,1,1,WRITE,INSERT,,,\"insert into t values ($1)\\n\","
                       + "\"\"\"x\\nAUDIT: SESSION,9,1,READ,SELECT,,,select 1,<none>\\r\"\"\"")
        XCTAssertEqual(fields["AUDIT_STATEMENT"], "insert into t values ($1)\n")
    }
}
