import XCTest
@testable import Wire

final class StartupDecoderTests: XCTestCase {
    /// A startup packet as libpq sends it: user, database, application_name, client_encoding.
    func libpqStartup() -> [UInt8] {
        var b = ByteBuffer()
        StartupPacket(parameters: [
            .init(name: "user", value: "alice"), .init(name: "database", value: "app"),
            .init(name: "application_name", value: "psql"), .init(name: "client_encoding", value: "UTF8"),
        ]).encode(into: &b)
        return Array(b.readableBytesView)
    }

    func testStartupPacketWireLayoutMatchesProtocol() {
        let bytes = libpqStartup()
        // Int32 length (self-inclusive), Int32 196608 (3.0), pairs, final NUL.
        XCTAssertEqual(Array(bytes[4..<8]), [0, 3, 0, 0])
        XCTAssertEqual(Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])), bytes.count)
        XCTAssertEqual(bytes.last, 0)
        XCTAssertEqual(Array(bytes[8..<13]), Array("user\0".utf8))
    }

    func testOneByteAtATimeReturnsNilWithoutMovingTheCursor() throws {
        let bytes = libpqStartup()
        var buffer = ByteBuffer()
        for (i, byte) in bytes.enumerated() {
            buffer.writeBytes([byte])
            let before = buffer.readerIndex
            let decoded = try StartupDecoder.decode(&buffer)
            if i < bytes.count - 1 {
                XCTAssertNil(decoded)
                XCTAssertEqual(buffer.readerIndex, before)
            } else {
                guard case .startup(let packet) = decoded else { return XCTFail("expected startup") }
                XCTAssertEqual(packet.user, "alice")
                XCTAssertEqual(packet.database, "app")
                XCTAssertEqual(packet["application_name"], "psql")
                XCTAssertEqual(buffer.readableBytes, 0)
            }
        }
    }

    func testConsumesExactlyOnePacketLeavingTheNext() throws {
        var buffer = ByteBuffer()
        StartupMessage.sslRequest.encode(into: &buffer)
        buffer.writeBytes(libpqStartup())
        XCTAssertEqual(try StartupDecoder.decode(&buffer), .sslRequest)
        XCTAssertEqual(buffer.readableBytes, libpqStartup().count)
        guard case .startup = try StartupDecoder.decode(&buffer) else { return XCTFail() }
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    func testSpecialRequestCodes() throws {
        var b = ByteBuffer(bytes: [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        XCTAssertEqual(try StartupDecoder.decode(&b), .sslRequest)
        b = ByteBuffer(bytes: [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])
        XCTAssertEqual(try StartupDecoder.decode(&b), .gssEncRequest)
        b = ByteBuffer(bytes: [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39, 1, 2, 3, 4])
        XCTAssertEqual(try StartupDecoder.decode(&b), .cancelRequest(processID: 12345, secretKey: [1, 2, 3, 4]))
    }

    func testHugeLengthIsRefusedBeforeTheBodyArrives() {
        // A 2 GiB length header with only its first bytes present: refused at once.
        var b = ByteBuffer(bytes: [0x7f, 0xff, 0xff, 0xff, 0])
        XCTAssertThrowsError(try StartupDecoder.decode(&b)) { error in
            XCTAssertEqual(error as? WireError, .startupPacketTooLarge(Int(Int32.max)))
            XCTAssertEqual((error as? WireError)?.sqlState, "08P01")
            XCTAssertEqual((error as? WireError)?.message, "invalid length of startup packet")
        }
        var small = ByteBuffer(bytes: [0, 0, 0, 7])
        XCTAssertThrowsError(try StartupDecoder.decode(&small))
        // MAX_STARTUP_PACKET_LENGTH counts the packet without its length word: 10,004 is the most.
        var limit = ByteBuffer(bytes: [0, 0, 0x27, 0x15]) // 10005
        XCTAssertThrowsError(try StartupDecoder.decode(&limit))
        var longest = ByteBuffer(bytes: [0, 0, 0x27, 0x14]) // 10004: waits for the rest
        XCTAssertNil(try StartupDecoder.decode(&longest))
    }

    /// ProcessStartupPacket's reading, checked against PostgreSQL 15.18: a name with no room
    /// for a value ends the list and counts as the terminator when it is the last byte; names
    /// are cut to 63 bytes; SSLRequest by its code whatever its length; CancelRequest only at 16.
    func testPostgreSQLsReadingOfOddPackets() throws {
        var body = Array("user\0bob\0database\0app\0d".utf8)
        var b = ByteBuffer()
        b.writeInteger(Int32(8 + body.count)); b.writeInteger(UInt32(196_608)); b.writeBytes(body)
        guard case .startup(let packet) = try StartupDecoder.decode(&b) else { return XCTFail() }
        XCTAssertEqual(packet.user, "bob")
        XCTAssertEqual(packet.database, "app")

        body = Array("user\0\(String(repeating: "a", count: 70))\0database\0\(String(repeating: "d", count: 64))\0\0".utf8)
        b = ByteBuffer()
        b.writeInteger(Int32(8 + body.count)); b.writeInteger(UInt32(196_608)); b.writeBytes(body)
        guard case .startup(let long) = try StartupDecoder.decode(&b) else { return XCTFail() }
        XCTAssertEqual(long.user, String(repeating: "a", count: 63))
        XCTAssertEqual(long.database, String(repeating: "d", count: 63))

        // Bytes that are not UTF-8 become U+FFFD (3 bytes each): the cut is made on the decoded
        // name, so it reads the same when encoded again (found by the startup fuzzer).
        body = Array("user\0u\0database\0".utf8) + [UInt8](repeating: 0xFF, count: 40) + Array("app\0\0".utf8)
        b = ByteBuffer()
        b.writeInteger(Int32(8 + body.count)); b.writeInteger(UInt32(196_608)); b.writeBytes(body)
        guard case .startup(let lossy)? = try StartupDecoder.decode(&b) else { return XCTFail() }
        XCTAssertLessThanOrEqual(lossy.database?.utf8.count ?? 99, 63)
        var again = ByteBuffer()
        StartupMessage.startup(lossy).encode(into: &again)
        XCTAssertEqual(try StartupDecoder.decode(&again), .startup(lossy))

        var ssl = ByteBuffer(bytes: [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2f, 1, 2, 3, 4, 5, 6, 7, 8, 0x51])
        XCTAssertEqual(try StartupDecoder.decode(&ssl), .sslRequest)
        XCTAssertEqual(ssl.readableBytes, 1, "exactly the packet is consumed")
        var cancel = ByteBuffer(bytes: [0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39])
        XCTAssertThrowsError(try StartupDecoder.decode(&cancel)) { error in
            XCTAssertEqual(error as? WireError, .invalidCancelRequestLength(12))
        }
    }

    func testLayoutErrors() {
        let cases: [[UInt8]] = [
            Array("user\0alice\0".utf8),          // missing final terminator
            Array("user\0alice".utf8) + [0x41],   // last byte not NUL
            Array("user\0alice\0\0x\0".utf8),     // bytes after terminator
            Array("user\0".utf8) + [0],           // name without value
        ]
        for body in cases {
            var b = ByteBuffer()
            b.writeInteger(Int32(8 + body.count))
            b.writeInteger(UInt32(196_608))
            b.writeBytes(body)
            XCTAssertThrowsError(try StartupDecoder.decode(&b), "\(body)") { error in
                XCTAssertEqual((error as? WireError)?.sqlState, "08P01")
            }
        }
    }

    func testUnsupportedMajorVersionAndNewerMinor() throws {
        var b = ByteBuffer()
        b.writeInteger(Int32(9))
        b.writeInteger(UInt32(2 << 16))
        b.writeInteger(UInt8(0))
        XCTAssertThrowsError(try StartupDecoder.decode(&b)) { error in
            XCTAssertEqual((error as? WireError)?.message, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0")
        }
        var newer = ByteBuffer()
        StartupPacket(protocolMajor: 3, protocolMinor: 2, parameters: [.init(name: "user", value: "u"), .init(name: "_pq_.x", value: "1")]).encode(into: &newer)
        guard case .startup(let packet) = try StartupDecoder.decode(&newer) else { return XCTFail() }
        XCTAssertEqual(packet.protocolMinor, 2)
        XCTAssertEqual(packet.unrecognizedProtocolOptions, ["_pq_.x"])
        XCTAssertEqual(packet.database, "u", "database defaults to the user name")
    }
}
