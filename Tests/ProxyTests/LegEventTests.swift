import XCTest
import Glibc
import EventLoop
import Wire
@testable import Proxy

/// The narrow seam between a leg and its owner (``LegOwner``/``LegEvent``), over socketpairs:
/// the end of a leg and `drained` arrive after the current batch, never from inside a call the
/// owner made; the end exactly once; bytes read before an EOF come first.
final class LegEventTests: XCTestCase {
    final class Recorder: LegOwner {
        var log: [String] = []
        func legEvent(_ leg: Leg, _ event: LegEvent) {
            switch event {
            case .connected: log.append("connected")
            case .handshakeCompleted: log.append("handshakeCompleted")
            case .peekedFirstByte: log.append("peeked")
            case .received:
                log.append("received:\(String(decoding: leg.inbound.readableBytesView, as: UTF8.self))")
                leg.inbound.clear()
            case .drained: log.append("drained")
            case .handshakeFailed: log.append("handshakeFailed")
            case .closed(let reason): log.append(reason == nil ? "closed:eof" : "closed:error")
            }
        }
    }

    private func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw Errno.current
        }
        return (fds[0], fds[1])
    }

    /// Runs `body` as deferred work on a fresh loop (as a session's code runs), then the loop
    /// for `duration`.
    private func run(for duration: Duration = .milliseconds(300), _ body: @escaping (EventLoop) -> Void) throws {
        let loop = try EventLoop(index: 0)
        loop.execute(afterCurrentBatch: { body(loop) })
        loop.scheduleTimer(at: loop.now() + duration) { loop.stop() }
        loop.run()
    }

    /// A registered client leg on `fd` that reports to `recorder`.
    private static func clientLeg(_ loop: EventLoop, _ fd: Int32, _ recorder: Recorder) -> Leg {
        let leg = Leg(loop: loop, fd: fd, name: "client", connecting: false)
        leg.owner = recorder
        try? leg.register()
        return leg
    }

    func testAFailedWriteIsReportedOnceAfterTheBatchNeverFromInsideTheCall() throws {
        let (mine, peer) = try socketPair()
        closeDescriptor(peer)
        let recorder = Recorder()
        var duringCalls: [String] = []
        var leg: Leg?
        try run { loop in
            let created = Self.clientLeg(loop, mine, recorder)
            leg = created
            created.send(ByteBuffer(bytes: Array("lost".utf8)))
            created.flush()  // EPIPE: recorded, not reported in here
            created.send(ByteBuffer(bytes: Array("after".utf8)))
            created.flush()
            duringCalls = recorder.log
        }
        XCTAssertEqual(duringCalls, [], "nothing is reported from inside send or flush")
        XCTAssertEqual(recorder.log, ["closed:error"], "the end is reported once, after the batch")
        leg?.close()
    }

    func testDrainedComesAfterTheBatchAndOnlyWhenNothingWasQueuedMeanwhile() throws {
        let (mine, peer) = try socketPair()
        defer { closeDescriptor(peer) }
        let recorder = Recorder()
        var afterFlush: [String] = []
        var leg: Leg?
        try run { loop in
            let created = Self.clientLeg(loop, mine, recorder)
            leg = created
            created.send(ByteBuffer(bytes: Array("one".utf8)))
            created.flush()  // written at once, but `drained` waits for the batch to end
            afterFlush = recorder.log
            created.send(ByteBuffer(bytes: Array("two".utf8)))
            // Queued after the leg's own flush: runs before an event that flush defers.
            loop.execute(afterCurrentBatch: { recorder.log.append("work queued with the flush") })
        }
        XCTAssertEqual(afterFlush, [])
        XCTAssertEqual(recorder.log, ["work queued with the flush", "drained"],
                       "one drained, once everything queued was written, deferred past the flush that wrote it")
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(peer, &buffer, buffer.count)
        XCTAssertEqual(n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "", "onetwo")
        leg?.close()
    }

    func testBytesBeforeAnEOFAreHandedOverBeforeTheEnd() throws {
        let (mine, peer) = try socketPair()
        _ = write(peer, "last words", 10)
        closeDescriptor(peer)
        let recorder = Recorder()
        var leg: Leg?
        try run { loop in
            let created = Self.clientLeg(loop, mine, recorder)
            leg = created
        }
        XCTAssertEqual(recorder.log, ["received:last words", "closed:eof"])
        leg?.close()
    }

    func testNothingIsReportedAfterTheOwnerClosedTheLeg() throws {
        let (mine, peer) = try socketPair()
        closeDescriptor(peer)
        let recorder = Recorder()
        try run { loop in
            let leg = Leg(loop: loop, fd: mine, name: "client", connecting: false)
            leg.owner = recorder
            try? leg.register()
            leg.send(ByteBuffer(bytes: Array("x".utf8)))
            leg.flush()  // the failure is recorded...
            leg.close()  // ...but the owner closed the leg first: it hears nothing more
        }
        XCTAssertEqual(recorder.log, [])
    }
}
