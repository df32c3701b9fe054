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
}
