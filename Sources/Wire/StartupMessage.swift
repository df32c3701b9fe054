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
    /// PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
    public static let maxStartupPacketLength = 10_000
    /// CancelRequest in protocol 3.2 carries up to 256 bytes of secret key.
    static let maxCancelKeyLength = 256

    /// Returns nil (cursor untouched) until the whole packet is there; the length is checked
    /// before anything is read or allocated, and exactly the packet is consumed.
    public static func decode(_ buffer: inout ByteBuffer) throws(WireError) -> StartupMessage? {
        guard let rawLength = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        let length = Int(rawLength)
        guard length >= 8 else { throw .startupPacketTooSmall(length) }
        guard length <= maxStartupPacketLength else { throw .startupPacketTooLarge(length) }
        guard buffer.readableBytes >= length else { return nil }
        var packet = buffer
        packet.moveReaderIndex(forwardBy: 4)
        let code = packet.readInteger(as: UInt32.self)!
        let bodyLength = length - 8
        let message: StartupMessage
        switch code {
        case StartupMessage.sslRequestCode, StartupMessage.gssEncRequestCode:
            guard bodyLength == 0 else { throw .invalidStartupPacket("invalid length of startup packet") }
            message = code == StartupMessage.sslRequestCode ? .sslRequest : .gssEncRequest
        case StartupMessage.cancelRequestCode:
            guard bodyLength >= 8, bodyLength - 4 <= maxCancelKeyLength else {
                throw .invalidStartupPacket("invalid length of cancel request packet")
            }
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

    private static func parseParameters(_ body: [UInt8], major: UInt16, minor: UInt16) throws(WireError) -> StartupPacket {
        // The list is name\0value\0 pairs ended by one more \0, which must be the last byte.
        guard body.last == 0 else {
            throw .invalidStartupPacket("invalid startup packet layout: expected terminator as last byte")
        }
        var parameters: [StartupParameter] = []
        var index = 0
        func cString() -> String? {
            guard let nul = body[index...].firstIndex(of: 0) else { return nil }
            let s = String(decoding: body[index..<nul], as: UTF8.self)
            index = nul + 1
            return s
        }
        let layoutError = WireError.invalidStartupPacket("invalid startup packet layout: expected terminator as last byte")
        while true {
            guard index < body.count else { throw layoutError }
            if body[index] == 0 {
                guard index == body.count - 1 else { throw layoutError }
                break
            }
            guard let name = cString(), let value = cString() else { throw layoutError }
            parameters.append(StartupParameter(name: name, value: value))
        }
        return StartupPacket(protocolMajor: major, protocolMinor: minor, parameters: parameters)
    }
}
