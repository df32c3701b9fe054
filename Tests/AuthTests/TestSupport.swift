import XCTest
@testable import Auth

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

/// The payload of a `.sendContinue` / `.sendFinal` action, failing the test otherwise.
func continuePayload(_ action: SCRAMServerAction, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
    guard case .sendContinue(let payload) = action else {
        XCTFail("expected sendContinue, got \(action)", file: file, line: line)
        return []
    }
    return payload
}

func finalPayload(_ action: SCRAMServerAction, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
    guard case .sendFinal(let payload) = action else {
        XCTFail("expected sendFinal, got \(action)", file: file, line: line)
        return []
    }
    return payload
}

func failure(_ action: SCRAMServerAction, file: StaticString = #filePath, line: UInt = #line) -> SCRAMFailure? {
    guard case .fail(let failure) = action else {
        XCTFail("expected fail, got \(action)", file: file, line: line)
        return nil
    }
    return failure
}

/// Asserts that a throwing SCRAM client call fails with `expected`.
func assertSCRAMError<T>(_ expected: SCRAMError, file: StaticString = #filePath, line: UInt = #line,
                         _ body: () throws(SCRAMError) -> T) {
    do {
        _ = try body()
        XCTFail("expected \(expected), but the call succeeded", file: file, line: line)
    } catch {
        XCTAssertEqual(error, expected, file: file, line: line)
    }
}
