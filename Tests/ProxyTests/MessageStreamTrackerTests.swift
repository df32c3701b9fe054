import XCTest
import Wire
@testable import Proxy

final class MessageStreamTrackerTests: XCTestCase {
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
            loop: while true {
                switch try tracker.nextStep(in: buffer) {
                case .forward(let n):
                    forwarded += buffer.readableBytesView.prefix(n)
                    buffer.moveReaderIndex(forwardBy: n)
                case .inspect(let frame):
                    inspected.append(frame)
                    forwarded += buffer.readableBytesView.prefix(frame.totalLength)
                    buffer.moveReaderIndex(forwardBy: frame.totalLength)
                case .needMoreBytes:
                    break loop
                }
            }
        }
        XCTAssertEqual(forwarded, all, "bytes are forwarded unchanged and in order")
        XCTAssertEqual(inspected, [MessageFrame(type: UInt8(ascii: "Z"), length: 5)])
        XCTAssertTrue(tracker.isAtMessageBoundary)
    }

    func testOversizedMessageRefusedFromItsHeader() {
        var tracker = MessageStreamTracker(maxMessageLength: 8192, inspecting: [])
        let header = ByteBuffer(bytes: [UInt8(ascii: "d"), 0, 1, 0, 0])
        XCTAssertThrowsError(try tracker.nextStep(in: header)) { error in
            XCTAssertEqual((error as? WireError)?.sqlState, "54000")
        }
    }
}
