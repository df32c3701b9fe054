import XCTest
import Wire
@testable import Session

final class MessageStreamTrackerTests: XCTestCase {
    /// Takes every step the tracker can take on what `buffer` holds, as the shell does: the
    /// bytes it forwards (or inspects, then forwards) are appended to `forwarded`.
    private func drain(_ tracker: inout MessageStreamTracker, _ buffer: inout ByteBuffer,
                       forwarded: inout [UInt8], inspected: inout [MessageFrame]) throws {
        while true {
            switch try tracker.nextStep(in: buffer) {
            case .forward(let n):
                XCTAssertLessThanOrEqual(n, buffer.readableBytes)
                forwarded += buffer.readableBytesView.prefix(n)
                buffer.moveReaderIndex(forwardBy: n)
            case .inspect(let frame):
                inspected.append(frame)
                forwarded += buffer.readableBytesView.prefix(frame.totalLength)
                buffer.moveReaderIndex(forwardBy: frame.totalLength)
            case .oversized(let frame):
                // Answered from the header: what has arrived is consumed, the rest skipped.
                inspected.append(frame)
                let consumed = min(buffer.readableBytes, frame.totalLength)
                buffer.moveReaderIndex(forwardBy: consumed)
                tracker.skipRest(of: frame, consumed: consumed)
            case .skip(let n):
                XCTAssertLessThanOrEqual(n, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: n)
            case .needMoreBytes:
                return
            }
        }
    }

