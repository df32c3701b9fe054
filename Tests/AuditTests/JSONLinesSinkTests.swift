import Foundation
import Glibc
import XCTest
import Audit
import EventLoop
@testable import AuditSink

/// The JSON lines sink's writing logic with write(2) replaced: a disk that fills mid-line.
final class JSONLinesSinkTests: XCTestCase {
    private func event(_ index: Int) -> AuditEvent {
        AuditEvent(kind: .statement, timeMicroseconds: 1_796_403_019_000_000 + Int64(index),
                   statement: AuditStatement(statementID: UInt64(index), substatementID: 1, auditClass: "READ",
                                             command: "SELECT", text: "select \(index) -- \(String(repeating: "x", count: 200))"))
    }

    /// docs/AUDIT.md: a line a failed write cut short "is completed on retry, not repeated" —
    /// also when the retry that starts with its rest fails before writing anything.
    func testALineCutByAFullDiskIsCompletedNotRepeated() throws {
        let path = NSTemporaryDirectory() + "audit-carry-\(getpid())-\(UUID().uuidString.prefix(6)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try JSONLinesSink(path: path, fsync: .off)
        // Each entry: how many bytes the next write(2) may write before ENOSPC (nil: all).
        var script: [Int?] = [40, 0, 0, nil]
        sink.systemWrite = { fd, base, count in
            let allowed = script.isEmpty ? nil : script.removeFirst()
            if let allowed, allowed == 0 {
                errno = ENOSPC
                return -1
            }
            return Glibc.write(fd, base, min(count, allowed ?? count))
        }
        let batch = [event(1), event(2)]
        var done = 0
        var attempts = 0
        while done < batch.count, attempts < 10 {
            attempts += 1
            let result = sink.write(batch: batch[done...])
            done += result.written
        }
        XCTAssertEqual(done, 2)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 3, "two lines and the final newline")
        for (index, line) in lines.dropLast().enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertEqual(object?["audit_statement_id"] as? Int, index + 1, "line \(index + 1) whole, once: \(line.prefix(80))")
        }
    }
}
