/// The first message of a connection, which has no type byte (PostgreSQL docs 55.7:
/// StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
public enum StartupMessage: Equatable, Sendable {
    case sslRequest
    case gssEncRequest
    case cancelRequest(processID: Int32, secretKey: [UInt8])
    case startup(StartupPacket)

    static let sslRequestCode: UInt32 = 80_877_103       // 1234.5679
    static let gssEncRequestCode: UInt32 = 80_877_104    // 1234.5680
    static let cancelRequestCode: UInt32 = 80_877_102    // 1234.5678

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .sslRequest:
            buffer.writeInteger(Int32(8))
            buffer.writeInteger(Self.sslRequestCode)
        case .gssEncRequest:
            buffer.writeInteger(Int32(8))
            buffer.writeInteger(Self.gssEncRequestCode)
        case .cancelRequest(let processID, let secretKey):
            buffer.writeInteger(Int32(12 + secretKey.count))
            buffer.writeInteger(Self.cancelRequestCode)
            buffer.writeInteger(processID)
            buffer.writeBytes(secretKey)
        case .startup(let packet):
            packet.encode(into: &buffer)
        }
    }
}

public struct StartupParameter: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// StartupMessage: protocol version and name/value parameters.
public struct StartupPacket: Equatable, Sendable {
    public var protocolMajor: UInt16
    public var protocolMinor: UInt16
    public var parameters: [StartupParameter]

    public init(protocolMajor: UInt16 = 3, protocolMinor: UInt16 = 0, parameters: [StartupParameter]) {
        self.protocolMajor = protocolMajor
        self.protocolMinor = protocolMinor
        self.parameters = parameters
    }

    /// The last value given for `name` (PostgreSQL applies them in order, so the last wins).
    public subscript(name: String) -> String? {
        parameters.last { $0.name == name }?.value
    }

    public var user: String? { self["user"] }
    /// As PostgreSQL: the database defaults to the user name.
    public var database: String? {
        if let db = self["database"], !db.isEmpty { return db }
        return user
    }
    /// Protocol options (`_pq_.` names) this implementation does not know: all of them.
    public var unrecognizedProtocolOptions: [String] {
        parameters.map(\.name).filter { $0.hasPrefix("_pq_.") }
    }

    public func encode(into buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        body.writeInteger(protocolMajor)
        body.writeInteger(protocolMinor)
        for parameter in parameters {
            body.writeCString(parameter.name)
            body.writeCString(parameter.value)
        }
        body.writeInteger(UInt8(0))
        buffer.writeInteger(Int32(4 + body.readableBytes))
        buffer.writeBytes(body.readableBytesView)
    }
}

/// Decodes the first message (src/backend/postmaster/postmaster.c ProcessStartupPacket).
public enum StartupDecoder {
    /// PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the longest packet, not counting its length word.
    public static let maxStartupPacketLength = 10_000
    /// NAMEDATALEN - 1: PostgreSQL truncates the user and database names to this many bytes
    /// before anything looks them up ("This avoids lookup failures when overlength names are
    /// given").
    public static let maxNameBytes = 63

    /// Returns nil (cursor untouched) until the whole packet is there; the length is checked
    /// before anything is read or allocated, and exactly the packet is consumed. As
    /// ProcessStartupPacket: a length outside 8 … 10,004 bytes (length word included) and a
    /// CancelRequest of another length than 16 are errors PostgreSQL only logs (COMMERROR: the
    /// client gets nothing); an SSLRequest or GSSENCRequest is recognised by its code whatever
    /// its length.
    public static func decode(_ buffer: inout ByteBuffer) throws(WireError) -> StartupMessage? {
        guard let rawLength = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        let length = Int(rawLength)
        guard length >= 8 else { throw .startupPacketTooSmall(length) }
        guard length - 4 <= maxStartupPacketLength else { throw .startupPacketTooLarge(length) }
        guard buffer.readableBytes >= length else { return nil }
        var packet = buffer
        packet.moveReaderIndex(forwardBy: 4)
        let code = packet.readInteger(as: UInt32.self)!
        let bodyLength = length - 8
        let message: StartupMessage
        switch code {
        case StartupMessage.sslRequestCode, StartupMessage.gssEncRequestCode:
            message = code == StartupMessage.sslRequestCode ? .sslRequest : .gssEncRequest
        case StartupMessage.cancelRequestCode:
            guard bodyLength == 8 else { throw .invalidCancelRequestLength(length) }
            let processID = packet.readInteger(as: Int32.self)!
            let key = packet.readBytes(length: bodyLength - 4)!
            message = .cancelRequest(processID: processID, secretKey: key)
        default:
            let major = UInt16(code >> 16)
            let minor = UInt16(code & 0xffff)
            guard major == 3 else { throw .unsupportedProtocol(major: major, minor: minor) }
            guard let body = packet.readBytes(length: bodyLength) else { return nil }
            message = .startup(try parseParameters(body, major: major, minor: minor))
        }
        buffer.moveReaderIndex(forwardBy: length)
        return message
    }

    /// At most ``maxNameBytes`` bytes of `name`, cut before a character that would cross the
    /// limit. PostgreSQL cuts the bytes, possibly inside a character; such a name is not valid
    /// UTF-8 and names no role or database of a UTF8 server, and the string here (already
    /// decoded, bytes that are not UTF-8 replaced) stays the same when encoded and read again.
    static func truncatedName(_ name: String) -> String {
        guard name.utf8.count > maxNameBytes else { return name }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in name.unicodeScalars {
            let size = String(scalar).utf8.count
            if bytes + size > maxNameBytes { break }
            bytes += size
            kept.append(scalar)
        }
        return String(kept)
    }

    /// The name/value pairs, read as ProcessStartupPacket reads them: strings end at a NUL or
    /// at the end of the packet (it appends a zero byte), a NUL where a name starts ends the
    /// list, a name whose value would start past the end ends it too, and then the scan must
    /// stand on the packet's last byte — so `user\0bob\0d` is accepted, `d` read as the
    /// terminator. `user` and `database` are cut to 63 bytes.
    private static func parseParameters(_ body: [UInt8], major: UInt16, minor: UInt16) throws(WireError) -> StartupPacket {
        var parameters: [StartupParameter] = []
        func cStringEnd(from start: Int) -> Int { body[start...].firstIndex(of: 0) ?? body.count }
        var offset = 0
        while offset < body.count {
            let nameEnd = cStringEnd(from: offset)
            if nameEnd == offset { break }
            let valueStart = nameEnd + 1
            if valueStart >= body.count { break }
            let valueEnd = cStringEnd(from: valueStart)
            let name = body[offset..<nameEnd]
            var value = String(decoding: body[valueStart..<valueEnd], as: UTF8.self)
            if name.elementsEqual("user".utf8) || name.elementsEqual("database".utf8) { value = Self.truncatedName(value) }
            parameters.append(StartupParameter(name: String(decoding: name, as: UTF8.self), value: value))
            offset = valueEnd + 1
        }
        guard offset == body.count - 1 else {
            throw .invalidStartupPacket("invalid startup packet layout: expected terminator as last byte")
        }
        return StartupPacket(protocolMajor: major, protocolMinor: minor, parameters: parameters)
    }
}