    /// A limited type longer than the bound is reported from its 5-byte header, once, never
    /// held: fed one byte at a time and all at once, the next message is inspected as usual.
    func testAnOversizedLimitedMessageIsReportedFromItsHeaderAndSkipped() throws {
        var stream = ByteBuffer()
        FrontendMessage.query(String(repeating: "x", count: 5000)).encode(into: &stream)
        FrontendMessage.query("SELECT 1").encode(into: &stream)
        let all = Array(stream.readableBytesView)
        for chunkSize in [1, all.count] {
            var tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [UInt8(ascii: "Q")],
                                               limitedTypes: [UInt8(ascii: "Q")], maxHeldBody: 1000)
            var buffer = ByteBuffer()
            var forwarded: [UInt8] = []
            var inspected: [MessageFrame] = []
            var fed = 0
            var firstReportAt: Int?
            for chunk in stride(from: 0, to: all.count, by: chunkSize) {
                buffer.writeBytes(all[chunk..<min(chunk + chunkSize, all.count)])
                fed = min(chunk + chunkSize, all.count)
                try drain(&tracker, &buffer, forwarded: &forwarded, inspected: &inspected)
                if firstReportAt == nil && !inspected.isEmpty { firstReportAt = fed }
                XCTAssertLessThanOrEqual(buffer.readableBytes, 5 + 13, "nothing of the long message is held")
            }
            XCTAssertEqual(inspected.map(\.totalLength), [5005 + 1, 14], "chunks of \(chunkSize)")
            if chunkSize == 1 { XCTAssertEqual(firstReportAt, 5, "reported from its header") }
            XCTAssertEqual(forwarded, Array(all.suffix(14)), "only the second message is forwarded")
            XCTAssertTrue(tracker.isAtMessageBoundary)
        }
    }

    func testStreamsLargeMessagesInPiecesAndHoldsInspectedOnesWhole() throws {
        var stream = ByteBuffer()
        BackendMessage.raw(type: UInt8(ascii: "D"), payload: Array(repeating: 1, count: 1000)).encode(into: &stream)
        BackendMessage.readyForQuery(.inTransaction).encode(into: &stream)
        let all = Array(stream.readableBytesView)
        var tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [UInt8(ascii: "Z")])
        var buffer = ByteBuffer()
        var forwarded: [UInt8] = []
        var inspected: [MessageFrame] = []
        // Feed in 7-byte chunks: data rows go out as they arrive, 'Z' only once complete.
        for chunk in stride(from: 0, to: all.count, by: 7) {
            buffer.writeBytes(all[chunk..<min(chunk + 7, all.count)])
            try drain(&tracker, &buffer, forwarded: &forwarded, inspected: &inspected)
        }
        XCTAssertEqual(forwarded, all, "bytes are forwarded unchanged and in order")
        XCTAssertEqual(inspected, [MessageFrame(type: UInt8(ascii: "Z"), length: 5)])
        XCTAssertTrue(tracker.isAtMessageBoundary)
    }

    /// Complete CopyData messages one after another go out as one step; a run stops at
    /// another type, at an incomplete message and at an invalid length, and an inspected type
    /// is never part of a run. The bytes are forwarded unchanged whatever the chunking.
    func testRunsOfCompleteMessagesGoOutAsOneStep() throws {
        var stream = ByteBuffer()
        for row in 0..<50 {
            BackendMessage.raw(type: UInt8(ascii: "d"), payload: Array(repeating: UInt8(row), count: 90 + row)).encode(into: &stream)
        }
        BackendMessage.raw(type: UInt8(ascii: "c"), payload: []).encode(into: &stream)
        BackendMessage.raw(type: UInt8(ascii: "C"), payload: Array("COPY 50\0".utf8)).encode(into: &stream)
        BackendMessage.readyForQuery(.idle).encode(into: &stream)
        let all = Array(stream.readableBytesView)
        let copyBytes = (0..<50).reduce(0) { $0 + 5 + 90 + $1 }

        // All at once: the 50 CopyData messages are one forward; the rest one step each.
        var tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [UInt8(ascii: "Z"), UInt8(ascii: "d")],
                                           runs: [UInt8(ascii: "d")])
        var whole = ByteBuffer(bytes: all)
        XCTAssertEqual(try tracker.nextStep(in: whole), .inspect(MessageFrame(type: UInt8(ascii: "d"), length: 4 + 90)),
                       "an inspected type never runs")
        tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [UInt8(ascii: "Z")], runs: [UInt8(ascii: "d")])
        XCTAssertEqual(try tracker.nextStep(in: whole), .forward(copyBytes))
        whole.moveReaderIndex(forwardBy: copyBytes)
        XCTAssertEqual(try tracker.nextStep(in: whole), .forward(5), "CopyDone is a step of its own")

        // Any chunking: the same bytes in the same order, Z still inspected whole.
        for chunkSize in [1, 7, 100, 333, 4096] {
            var tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [UInt8(ascii: "Z")], runs: [UInt8(ascii: "d")])
            var buffer = ByteBuffer()
            var forwarded: [UInt8] = []
            var inspected: [MessageFrame] = []
            for chunk in stride(from: 0, to: all.count, by: chunkSize) {
                buffer.writeBytes(all[chunk..<min(chunk + chunkSize, all.count)])
                try drain(&tracker, &buffer, forwarded: &forwarded, inspected: &inspected)
            }
            XCTAssertEqual(forwarded, all, "chunks of \(chunkSize)")
            XCTAssertEqual(inspected, [MessageFrame(type: UInt8(ascii: "Z"), length: 5)])
        }

        // A run stops before an invalid length, which the next step refuses.
        var bad = ByteBuffer()
        BackendMessage.raw(type: UInt8(ascii: "d"), payload: [1, 2, 3]).encode(into: &bad)
        bad.writeBytes([UInt8(ascii: "d"), 0, 0, 0, 2])
        tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [], runs: [UInt8(ascii: "d")])
        XCTAssertEqual(try tracker.nextStep(in: bad), .forward(8))
        bad.moveReaderIndex(forwardBy: 8)
        XCTAssertThrowsError(try tracker.nextStep(in: bad))
    }

    func testOversizedMessageRefusedFromItsHeader() {
        var tracker = MessageStreamTracker(maxMessageLength: 8192, inspecting: [])
        let header = ByteBuffer(bytes: [UInt8(ascii: "d"), 0, 1, 0, 0])
        XCTAssertThrowsError(try tracker.nextStep(in: header)) { error in
            XCTAssertEqual((error as? WireError)?.sqlState, "54000")
        }
    }

    /// postgres.c SocketBackend: an unknown type is FATAL 08P01 from its first byte; the
    /// length it declares is never waited for.
    func testUnknownFrontendTypeFailsFromItsFirstByte() throws {
        var tracker = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [], validTypes: MessageStreamTracker.frontendTypes)
        var buffer = ByteBuffer(bytes: [UInt8(ascii: "a")])
        XCTAssertThrowsError(try tracker.nextStep(in: buffer)) { error in
            XCTAssertEqual(error as? WireError, .unknownMessageType(97))
            XCTAssertEqual((error as? WireError)?.message, "invalid frontend message type 97")
            XCTAssertEqual((error as? WireError)?.sqlState, "08P01")
        }
        // Every type PostgreSQL 15 accepts after login passes.
        for type in "QFXBCDEHPSdcf".utf8 {
            var ok = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [], validTypes: MessageStreamTracker.frontendTypes)
            buffer = ByteBuffer(bytes: [type, 0, 0, 0, 4])
            XCTAssertEqual(try ok.nextStep(in: buffer), .forward(5))
        }
        // Without validTypes (the server side) any type is framed.
        var server = MessageStreamTracker(maxMessageLength: 1 << 20, inspecting: [])
        XCTAssertEqual(try server.nextStep(in: ByteBuffer(bytes: [UInt8(ascii: "a"), 0, 0, 0, 4])), .forward(5))
    }

    /// Parameter counts are unsigned 16-bit, as PostgreSQL reads them: 65535 types decode.
    func testParseWith65535ParameterTypesDecodes() throws {
        var buffer = ByteBuffer()
        FrontendMessage.parse(name: "s", query: "SELECT $1::int", parameterTypes: Array(repeating: 23, count: 65535)).encode(into: &buffer)
        let frame = try XCTUnwrap(try FrameDecoder(maxMessageLength: 1 << 20).peekFrame(in: buffer))
        guard case .parse(_, _, let types) = try FrontendMessage.decode(frame: frame, from: &buffer) else { return XCTFail() }
        XCTAssertEqual(types.count, 65535)
    }
}
