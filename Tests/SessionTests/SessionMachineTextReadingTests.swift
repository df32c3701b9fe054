import XCTest
import Policy
import Wire
@testable import Session

/// The audit's records say how the server read their text (``SessionMachine/Event/textReading(_:)``).
final class SessionMachineTextReadingTests: XCTestCase {
    func readings(_ events: [SessionMachine.Event]) -> [ServerTextReading] {
        events.compactMap { if case .textReading(let reading) = $0 { reading } else { nil } }
    }

    /// `SET standard_conforming_strings = off` then a Query string: the second batch's records
    /// come after an event saying the server reads text with it off.
    func testParameterStatusReachesTheRecordsOfTheBatchesItApplied() throws {
        let harness = SessionHarness()
        harness.client(.query("SET standard_conforming_strings = off"))
        harness.server(.parameterStatus(name: "standard_conforming_strings", value: "off"), complete("SET"), ready)
        harness.client(.query("SELECT 'x\\'; SELECT $$'; DELETE FROM t --$$"))
        harness.server(complete("SELECT 1"), complete("DELETE 1"), ready)
        let events = harness.events
        let first = try XCTUnwrap(events.firstIndex { if case .textReading = $0 { true } else { false } })
        let firstRecord = try XCTUnwrap(events.firstIndex { if case .statementFinished = $0 { true } else { false } })
        XCTAssertLessThan(first, firstRecord)
        XCTAssertEqual(readings(events).count, 1)
        XCTAssertNotNil(readings(events).first?.divergence)
        XCTAssertEqual(harness.records.count, 3)
    }

    /// Switched back on inside a batch: that batch still counts as read with it off.
    func testABatchIsJudgedByTheWorstReadingDuringIt() {
        let harness = SessionHarness(parameters: SessionHarness.pg15Parameters + [("standard_conforming_strings", "off")])
        harness.client(.query("SET standard_conforming_strings = on; SELECT 'x\\'; DELETE FROM t --'"))
        harness.server(.parameterStatus(name: "standard_conforming_strings", value: "on"), complete("SET"), complete("DELETE 1"),
                       ready)
        XCTAssertEqual(readings(harness.events).map { $0.divergence != nil }, [true])
        harness.client(.query("SELECT 1"))
        harness.server(complete("SELECT 1"), ready)
        XCTAssertEqual(readings(harness.events).map { $0.divergence != nil }, [true, false])
    }

    /// LATIN1 text is kept as the characters it encodes.
    func testLatin1QueryTextIsConverted() {
        let harness = SessionHarness(parameters: SessionHarness.pg15Parameters + [("client_encoding", "LATIN1")])
        var bytes: [UInt8] = [UInt8(ascii: "Q")]
        let text: [UInt8] = Array("SELECT 'caf".utf8) + [0xE9] + Array("'".utf8) + [0]
        bytes += withUnsafeBytes(of: UInt32(text.count + 4).bigEndian, Array.init) + text
        harness.clientBytes(bytes)
        harness.server(complete("SELECT 1"), ready)
        XCTAssertEqual(harness.records.map(\.text), ["SELECT 'café'"])
    }
}
