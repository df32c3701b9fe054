import XCTest
@testable import Wire

final class FrameDecoderTests: XCTestCase {
    let decoder = FrameDecoder(maxMessageLength: 1 << 20)

    func backendSample() -> [BackendMessage] {
        [
            .authentication(.ok), .authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])),
            .authentication(.md5Password(salt: [1, 2, 3, 4])), .authentication(.saslContinue(Array("r=abc".utf8))),
            .parameterStatus(name: "server_version", value: "15.18"), .backendKeyData(processID: 4242, secretKey: [9, 8, 7, 6]),
            .readyForQuery(.idle), .readyForQuery(.inTransaction), .readyForQuery(.failed),
            .errorResponse(.error(sqlState: "28P01", message: "password authentication failed for user \"x\"", severity: "FATAL")),
            .noticeResponse(.error(sqlState: "00000", message: "hi", detail: "d", hint: "h", severity: "NOTICE")),
            .negotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: ["_pq_.a", "_pq_.b"]),
            .commandComplete(tag: "SELECT 1"), .emptyQueryResponse, .parseComplete, .bindComplete, .closeComplete, .noData,
            .portalSuspended, .notificationResponse(processID: 7, channel: "c", payload: "p"), .copyDone,
            .raw(type: UInt8(ascii: "D"), payload: [0, 1, 0, 0, 0, 1, 0x31]),
        ]
    }

    func testBackendRoundTripManyMessagesInOneBuffer() throws {
        var buffer = ByteBuffer()
        for m in backendSample() { m.encode(into: &buffer) }
        var decoded: [BackendMessage] = []
        while let frame = try decoder.peekFrame(in: buffer) {
            decoded.append(try BackendMessage.decode(frame: frame, from: &buffer))
        }
        XCTAssertEqual(decoded, backendSample())
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    func testBackendOneByteAtATime() throws {
        var all = ByteBuffer()
        for m in backendSample() { m.encode(into: &all) }
        var buffer = ByteBuffer()
        var decoded: [BackendMessage] = []
        for byte in all.readableBytesView {
            buffer.writeBytes([byte])
            while let frame = try decoder.peekFrame(in: buffer), buffer.readableBytes >= frame.totalLength {
                decoded.append(try BackendMessage.decode(frame: frame, from: &buffer))
            }
        }
        XCTAssertEqual(decoded, backendSample())
    }

    func frontendSample() -> [FrontendMessage] {
        [
            .query("SELECT 1; SELECT 'a;b'"), .parse(name: "s1", query: "SELECT $1", parameterTypes: [23]),
            .bind(.init(portal: "", statement: "s1", parameterFormats: [0], parameters: [Array("42".utf8), nil], resultFormats: [1])),
            .execute(portal: "", maxRows: 0), .describe(.portal, name: ""), .close(.statement, name: "s1"),
            .sync, .flush, .copyData([1, 2, 3]), .copyDone, .copyFail("no"),
            .functionCall(.init(functionOID: 954, argumentFormats: [1], arguments: [[0, 0, 0, 1]], resultFormat: 1)),
            .terminate,
        ]
    }

    func testFrontendRoundTripAndOneByteAtATime() throws {
        var all = ByteBuffer()
        for m in frontendSample() { m.encode(into: &all) }
        var buffer = ByteBuffer()
        var decoded: [FrontendMessage] = []
        for byte in all.readableBytesView {
            buffer.writeBytes([byte])
            let before = buffer.readerIndex
            if let frame = try decoder.peekFrame(in: buffer), buffer.readableBytes >= frame.totalLength {
                decoded.append(try FrontendMessage.decode(frame: frame, from: &buffer))
            } else {
                XCTAssertEqual(buffer.readerIndex, before, "an incomplete message must not move the cursor")
            }
        }
        XCTAssertEqual(decoded, frontendSample())
    }

    func testLengthLimitsCheckedBeforeAllocation() {
        // 'Q' with a 2 GiB length and no payload: refused from the 5-byte header alone.
        let huge = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0x7f, 0xff, 0xff, 0xff])
        XCTAssertThrowsError(try decoder.peekFrame(in: huge)) { error in
            XCTAssertEqual(error as? WireError, .messageTooLarge(type: UInt8(ascii: "Q"), length: Int(Int32.max)))
        }
        XCTAssertThrowsError(try decoder.peekFrame(in: ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0, 0, 3]))) { error in
            XCTAssertEqual((error as? WireError)?.sqlState, "08P01")
        }
        XCTAssertNil(try decoder.peekFrame(in: ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0])))
    }

    func testDecodersConsumeExactlyThePayload() {
        // Sync with a trailing byte inside its declared length.
        var trailing = ByteBuffer(bytes: [UInt8(ascii: "S"), 0, 0, 0, 5, 0])
        XCTAssertThrowsError(try FrontendMessage.decode(frame: decoder.peekFrame(in: trailing)!, from: &trailing))
        // Query whose string is not terminated inside the payload.
        var unterminated = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0, 0, 6, 0x61, 0x62, 0])
        XCTAssertThrowsError(try FrontendMessage.decode(frame: decoder.peekFrame(in: unterminated)!, from: &unterminated))
        // ReadyForQuery with an invalid status.
        var z = ByteBuffer(bytes: [UInt8(ascii: "Z"), 0, 0, 0, 5, UInt8(ascii: "Q")])
        XCTAssertThrowsError(try BackendMessage.decode(frame: decoder.peekFrame(in: z)!, from: &z))
        // Unknown frontend type.
        var unknown = ByteBuffer(bytes: [0x01, 0, 0, 0, 4])
        XCTAssertThrowsError(try FrontendMessage.decode(frame: decoder.peekFrame(in: unknown)!, from: &unknown)) { error in
            XCTAssertEqual((error as? WireError)?.message, "invalid frontend message type 1")
        }
    }

    func testSASLMessages() throws {
        var b = ByteBuffer()
        FrontendMessage.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("n,,n=,r=abc".utf8)).encode(into: &b)
        FrontendMessage.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: nil).encode(into: &b)
        FrontendMessage.saslResponse(Array("c=biws".utf8)).encode(into: &b)
        FrontendMessage.passwordMessage("md5abc").encode(into: &b)
        let first = try FrontendMessage.decodeSASLInitialResponse(frame: decoder.peekFrame(in: b)!, from: &b)
        XCTAssertEqual(first.mechanism, "SCRAM-SHA-256")
        XCTAssertEqual(first.data, Array("n,,n=,r=abc".utf8))
        XCTAssertNil(try FrontendMessage.decodeSASLInitialResponse(frame: decoder.peekFrame(in: b)!, from: &b).data)
        XCTAssertEqual(try FrontendMessage.decodeSASLResponse(frame: decoder.peekFrame(in: b)!, from: &b), Array("c=biws".utf8))
        XCTAssertEqual(try FrontendMessage.decodePasswordMessage(frame: decoder.peekFrame(in: b)!, from: &b), "md5abc")
        XCTAssertEqual(b.readableBytes, 0)
    }

    func testByteBufferCursorsAndCompaction() {
        var b = ByteBuffer()
        b.writeBytes(Array(repeating: 7, count: 1000))
        b.moveReaderIndex(forwardBy: 600)
        b.discardReadBytes()
        XCTAssertEqual(b.readerIndex, 0)
        XCTAssertEqual(b.readableBytes, 400)
        let n = b.writeWithUnsafeMutableBytes(minimumWritableBytes: 10) { ptr in
            ptr[0] = 1; ptr[1] = 2
            return 2
        }
        XCTAssertEqual(n, 2)
        XCTAssertEqual(Array(b.readableBytesView.suffix(2)), [1, 2])
        XCTAssertNil(b.readBytes(length: 403))
        XCTAssertEqual(b.readBytes(length: 402)?.count, 402)
    }
}
