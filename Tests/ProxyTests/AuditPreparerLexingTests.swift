import XCTest
import Audit
import Policy
@testable import Proxy

/// Text the server read otherwise than libpg_query (standard_conforming_strings off, a client
/// encoding that hides ASCII bytes in multibyte characters): recorded whole, never filtered out.
final class AuditPreparerLexingTests: XCTestCase {
    func event(_ text: String, index: Int, tag: String?, classes: Set<String>, reason: String?,
               standardConformingStrings: Bool = true, encoding: String? = nil) -> AuditEvent {
        var statement = AuditStatement(statementID: 1, substatementID: UInt64(index), auditClass: "MISC", command: "???", text: nil)
        statement.preparation = AuditPreparation(fullText: text, index: index, textMode: .full, completedCommand: tag, classes: classes)
        statement.preparation?.unsplitReason = reason
        statement.preparation?.standardConformingStrings = standardConformingStrings
        statement.preparation?.clientEncoding = encoding
        return AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)
    }

    /// t5_scs.py: to a server with standard_conforming_strings off this is a SELECT and a DELETE;
    /// libpg_query reads two SELECTs. An identity auditing only writes must still see it.
    func testStandardConformingStringsOffIsRecordedWholeWhateverTheClasses() throws {
        let sql = "SELECT 'x\\'; SELECT $$'; DELETE FROM t WHERE id = 1 --$$"
        let reading = { var r = ServerTextReading(); r.standardConformingStrings = false; return r }()
        let preparer = AuditPreparer()
        let first = preparer.prepare(event(sql, index: 1, tag: "SELECT 1", classes: ["WRITE"], reason: reading.divergence,
                                           standardConformingStrings: false))
        let second = preparer.prepare(event(sql, index: 2, tag: "DELETE 1", classes: ["WRITE"], reason: reading.divergence,
                                            standardConformingStrings: false))
        XCTAssertEqual(first.count, 1)
        XCTAssertEqual(second.count, 1)
        let one = try XCTUnwrap(first.first?.statement)
        let two = try XCTUnwrap(second.first?.statement)
        XCTAssertEqual(one.text, sql)
        XCTAssertEqual(two.text, AuditPreparer.unsplitText)
        XCTAssertEqual([one.command, two.command], ["SELECT", "DELETE"])
        XCTAssertEqual(two.auditClass, "WRITE")
        XCTAssertEqual(two.objectName, "")
        let note = try XCTUnwrap(second.first?.details.first { $0.name == "AUDIT_TEXT_NOTE" }?.value)
        XCTAssertTrue(note.contains("standard_conforming_strings is off"), note)
    }

    /// A failed statement has no tag: still recorded, as ???.
    func testUnsplitFailedStatementIsStillRecorded() {
        let sql = "SELECT E'\u{FFFD}\\'; DELETE FROM t WHERE id = 666 --'; SELECT 2"
        let records = AuditPreparer().prepare(event(sql, index: 1, tag: nil, classes: ["DDL"],
                                                    reason: "client_encoding SJIS …", encoding: "SJIS"))
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records.first?.statement?.command, "???")
        let note = records.first?.details.first { $0.name == "AUDIT_TEXT_NOTE" }?.value ?? ""
        XCTAssertTrue(note.contains("client_encoding SJIS …") && note.contains("U+FFFD"), note)
    }

    /// The masker scans as the server did: read with standard_conforming_strings on, the
    /// password below is outside any string after PASSWORD and would be logged in clear.
    func testSecretsAreMaskedAsTheServerReadTheText() {
        let sql = "SELECT 'a\\'; ALTER ROLE r PASSWORD '; ALTER ROLE r PASSWORD 'S3cret' --'"
        let records = AuditPreparer().prepare(event(sql, index: 1, tag: "SELECT 1", classes: ["READ"],
                                                    reason: "standard_conforming_strings is off", standardConformingStrings: false))
        let text = records.first?.statement?.text ?? ""
        XCTAssertFalse(text.contains("S3cret"), text)
        XCTAssertTrue(text.contains("<redacted>"), text)
        // And the setting is back on for the next scan on this thread.
        XCTAssertEqual(SecretMasker.mask("SELECT 'a\\', 'b'"), "SELECT 'a\\', 'b'")
    }

    /// t14_latin1.py: LATIN1 text is converted, not logged as mojibake.
    func testLatin1TextIsConverted() {
        let bytes: [UInt8] = Array("SELECT 'caf".utf8) + [0xE9, 0x20, 0x4D, 0xFC] + Array("ller'".utf8)
        let decoded = ClientText.decode(bytes, encoding: "LATIN1")
        XCTAssertEqual(decoded.text, "SELECT 'café Müller'")
        XCTAssertTrue(decoded.faithful)
        XCTAssertEqual(ClientText.decode([0x63, 0x61, 0x66, 0xE9], encoding: "WIN1252").text, "café")
        XCTAssertEqual(ClientText.decode([0xC6, 0xC1], encoding: "KOI8R").text, "фа")
        // Client-only encodings: 表 is 0x95 0x5C in SJIS (its second byte is ASCII's backslash).
        XCTAssertEqual(ClientText.decode([0x27, 0x95, 0x5C, 0x82, 0xA0, 0x27], encoding: "SJIS").text, "'表あ'")
        XCTAssertEqual(ClientText.decode([0xA5, 0x5C], encoding: "BIG5").text, "功")
        XCTAssertFalse(ClientText.decode([0x61, 0xFF], encoding: "MULE_INTERNAL").faithful)
    }

    func testReadingMergesTowardsDivergence() {
        var off = ServerTextReading()
        off.parameterStatus(name: "standard_conforming_strings", value: "off")
        XCTAssertNotNil(off.divergence)
        var sjis = ServerTextReading()
        sjis.parameterStatus(name: "client_encoding", value: "SJIS")
        XCTAssertNotNil(sjis.divergence)
        XCTAssertNotNil(off.merged(with: ServerTextReading()).divergence)
        XCTAssertNotNil(sjis.merged(with: ServerTextReading()).divergence)
        XCTAssertNil(ServerTextReading().divergence)
        var latin = ServerTextReading()
        latin.parameterStatus(name: "client_encoding", value: "LATIN1")
        XCTAssertNil(latin.divergence)
        XCTAssertFalse(latin.isUTF8)
    }
}
