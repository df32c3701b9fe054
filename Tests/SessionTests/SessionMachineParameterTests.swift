import XCTest
import Wire
@testable import Session

/// pgAudit `log_parameter` as the machine renders Bind values for the statement records.
final class SessionMachineParameterTests: XCTestCase {
    func bind(_ values: [[UInt8]?], formats: [Int16]) -> FrontendMessage.Bind {
        FrontendMessage.Bind(portal: "", statement: "", parameterFormats: formats, parameters: values, resultFormats: [])
    }

    func testTextBinaryNullAndLongValues() {
        let values: [[UInt8]?] = [Array("42".utf8), nil, [0, 0, 0, 42], Array("0123456789".utf8)]
        XCTAssertEqual(SessionMachine.loggedParameters(bind(values, formats: [0, 0, 1, 0]), maxSize: 8),
                       ["42", nil, "\\x0000002a", "<long param suppressed>"])
        // No limit: the long one is kept; one format code applies to every value.
        XCTAssertEqual(SessionMachine.loggedParameters(bind([Array("0123456789".utf8)], formats: [0]), maxSize: 0),
                       ["0123456789"])
        XCTAssertEqual(SessionMachine.loggedParameters(bind([[1], [255]], formats: [1]), maxSize: 0), ["\\x01", "\\xff"])
        // No format codes: all text.
        XCTAssertEqual(SessionMachine.loggedParameters(bind([Array("a".utf8)], formats: []), maxSize: 0), ["a"])
    }

    /// Binary values are written by one bulk pass into the string's storage: every byte value
    /// gives PostgreSQL's lower-case bytea hex, and the string is exactly `\x` plus two digits
    /// a byte (no slack from an intermediate array).
    func testBinaryValuesAsBulkHex() {
        let all = (0...255).map { UInt8($0) }
        let expected = "\\x" + all.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
        }.joined()
        let logged = SessionMachine.loggedParameters(bind([all, []], formats: [1]), maxSize: 0)
        XCTAssertEqual(logged, [expected, "\\x"])
        let big = [UInt8](repeating: 0xa5, count: 3 << 20)
        let hex = big.withUnsafeBufferPointer { SessionMachine.hexText($0) }
        XCTAssertEqual(hex.utf8.count, 2 + 2 * big.count)
        XCTAssertTrue(hex.utf8.dropFirst(2).allSatisfy { $0 == UInt8(ascii: "a") || $0 == UInt8(ascii: "5") })
    }
}
