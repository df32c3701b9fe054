import XCTest
@testable import Wire

/// ``ErrorFields/cut(type:body:bodyLength:utf8:)``: an ErrorResponse or NoticeResponse rebuilt from
/// its first bytes is well formed, keeps the fields before the cut byte for byte, and ends the
/// cut value on a character boundary with the marker (55.8 Error and Notice Message Fields).
final class ErrorFieldsCutTests: XCTestCase {
    /// Where M's value starts in ``body(message:severity:)`` for ERROR: after
    /// "SERROR\0VERROR\0C22P02\0" and the M.
    static let valueStart = 7 + 7 + 7 + 1

    /// The body PostgreSQL 15 sends for `select repeat('x', n)::int` (elog.c
    /// send_message_to_frontend order), with `filler` as the quoted input.
    private func body(message: [UInt8], severity: String = "ERROR") -> [UInt8] {
        var out: [UInt8] = []
        for (code, value) in [("S", Array(severity.utf8)), ("V", Array(severity.utf8)), ("C", Array("22P02".utf8)), ("M", message),
                              ("F", Array("numutils.c".utf8)), ("L", Array("323".utf8)), ("R", Array("pg_strtoint32".utf8))] {
            out += Array(code.utf8) + value + [0]
        }
        return out + [0]
    }

    private func decoded(_ cut: ErrorFields.Cut, file: StaticString = #filePath, line: UInt = #line) throws -> ErrorFields {
        var bytes = cut.message
        let decoder = FrameDecoder(maxMessageLength: 1 << 20)
        let frame = try XCTUnwrap(try decoder.peekFrame(in: bytes), file: file, line: line)
        XCTAssertEqual(frame.totalLength, bytes.readableBytes, "the header's length is the message's", file: file, line: line)
        let message = try BackendMessage.decode(frame: frame, from: &bytes)
        switch message {
        case .errorResponse(let fields), .noticeResponse(let fields): return fields
        default: XCTFail("not an error or notice: \(message)", file: file, line: line); return ErrorFields(fields: [])
        }
    }

