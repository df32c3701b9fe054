import Foundation
import Glibc
import XCTest

/// The same raw bytes sent to PostgreSQL 15 and to Portcullis must get the same answer:
/// PostgreSQL is the oracle. Compared: message types in order and, for errors, SQLSTATE and text.
final class OracleTests: IntegrationTestCase {
    private struct Message: Equatable, CustomStringConvertible {
        var type: Character
        var fields: [Character: String]
        var description: String { "\(type)\(fields.isEmpty ? "" : " \(fields)")" }
    }

    /// Splits a reply into single-byte answers ('S', 'N') and framed messages; keeps C and M of errors.
    private func messages(_ bytes: [UInt8]) -> [Message] {
        var out: [Message] = []
        var i = 0
        while i < bytes.count {
            let type = Character(UnicodeScalar(bytes[i]))
            guard i + 5 <= bytes.count, "EvRSKZN".contains(type) else {
                out.append(Message(type: type, fields: [:]))
                i += 1
                continue
            }
            let length = Int(UInt32(bytes[i + 1]) << 24 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 8 | UInt32(bytes[i + 4]))
            let end = min(bytes.count, i + 1 + length)
            var fields: [Character: String] = [:]
            if type == "E" {
                var j = i + 5
                while j < end, bytes[j] != 0 {
                    let code = Character(UnicodeScalar(bytes[j]))
                    let start = j + 1
                    var k = start
                    while k < end, bytes[k] != 0 { k += 1 }
                    if code == "C" || code == "M" { fields[code] = String(decoding: bytes[start..<k], as: UTF8.self) }
                    j = k + 1
                }
            }
            out.append(Message(type: type, fields: fields))
            i = end
        }
        return out
    }

    private func startup(minor: UInt32, _ params: [(String, String)]) -> [UInt8] {
        var body: [UInt8] = []
        for (k, v) in params { body += Array(k.utf8) + [0] + Array(v.utf8) + [0] }
        body += [0]
        let version = (3 << 16) | minor
        let length = UInt32(8 + body.count)
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        return be(length) + be(version) + body
    }

    private func exchange(port: Int, _ packets: [[UInt8]]) throws -> [Message] {
        let socket = try RawSocket(port: port)
        for packet in packets { _ = socket.send(packet) }
        return messages(socket.readUntilClosed(timeout: 10).bytes)
    }

    /// `compareText`: also the message text, where it does not depend on pg_hba.conf lines
    /// (the test cluster rejects plaintext with an explicit `hostnossl ... reject` line, which
    /// PostgreSQL words differently from "no entry"; Portcullis has no pg_hba.conf yet).
    private func assertSameAnswer(_ packets: [[UInt8]], _ what: String, compareText: Bool = true,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        try requireProxyTarget("compares Portcullis with PostgreSQL")
        var direct = try exchange(port: try harness.cluster.port, packets)
        var proxied = try exchange(port: try endpoint.port, packets)
        XCTAssertFalse(direct.isEmpty, "PostgreSQL said nothing to \(what)", file: file, line: line)
        if !compareText {
            for i in direct.indices { direct[i].fields["M"] = nil }
            for i in proxied.indices { proxied[i].fields["M"] = nil }
        }
        XCTAssertEqual(proxied, direct, what, file: file, line: line)
    }

    func testPlaintextStartupIsRefusedWithTheSameSQLState() throws {
        try assertSameAnswer([startup(minor: 0, [("user", "app_rw"), ("database", "app")])], "plaintext startup", compareText: false)
    }

    func testNewerProtocolMinorGetsNegotiateProtocolVersionFirst() throws {
        try assertSameAnswer([startup(minor: 2, [("user", "app_rw"), ("database", "app"), ("_pq_.not_a_feature", "1")])],
                             "protocol 3.2 with an unknown _pq_ option", compareText: false)
    }

    /// A deliberate difference: Debian's PostgreSQL is built with GSSAPI and answers 'G' when
    /// it could encrypt with GSS; Portcullis does not speak GSS and always answers 'N', which
    /// libpq takes as "continue without GSS encryption".
    func testGSSEncryptionRequestIsDeclined() throws {
        try requireProxyTarget("Portcullis's own answer")
        let gssenc: [UInt8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]
        let socket = try RawSocket(port: try endpoint.port)
        _ = socket.send(gssenc)
        socket.shutdownWrite()
        XCTAssertEqual(Array(socket.readUntilClosed(timeout: 10).bytes.prefix(1)), [UInt8(ascii: "N")])
    }

    func testMissingUserName() throws {
        try assertSameAnswer([startup(minor: 0, [("database", "app")])], "startup without a user")
    }

    /// Byte for byte: NegotiateProtocolVersion carries PostgreSQL 15's PG_PROTOCOL_LATEST
    /// (3.0); protocol 2.0 gets the old protocol's error; impossible lengths and a short
    /// CancelRequest get nothing at all; an SSLRequest is an SSLRequest whatever its length.
    func testRawAnswersAreByteForByteTheServers() throws {
        try requireProxyTarget("compares Portcullis with PostgreSQL")
        func raw(_ port: Int, _ packet: [UInt8]) throws -> [UInt8] {
            let socket = try RawSocket(port: port)
            _ = socket.send(packet)
            return socket.readUntilClosed(timeout: 10).bytes
        }
        var two = startup(minor: 0, [("user", "app_rw")])
        two[4] = 0; two[5] = 2
        let cases: [(String, [UInt8], (([UInt8]) -> [UInt8]))] = [
            ("NegotiateProtocolVersion", startup(minor: 5, [("user", "app_rw"), ("_pq_.x", "1")]), { Array($0.prefix(19)) }),
            ("protocol 2.0", two, { $0 }),
            ("length 4", [0, 0, 0, 4], { $0 }),
            ("length 10,005", [0, 0, 0x27, 0x15] + [UInt8](repeating: 0, count: 10_001), { $0 }),
            ("CancelRequest of 12 bytes", [0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1], { $0 }),
            ("SSLRequest of 16 bytes", [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0, 0, 0, 0, 0], { Array($0.prefix(1)) }),
        ]
        for (what, packet, relevant) in cases {
            let direct = relevant(try raw(try harness.cluster.port, packet))
            XCTAssertEqual(relevant(try raw(try endpoint.port, packet)), direct, what)
        }
    }

    /// Packets PostgreSQL reads in its own way: a last name with no room for its value counts
    /// as the terminator; `replication` is a boolean in any spelling parse_bool accepts, and
    /// anything else is its own FATAL.
    func testStartupPacketReadingMatchesTheServer() throws {
        var quirk = startup(minor: 0, [("user", "app_rw"), ("database", "app")])
        quirk[quirk.count - 1] = UInt8(ascii: "d")
        try assertSameAnswer([quirk], "a final name with no value", compareText: false)
        for value in ["f", "of", "xyz"] {
            try assertSameAnswer([startup(minor: 0, [("user", "app_rw"), ("replication", value)])], "replication=\(value)",
                                 compareText: value == "xyz")
        }
    }

    /// Protocol 4.0: PostgreSQL answers with a protocol-3 ErrorResponse (0A000).
    func testUnsupportedMajorProtocolVersion() throws {
        var packet = startup(minor: 0, [("user", "app_rw")])
        packet[4] = 0; packet[5] = 4
        try assertSameAnswer([packet], "protocol 4.0")
    }
}
