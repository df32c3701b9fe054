import XCTest
import Audit
@testable import AuditSink

/// The loop queue's byte bound (`audit_queue_max_bytes`): events are counted by what they hold,
/// text shared between consecutive events once. No writer thread runs: nothing is taken.
final class AuditQueueBytesTests: XCTestCase {
    private func statement(_ text: String, parameters: [String?]? = nil) -> AuditEvent {
        var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???", text: nil)
        if let parameters { statement.parameters = .values(parameters) }
        statement.preparation = AuditPreparation(fullText: text, index: 1, textMode: .full, completedCommand: nil, classes: [])
        return AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)
    }

    /// A distinct 1 MiB string each time (its own storage).
    private func megabyteText(_ i: Int) -> String { String(repeating: "x", count: 1 << 20) + String(i) }

    func testQueueRefusesWhatExceedsItsBytesThoughEventsFit() throws {
        let writer = try AuditWriter(sinks: [], policy: .backpressure, clock: { 0 })
        let queue = writer.makeQueue(capacity: 10_000, maxBytes: 4 << 20)
        var accepted = 0
        for i in 0..<6 where queue.submit(statement(megabyteText(i))) { accepted += 1 }
        // Three 1 MiB texts fit in 4 MiB, the fourth (with each event's own overhead) does not.
        XCTAssertEqual(accepted, 3)
        XCTAssertLessThanOrEqual(queue.queued.bytes, 4 << 20)
        XCTAssertGreaterThanOrEqual(queue.queued.bytes, 3 << 20)
        // Parameters count as text does.
        let parameters = [String(repeating: "p", count: 2 << 20)]
        XCTAssertFalse(queue.submit(statement("select $1", parameters: parameters)))
        XCTAssertTrue(queue.submit(statement("select 1")))
    }

    func testAnEmptyQueueTakesOneEventLargerThanTheBound() throws {
        let writer = try AuditWriter(sinks: [], policy: .backpressure, clock: { 0 })
        let queue = writer.makeQueue(capacity: 16, maxBytes: 1 << 20)
        XCTAssertTrue(queue.submit(statement(megabyteText(0) + megabyteText(1))))
        XCTAssertFalse(queue.submit(statement(megabyteText(2))))
        XCTAssertFalse(queue.hasRoom)
    }

    /// The substatements of one Query string carry the same string, and the Executes of one
    /// portal the same values: held once, so counted once.
    func testSharedTextAndParametersCountOnce() throws {
        let writer = try AuditWriter(sinks: [], policy: .backpressure, clock: { 0 })
        let queue = writer.makeQueue(capacity: 10_000, maxBytes: 4 << 20)
        let text = megabyteText(0)
        let parameters: [String?] = [String(repeating: "p", count: 1 << 20)]
        for _ in 0..<1000 { XCTAssertTrue(queue.submit(statement(text, parameters: parameters))) }
        XCTAssertEqual(queue.queued.events, 1000)
        XCTAssertLessThan(queue.queued.bytes, 3 << 20)
    }

    /// Drops (under `drop`) follow the byte bound too.
    func testDropModeDropsBeyondTheBytes() throws {
        let writer = try AuditWriter(sinks: [], policy: .drop, clock: { 0 })
        let queue = writer.makeQueue(capacity: 10_000, maxBytes: 2 << 20)
        for i in 0..<10 { queue.submitOrDrop(statement(megabyteText(i))) }
        XCTAssertEqual(queue.queued.events, 1)
        XCTAssertEqual(queue.dropped.load(ordering: .relaxed), 9)
    }
}