    func testACutMessageKeepsItsLeadingFieldsAndSaysHowMuchWasCut() throws {
        let quoted = Array("invalid input syntax for type integer: \"".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 10_000) + [UInt8(ascii: "\"")]
        let whole = body(message: quoted)
        let cut = try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(1000), bodyLength: whole.count, utf8: false)
        let fields = try decoded(cut)
        XCTAssertEqual(fields.fields.map { Character(Unicode.Scalar($0.code)) }, ["S", "V", "C", "M"], "the fields after the cut are dropped")
        XCTAssertEqual(fields.severity, "ERROR")
        XCTAssertEqual(fields.severityNonLocalized, "ERROR")
        XCTAssertEqual(fields.sqlState, "22P02")
        let kept = 1000 - Self.valueStart
        XCTAssertEqual(cut.droppedBytes, whole.count - 1000)
        XCTAssertEqual(fields.message, String(decoding: quoted.prefix(kept), as: UTF8.self) + "... (\(whole.count - 1000) bytes cut by Portcullis)")
        XCTAssertEqual(cut.fields, fields, "the decoded fields are the ones sent")
        XCTAssertEqual(cut.message.getInteger(at: 0, as: UInt8.self), UInt8(ascii: "E"))
    }

    func testANoticeIsCutAsAnError() throws {
        let whole = body(message: [UInt8](repeating: UInt8(ascii: "n"), count: 5000), severity: "NOTICE")
        let cut = try ErrorFields.cut(type: UInt8(ascii: "N"), body: whole.prefix(100), bodyLength: whole.count, utf8: false)
        XCTAssertEqual(cut.message.getInteger(at: 0, as: UInt8.self), UInt8(ascii: "N"))
        let fields = try decoded(cut)
        XCTAssertEqual(fields.severity, "NOTICE")
        XCTAssertTrue(fields.message?.hasSuffix("... (\(whole.count - 100) bytes cut by Portcullis)") ?? false, "\(fields)")
    }

    /// Cut in the middle of a multibyte UTF-8 character, at every offset: the value kept is
    /// valid UTF-8 (no partial character before the marker).
    func testAUTF8ValueIsCutOnACharacterBoundary() throws {
        let text = Array("ab é € 𝄞 ".utf8)
        let quoted = Array(repeating: text, count: 50).flatMap { $0 }
        let whole = body(message: quoted)
        for keep in Self.valueStart..<(Self.valueStart + 3 * text.count) {
            let cut = try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(keep), bodyLength: whole.count, utf8: true)
            let bytes = Array(cut.message.readableBytesView)
            let mStart = 5 + Self.valueStart
            let value = Array(bytes[mStart..<(bytes.count - 2)])  // without the value's NUL and the list's
            XCTAssertNotNil(String(validating: value, as: UTF8.self), "kept \(keep): \(value)")
            let markerLength = "... (\(cut.droppedBytes) bytes cut by Portcullis)".utf8.count
            let keptOfValue = value.count - markerLength
            XCTAssertLessThanOrEqual(keep - Self.valueStart - keptOfValue, 3, "at most a partial character is dropped")
            XCTAssertEqual(cut.droppedBytes, whole.count - Self.valueStart - keptOfValue)
            XCTAssertEqual(Array(quoted.prefix(keptOfValue)), Array(value.prefix(keptOfValue)))
        }
    }

    /// Found in review: SJIS text that happens to be valid UTF-8 (`ﾃア` is C3 83 41: `C3 83`
    /// reads as U+00C3) was cut as UTF-8, leaving the SJIS lead byte 0x83 without its second
    /// byte. Unless the encoding is known to be UTF8, the cut goes after a byte below 0x30.
    func testSJISThatLooksLikeUTF8IsNotCutMidCharacter() throws {
        let sjis: [UInt8] = Array("v \"".utf8) + Array(repeating: [0xC3, 0x83, 0x41], count: 40).flatMap { $0 }
        let whole = body(message: sjis)
        for keep in (Self.valueStart + 4)..<(Self.valueStart + sjis.count) {
            let cut = try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(keep), bodyLength: whole.count, utf8: false)
            let bytes = Array(cut.message.readableBytesView)
            let value = Array(bytes[(5 + Self.valueStart)..<(bytes.count - 2)])
            XCTAssertEqual(Array(value.prefix(3)), Array("v \"".utf8), "kept \(keep)")
            XCTAssertTrue(value.dropFirst(3).starts(with: Array("... (".utf8)), "kept \(keep): \(value.prefix(12))")
        }
    }

    /// Text that is not UTF-8 (a LATIN1 or SJIS client_encoding): cut after its last byte below
    /// 0x30, never between the two bytes of an SJIS character (whose second byte may be ASCII).
    func testOtherEncodingsAreCutAfterTheirLastByteBelow0x30() throws {
        // "表示" in SJIS is 95 5C 8E A6: its 0x5C is a backslash in ASCII.
        let sjis: [UInt8] = Array("value \"".utf8) + [0x95, 0x5C, 0x8E, 0xA6, 0x95, 0x5C, 0x8E, 0xA6]
        let whole = body(message: sjis + [UInt8](repeating: 0x8E, count: 100))
        let cut = try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(Self.valueStart + sjis.count - 2), bodyLength: whole.count, utf8: false)
        let bytes = Array(cut.message.readableBytesView)
        let value = Array(bytes[(5 + Self.valueStart)..<(bytes.count - 2)])
        XCTAssertEqual(Array(value.prefix(7)), Array("value \"".utf8))
        XCTAssertEqual(String(decoding: value.dropFirst(7), as: UTF8.self), "... (\(whole.count - Self.valueStart - 7) bytes cut by Portcullis)")
    }

    func testACutBetweenFieldsMarksTheMessageField() throws {
        let whole = body(message: Array("short".utf8))
        let afterM = Self.valueStart + 5 + 1
        let cut = try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(afterM), bodyLength: whole.count, utf8: false)
        let fields = try decoded(cut)
        XCTAssertEqual(fields.fields.map { Character(Unicode.Scalar($0.code)) }, ["S", "V", "C", "M"])
        XCTAssertEqual(fields.message, "short ... (\(whole.count - afterM) bytes cut by Portcullis)")
    }

    func testSeveritySQLStateAndEarlyEndsCannotBeCut() {
        let whole = body(message: Array("m".utf8))
        XCTAssertThrowsError(try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(3), bodyLength: whole.count, utf8: false)) {
            XCTAssertEqual($0 as? ErrorFields.CutFailure, .cutInField(UInt8(ascii: "S")))
        }
        XCTAssertThrowsError(try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole.prefix(16), bodyLength: whole.count, utf8: false)) {
            XCTAssertEqual($0 as? ErrorFields.CutFailure, .cutInField(UInt8(ascii: "C")))
        }
        XCTAssertThrowsError(try ErrorFields.cut(type: UInt8(ascii: "E"), body: whole, bodyLength: whole.count + 10, utf8: false)) {
            XCTAssertEqual($0 as? ErrorFields.CutFailure, .endsEarly)
        }
    }
}
