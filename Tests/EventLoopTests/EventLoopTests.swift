import XCTest
import Glibc
@testable import EventLoop

final class EventLoopTests: XCTestCase {
    final class Recorder: ReadinessHandler {
        var events: [(RegistrationID, ReadinessEvents)] = []
        var onEvent: ((RegistrationID, ReadinessEvents) -> Void)?
        func readinessReceived(_ events: ReadinessEvents, id: RegistrationID) {
            self.events.append((id, events))
            onEvent?(id, events)
        }
    }

    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0, &fds), 0)
        return (fds[0], fds[1])
    }

    func testTimersFireInDeadlineOrderAndCancelledOnesDoNot() throws {
        let loop = try EventLoop(index: 0)
        var fired: [Int] = []
        let now = loop.now()
        loop.scheduleTimer(at: now + .milliseconds(30)) { fired.append(3); loop.stop() }
        loop.scheduleTimer(at: now + .milliseconds(10)) { fired.append(1) }
        let cancelled = loop.scheduleTimer(at: now + .milliseconds(20)) { fired.append(2) }
        loop.cancelTimer(cancelled)
        loop.run()
        XCTAssertEqual(fired, [1, 3])
    }

    final class Work: BatchWork {
        var log: [String]
        var onRun: ((UInt8) -> Void)?
        init(log: [String] = []) { self.log = log }
        func runAfterBatch(_ kind: UInt8) {
            log.append("work\(kind)")
            onRun?(kind)
        }
    }

    /// Work queued as an object (a leg's flush and drained report) runs in order with queued
    /// closures, after the batch, and work it queues runs in the same round of deferred work,
    /// before the loop waits again.
    func testBatchWorkRunsInOrderWithClosuresAfterTheBatch() throws {
        let loop = try EventLoop(index: 0)
        let work = Work()
        loop.scheduleTimer(at: loop.now()) {
            loop.execute(afterCurrentBatch: { work.log.append("closure1") })
            loop.execute(afterCurrentBatch: work, kind: 7)
            loop.execute(afterCurrentBatch: { work.log.append("closure2") })
            work.log.append("timer")
        }
        work.onRun = { kind in
            guard kind == 7 else { return }
            loop.execute(afterCurrentBatch: work, kind: 8)
            loop.execute(afterCurrentBatch: { work.log.append("closure3"); loop.stop() })
        }
        loop.run()
        XCTAssertEqual(work.log, ["timer", "closure1", "work7", "closure2", "work8", "closure3"])
    }

    /// `batchNow` is the clock read when the batch began: the same for every handler of one
    /// batch, and never after `now()` read later in it.
    func testBatchNowIsReadOncePerBatch() throws {
        let loop = try EventLoop(index: 0)
        var seen: [MonotonicInstant] = []
        var fresh = MonotonicInstant(nanoseconds: 0)
        loop.scheduleTimer(at: loop.now()) {
            seen.append(loop.batchNow)
            usleep(2000)
            fresh = loop.now()
            loop.execute(afterCurrentBatch: { seen.append(loop.batchNow); loop.stop() })
        }
        loop.run()
        XCTAssertEqual(seen.count, 2)
        XCTAssertEqual(seen.first, seen.last, "one reading for the whole batch")
        XCTAssertGreaterThanOrEqual(fresh.nanoseconds - (seen.first?.nanoseconds ?? 0), 2_000_000)
    }

    func testReadableEventAndWouldBlockIsAValue() throws {
        let loop = try EventLoop(index: 0)
        let (a, b) = socketPair()
        defer { closeDescriptor(a); closeDescriptor(b) }
        let recorder = Recorder()
        let id = try loop.register(fd: a, interest: .readable, handler: recorder)
        var buffer = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try Socket.read(a, into: $0) }, .wouldBlock)
        _ = [UInt8](arrayLiteral: 1, 2, 3).withUnsafeBytes { try? Socket.write(b, from: $0) }
        recorder.onEvent = { _, _ in loop.stop() }
        loop.run()
        XCTAssertEqual(recorder.events.first?.0, id)
        XCTAssertTrue(recorder.events.first?.1.isReadable ?? false)
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try Socket.read(a, into: $0) }, .processed(3))
    }

    /// An event already fetched for a registration that is removed in the same batch is dropped:
    /// the id, not the descriptor number, identifies the registration.
    func testEventsForARemovedRegistrationAreDropped() throws {
        let loop = try EventLoop(index: 0)
        let (a1, b1) = socketPair()
        let (a2, b2) = socketPair()
        defer { closeDescriptor(a1); closeDescriptor(b1); closeDescriptor(a2); closeDescriptor(b2) }
        let first = Recorder(), second = Recorder()
        let id1 = try loop.register(fd: a1, interest: .readable, handler: first)
        let id2 = try loop.register(fd: a2, interest: .readable, handler: second)
        // Whichever is delivered first removes the other; the other must then hear nothing.
        var byte: UInt8 = 0
        first.onEvent = { _, _ in loop.deregister(id2); _ = read(a1, &byte, 1) }
        second.onEvent = { _, _ in loop.deregister(id1); _ = read(a2, &byte, 1) }
        _ = [UInt8](arrayLiteral: 1).withUnsafeBytes { try? Socket.write(b1, from: $0) }
        _ = [UInt8](arrayLiteral: 1).withUnsafeBytes { try? Socket.write(b2, from: $0) }
        loop.scheduleTimer(at: loop.now() + .milliseconds(50)) { loop.stop() }
        loop.run()
        XCTAssertEqual(first.events.count + second.events.count, 1, "exactly one registration heard its event")
        XCTAssertNotEqual(first.events.isEmpty, second.events.isEmpty)
    }

    func testMailboxWakesTheLoopFromAnotherThread() throws {
        let loop = try EventLoop(index: 0)
        var received: [String] = []
        loop.controlMessageReceived = { message in
            received.append(message as? String ?? "?")
            loop.stop()
        }
        let mailbox = loop.mailbox
        let thread = LoopThread.start(name: "poster") { mailbox.post("hello") }
        loop.run()
        LoopThread.join(thread)
        XCTAssertEqual(received, ["hello"])
    }

    func testSyscallHelperTypesErrors() {
        XCTAssertThrowsError(try syscallValue { Glibc.close(-1) }) { error in
            XCTAssertEqual(error as? Errno, Errno(rawValue: EBADF))
        }
    }
}
