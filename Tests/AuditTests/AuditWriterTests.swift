import Foundation
import Glibc
import Synchronization
import XCTest
import Audit
import EventLoop
@testable import AuditSink

/// The writer against real sinks: a real systemd-journald (started by scripts/start-journald.sh,
/// as root), a JSON file on a small tmpfs. Records are read back with `journalctl -o json`.
final class AuditWriterTests: XCTestCase {
    private static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// posix_spawn + waitpid (Foundation's Process can wait forever on Linux when the child leaves
    /// a daemon behind, as start-journald.sh does).
    private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String) {
        let out = NSTemporaryDirectory() + "audit-run-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else {
            throw CocoaError(.executableLoad)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return ((status >> 8) & 0xff, text)
    }

    private func startJournald() throws {
        let result = try run("/bin/bash", ["\(Self.repoRoot)/scripts/start-journald.sh"])
        XCTAssertEqual(result.status, 0, "journald must run for these tests")
    }

    private func event(_ marker: String, _ index: Int) -> AuditEvent {
        AuditEvent(kind: .statement, timeMicroseconds: 1_796_403_019_000_000 + Int64(index),
                   session: AuditSession(sessionID: UInt64(index), clientUser: "agent", certificateCN: "agent.example",
                                         serverUser: "app_ro", database: marker, clientAddress: "127.0.0.1"),
                   statement: AuditStatement(statementID: UInt64(index), substatementID: 1, auditClass: "READ",
                                             command: "SELECT", objectType: "TABLE", objectName: "public.t",
                                             text: "select * from t where a = \(index)\nand b = 'x,y'", rows: Int64(index)))
    }

    /// journald's records for the marker (DB_NAME), as dictionaries.
    private func journal(_ marker: String) throws -> [[String: Any]] {
        let result = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "DB_NAME=\(marker)"])
        return result.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// systemd-journald processes in this process's mount namespace.
    private func ourJournalds() -> [pid_t] {
        let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name),
                  let comm = try? String(contentsOfFile: "/proc/\(name)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == "systemd-journal",
                  let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(name)/ns/mnt"),
                  namespace == ours else { return nil }
            // A killed journald that is not reaped yet is a zombie: gone for this purpose.
            let stat = (try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: ")").last?.split(separator: " ").first == "Z" ? nil : pid
        }
    }

    private func clock() -> @Sendable () -> Int64 { { Int64(Date().timeIntervalSince1970 * 1_000_000) } }

    func testJournaldGetsEveryEventFieldByField() throws {
        try startJournald()
        let marker = "audit_it_\(UUID().uuidString.prefix(8))"
        let writer = try AuditWriter(sinks: [JournalSink()], policy: .backpressure, clock: clock())
        let queue = writer.makeQueue(capacity: 1000)
        writer.start()
        for i in 0..<200 { XCTAssertTrue(queue.submit(event(marker, i))) }
        writer.stop()
        // journald files what it receives after the send returns: wait for it, not for stop().
        var records: [[String: Any]] = []
        XCTAssertTrue(waitFor { records = (try? self.journal(marker)) ?? []; return records.count >= 200 },
                      "\(records.count) of 200 in the journal")
        XCTAssertEqual(records.count, 200)
        let first = try XCTUnwrap(records.first { ($0["SESSION_ID"] as? String) == "7" })
        XCTAssertEqual(first["MESSAGE"] as? String,
                       // A line break in MESSAGE is written as \n (AUDIT_STATEMENT keeps the text exact).
                       "AUDIT: SESSION,7,1,READ,SELECT,TABLE,public.t,\"select * from t where a = 7\\nand b = 'x,y'\",<not logged>")
        XCTAssertEqual(first["SYSLOG_IDENTIFIER"] as? String, "portcullis")
        XCTAssertEqual(first["PRIORITY"] as? String, "6")
        XCTAssertEqual(first["MESSAGE_ID"] as? String, AuditEventKind.statement.messageID)
        XCTAssertEqual(first["AUDIT_CLASS"] as? String, "READ")
        XCTAssertEqual(first["AUDIT_COMMAND"] as? String, "SELECT")
        XCTAssertEqual(first["AUDIT_OBJECT"] as? String, "public.t")
        XCTAssertEqual(first["CLIENT_CN"] as? String, "agent.example")
        XCTAssertEqual(first["DB_USER"] as? String, "agent")
        XCTAssertEqual(first["ROWS"] as? String, "7")
        XCTAssertEqual(first["OUTCOME"] as? String, "ok")
    }

    /// journald goes away mid-run and comes back: nothing queued is lost.
    func testJournaldStoppedMidRunLosesNothing() throws {
        try startJournald()
        let marker = "audit_stop_\(UUID().uuidString.prefix(8))"
        let writer = try AuditWriter(sinks: [JournalSink()], policy: .backpressure, clock: clock())
        let failures = Mutex<[String]>([])
        writer.onSinkStatus = { sink, error in failures.withLock { $0.append("\(sink): \(error.map { "\($0)" } ?? "recovered")") } }
        let queue = writer.makeQueue(capacity: 10_000)
        writer.start()
        for i in 0..<100 { XCTAssertTrue(queue.submit(event(marker, i))) }
        XCTAssertTrue(waitFor { writer.writtenCount == 100 })
        // Only the journald of this mount namespace: one in a systemd container (another test)
        // is not ours to stop, and its service manager would restart it anyway.
        for pid in ourJournalds() { kill(pid, SIGKILL) }
        XCTAssertTrue(waitFor { self.ourJournalds().isEmpty })
        for i in 100..<300 { XCTAssertTrue(queue.submit(event(marker, i))) }
        XCTAssertTrue(waitFor { failures.withLock { !$0.isEmpty } }, "the sink failure is reported")
        XCTAssertLessThan(writer.writtenCount, 300)
        try startJournald()
        writer.stop()
        let sessions = { Set(((try? self.journal(marker)) ?? []).compactMap { $0["SESSION_ID"] as? String }) }
        XCTAssertTrue(waitFor { sessions().count >= 300 }, "\(sessions().count) of 300 in the journal")
        XCTAssertEqual(sessions().count, 300)
        XCTAssertTrue(failures.withLock { $0.last?.hasSuffix("recovered") ?? false }, "\(failures.withLock { $0 })")
    }

    /// journald frozen (SIGSTOP) rather than gone: `sd_journal_sendv` blocks once journald's
    /// socket queue is full, so nothing fails; the writer waits, the queue fills (backpressure),
    /// and after SIGCONT every event is there. A stop while journald is frozen returns after
    /// its bound with the unwritten count instead of hanging the process's exit.
    func testJournaldFrozenBlocksThenLosesNothingAndStopIsBounded() throws {
        try startJournald()
        let journalds = ourJournalds()
        XCTAssertFalse(journalds.isEmpty)
        defer { for pid in journalds { kill(pid, SIGCONT) } }

        let marker = "audit_frozen_\(UUID().uuidString.prefix(8))"
        let writer = try AuditWriter(sinks: [JournalSink()], policy: .backpressure, clock: clock())
        let queue = writer.makeQueue(capacity: 50)
        writer.start()
        for pid in journalds { kill(pid, SIGSTOP) }
        var accepted = 0
        for i in 0..<2000 {
            if queue.submit(event(marker, i)) {
                accepted += 1
            } else {
                // Full: the writer is blocked in journald's socket. Once the queue stays full for a
                // while, nothing more goes in.
                if !waitFor(timeout: 1, { queue.hasRoom }) { break }
                if queue.submit(event(marker, i)) { accepted += 1 }
            }
        }
        XCTAssertFalse(queue.hasRoom, "journald frozen: the queue fills")
        XCTAssertLessThan(writer.writtenCount, accepted)
        for pid in journalds { kill(pid, SIGCONT) }
        XCTAssertTrue(waitFor { writer.writtenCount == accepted }, "\(writer.writtenCount) of \(accepted) written after SIGCONT")
        writer.stop()
        XCTAssertTrue(waitFor { ((try? self.journal(marker)) ?? []).count == accepted },
                      "\(((try? self.journal(marker)) ?? []).count) of \(accepted) in the journal")

        // Frozen again, then stopped: stop returns after its bound and reports what it left.
        let second = try AuditWriter(sinks: [JournalSink()], policy: .backpressure, clock: clock())
        let secondQueue = second.makeQueue(capacity: 1000)
        second.start()
        for pid in journalds { kill(pid, SIGSTOP) }
        for i in 0..<1000 { XCTAssertTrue(secondQueue.submit(event(marker + "_2", i))) }
        // The writer has taken a batch (it may block in journald's socket before it takes the
        // rest, which stays queued): either way the stop below finds events it cannot write.
        XCTAssertTrue(waitFor { secondQueue.queued.events < 1000 })
        let started = Date()
        let unwritten = second.stop(timeout: .seconds(1))
        let took = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(unwritten, 0, "journald frozen: not everything can be written")
        XCTAssertGreaterThanOrEqual(took, 1)
        XCTAssertLessThan(took, 2, "stop is bounded by its timeout")
        for pid in journalds { kill(pid, SIGCONT) }
    }

    /// A JSON file on a full tmpfs: writes fail with ENOSPC, the writer retries, and once there
    /// is room every line is there, whole.
    func testFullDiskLosesNothing() throws {
        let dir = NSTemporaryDirectory() + "audit-tmpfs-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])
        guard mounted.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (needs root)") }
        defer { _ = try? run("/bin/umount", [dir]); try? FileManager.default.removeItem(atPath: dir) }
        let filler = "\(dir)/filler"
        _ = try run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4096", "count=1000"])  // fills it (ENOSPC)
        let path = "\(dir)/audit.json"
        let writer = try AuditWriter(sinks: [try JSONLinesSink(path: path, fsync: .batch)], policy: .backpressure, clock: clock())
        let failures = Mutex<Int>(0)
        writer.onSinkStatus = { _, error in if error == Errno(rawValue: ENOSPC) { failures.withLock { $0 += 1 } } }
        let queue = writer.makeQueue(capacity: 10_000)
        writer.start()
        for i in 0..<500 { XCTAssertTrue(queue.submit(event("disk", i))) }
        XCTAssertTrue(waitFor { failures.withLock { $0 } > 0 }, "ENOSPC reported")
        try FileManager.default.removeItem(atPath: filler)
        writer.stop()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 500)
        let sessions = Set(lines.compactMap { line -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["session_id"] as? Int
        })
        XCTAssertEqual(sessions.count, 500, "every line whole and parseable")
    }

    /// A sink that fails until released.
    final class GateSink: AuditSink, @unchecked Sendable {
        let name = "gate"
        let open = Atomic<Bool>(false)
        let count = Atomic<Int>(0)
        func write(_ event: AuditEvent) throws(Errno) {
            guard open.load(ordering: .acquiring) else { throw Errno(rawValue: EAGAIN) }
            count.add(1, ordering: .relaxed)
        }
        func reopen() throws(Errno) {}
        func sync() {}
    }

    func testFullQueueRefusesThenSignalsRoom() throws {
        let sink = GateSink()
        let writer = try AuditWriter(sinks: [sink], policy: .backpressure, clock: clock())
        let rooms = Atomic<Int>(0)
        writer.onRoom = { rooms.add(1, ordering: .relaxed) }
        let queue = writer.makeQueue(capacity: 10)
        writer.start()
        var accepted = 0
        for i in 0..<100 where queue.submit(event("bp", i)) { accepted += 1 }
        // The writer holds one batch (at most 10) while the sink fails; the queue holds 10 more.
        XCTAssertLessThanOrEqual(accepted, 20)
        XCTAssertFalse(queue.hasRoom)
        sink.open.store(true, ordering: .releasing)
        XCTAssertTrue(waitFor { rooms.load(ordering: .relaxed) > 0 && queue.hasRoom })
        writer.stop()
        XCTAssertEqual(sink.count.load(ordering: .relaxed), accepted)
    }

    func testDropModeCountsAndReportsDrops() throws {
        let sink = GateSink()
        let path = NSTemporaryDirectory() + "audit-drop-\(getpid())-\(UUID().uuidString.prefix(6)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let json = try JSONLinesSink(path: path, fsync: .off)
        let writer = try AuditWriter(sinks: [sink, json], policy: .drop, clock: clock())
        let queue = writer.makeQueue(capacity: 10)
        writer.start()
        for i in 0..<100 { queue.submitOrDrop(event("drop", i)) }
        sink.open.store(true, ordering: .releasing)
        writer.stop()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let kept = lines.filter { $0.contains("\"audit_event\":\"statement\"") }.count
        let dropped = lines.compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["audit_event"] as? String == "audit_dropped" else { return nil }
            return object["dropped"] as? Int
        }.reduce(0, +)
        XCTAssertEqual(kept + dropped, 100, "every event is written or counted as dropped")
        XCTAssertGreaterThan(dropped, 0)
    }

    /// logrotate: the file is moved, SIGHUP reopens, new events go to the new file.
    func testReopenAfterRotation() throws {
        let path = NSTemporaryDirectory() + "audit-rotate-\(getpid())-\(UUID().uuidString.prefix(6)).json"
        defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".1") }
        let writer = try AuditWriter(sinks: [try JSONLinesSink(path: path, fsync: .batch)], policy: .backpressure, clock: clock())
        let queue = writer.makeQueue(capacity: 100)
        writer.start()
        XCTAssertTrue(queue.submit(event("rotate", 1)))
        XCTAssertTrue(waitFor { writer.writtenCount == 1 })
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        writer.requestReopen()
        XCTAssertTrue(waitFor { FileManager.default.fileExists(atPath: path) })
        XCTAssertTrue(queue.submit(event("rotate", 2)))
        writer.stop()
        XCTAssertEqual(try String(contentsOfFile: path + ".1", encoding: .utf8).split(separator: "\n").count, 1)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count, 1)
    }

    private func waitFor(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}
