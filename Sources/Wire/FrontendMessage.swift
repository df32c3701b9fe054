/// Messages a client sends after startup (PostgreSQL docs 55.7). 'p' is decoded only through
/// the authentication helpers below, because its meaning depends on the exchange in progress.
public enum FrontendMessage: Equatable, Sendable {
    case query(String)                                              // 'Q'
    case parse(name: String, query: String, parameterTypes: [Int32]) // 'P'
    case bind(Bind)                                                 // 'B'
    case execute(portal: String, maxRows: Int32)                    // 'E'
    case describe(DescribeTarget, name: String)                     // 'D'
    case close(DescribeTarget, name: String)                        // 'C'
    case sync                                                       // 'S'
    case flush                                                      // 'H'
    case terminate                                                  // 'X'
    case copyData([UInt8])                                          // 'd'
    case copyDone                                                   // 'c'
    case copyFail(String)                                           // 'f'
    case functionCall(FunctionCall)                                 // 'F'
    case passwordMessage(String)                                    // 'p'
    case saslInitialResponse(mechanism: String, data: [UInt8]?)     // 'p'
    case saslResponse([UInt8])                                      // 'p'

    public enum DescribeTarget: UInt8, Equatable, Sendable {
        case statement = 83 // 'S'
        case portal = 80    // 'P'
    }

    public struct Bind: Equatable, Sendable {
        public var portal: String
        public var statement: String
        public var parameterFormats: [Int16]
        public var parameters: [[UInt8]?]
        public var resultFormats: [Int16]

        public init(portal: String, statement: String, parameterFormats: [Int16], parameters: [[UInt8]?], resultFormats: [Int16]) {
            self.portal = portal
            self.statement = statement
            self.parameterFormats = parameterFormats
            self.parameters = parameters
            self.resultFormats = resultFormats
        }
    }

    public struct FunctionCall: Equatable, Sendable {
        public var functionOID: Int32
        public var argumentFormats: [Int16]
        public var arguments: [[UInt8]?]
        public var resultFormat: Int16

        public init(functionOID: Int32, argumentFormats: [Int16], arguments: [[UInt8]?], resultFormat: Int16) {
            self.functionOID = functionOID
            self.argumentFormats = argumentFormats
            self.arguments = arguments
            self.resultFormat = resultFormat
        }
    }

    public var typeByte: UInt8 {
        switch self {
        case .query: UInt8(ascii: "Q")
        case .parse: UInt8(ascii: "P")
        case .bind: UInt8(ascii: "B")
        case .execute: UInt8(ascii: "E")
        case .describe: UInt8(ascii: "D")
        case .close: UInt8(ascii: "C")
        case .sync: UInt8(ascii: "S")
        case .flush: UInt8(ascii: "H")
        case .terminate: UInt8(ascii: "X")
        case .copyData: UInt8(ascii: "d")
        case .copyDone: UInt8(ascii: "c")
        case .copyFail: UInt8(ascii: "f")
        case .functionCall: UInt8(ascii: "F")
        case .passwordMessage, .saslInitialResponse, .saslResponse: UInt8(ascii: "p")
        }
    }

    /// Decodes one complete non-authentication frame at the front of `buffer`, consuming it.
    public static func decode(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> FrontendMessage {
        guard let payload = FrameDecoder.takePayload(frame, from: &buffer) else {
            throw .malformedMessage(type: frame.type, reason: "incomplete message")
        }
        var r = PayloadReader(buffer: payload, type: frame.type)
        let message: FrontendMessage
        switch frame.type {
        case UInt8(ascii: "Q"): message = .query(try r.string())
        case UInt8(ascii: "P"):
            let name = try r.string()
            let query = try r.string()
            let count = try Self.count(&r)
            var types: [Int32] = []
            for _ in 0..<count { types.append(try r.int32()) }
            message = .parse(name: name, query: query, parameterTypes: types)
        case UInt8(ascii: "B"):
            let portal = try r.string()
            let statement = try r.string()
            let formats = try int16List(&r)
            let count = try Self.count(&r)
            var values: [[UInt8]?] = []
            for _ in 0..<count { values.append(try value(&r)) }
            message = .bind(Bind(portal: portal, statement: statement, parameterFormats: formats, parameters: values, resultFormats: try int16List(&r)))
        case UInt8(ascii: "E"): message = .execute(portal: try r.string(), maxRows: try r.int32())
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            guard let target = DescribeTarget(rawValue: try r.byte()) else {
                throw .malformedMessage(type: frame.type, reason: "invalid target")
            }
            let name = try r.string()
            message = frame.type == UInt8(ascii: "D") ? .describe(target, name: name) : .close(target, name: name)
        case UInt8(ascii: "S"): message = .sync
        case UInt8(ascii: "H"): message = .flush
        case UInt8(ascii: "X"): message = .terminate
        case UInt8(ascii: "d"): message = .copyData(r.rest())
        case UInt8(ascii: "c"): message = .copyDone
        case UInt8(ascii: "f"): message = .copyFail(try r.string())
        case UInt8(ascii: "F"):
            let oid = try r.int32()
            let formats = try int16List(&r)
            let count = try Self.count(&r)
            var args: [[UInt8]?] = []
            for _ in 0..<count { args.append(try value(&r)) }
            message = .functionCall(FunctionCall(functionOID: oid, argumentFormats: formats, arguments: args, resultFormat: try r.int16()))
        default:
            throw .unknownMessageType(frame.type)
        }
        try r.finish()
        return message
    }

    /// Counts of parameters, formats and arguments are unsigned 16-bit (postgres.c reads
    /// them with pq_getmsgint(msg, 2)): up to 65535, as PostgreSQL accepts.
    private static func count(_ r: inout PayloadReader) throws(WireError) -> Int {
        Int(UInt16(bitPattern: try r.int16()))
    }

    private static func int16List(_ r: inout PayloadReader) throws(WireError) -> [Int16] {
        let count = try count(&r)
        var list: [Int16] = []
        for _ in 0..<count { list.append(try r.int16()) }
        return list
    }

    private static func value(_ r: inout PayloadReader) throws(WireError) -> [UInt8]? {
        let length = try r.int32()
        if length == -1 { return nil }
        guard length >= 0 else { throw .malformedMessage(type: r.type, reason: "invalid value length") }
        return try r.bytes(Int(length))
    }

    // MARK: Authentication ('p')

    /// SASLInitialResponse: mechanism name, then Int32 length (-1 = no initial response) and data.
    public static func decodeSASLInitialResponse(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> (mechanism: String, data: [UInt8]?) {
        var r = try authenticationReader(frame: frame, from: &buffer)
        let mechanism = try r.string()
        let length = try r.int32()
        let data: [UInt8]? = length == -1 ? nil : try r.bytes(Int(length))
        try r.finish()
        return (mechanism, data)
    }

    public static func decodeSASLResponse(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> [UInt8] {
        var r = try authenticationReader(frame: frame, from: &buffer)
        return r.rest()
    }

    public static func decodePasswordMessage(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> String {
        var r = try authenticationReader(frame: frame, from: &buffer)
        let password = try r.string()
        try r.finish()
        return password
    }

    private static func authenticationReader(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> PayloadReader {
        guard frame.type == UInt8(ascii: "p") else { throw .unknownMessageType(frame.type) }
        guard let payload = FrameDecoder.takePayload(frame, from: &buffer) else {
            throw .malformedMessage(type: frame.type, reason: "incomplete message")
        }
        return PayloadReader(buffer: payload, type: frame.type)
    }

    // MARK: Encoding

    public func encode(into buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        switch self {
        case .query(let sql): body.writeCString(sql)
        case .parse(let name, let query, let types):
            body.writeCString(name)
            body.writeCString(query)
            body.writeInteger(UInt16(clamping: types.count))
            for t in types { body.writeInteger(t) }
        case .bind(let b):
            body.writeCString(b.portal)
            body.writeCString(b.statement)
            body.writeInteger(UInt16(clamping: b.parameterFormats.count))
            for f in b.parameterFormats { body.writeInteger(f) }
            body.writeInteger(UInt16(clamping: b.parameters.count))
            for p in b.parameters { Self.writeValue(p, into: &body) }
            body.writeInteger(UInt16(clamping: b.resultFormats.count))
            for f in b.resultFormats { body.writeInteger(f) }
        case .execute(let portal, let maxRows):
            body.writeCString(portal)
            body.writeInteger(maxRows)
        case .describe(let target, let name), .close(let target, let name):
            body.writeInteger(target.rawValue)
            body.writeCString(name)
        case .sync, .flush, .terminate, .copyDone:
            break
        case .copyData(let data): body.writeBytes(data)
        case .copyFail(let message): body.writeCString(message)
        case .functionCall(let f):
            body.writeInteger(f.functionOID)
            body.writeInteger(UInt16(clamping: f.argumentFormats.count))
            for a in f.argumentFormats { body.writeInteger(a) }
            body.writeInteger(UInt16(clamping: f.arguments.count))
            for a in f.arguments { Self.writeValue(a, into: &body) }
            body.writeInteger(f.resultFormat)
        case .passwordMessage(let password): body.writeCString(password)
        case .saslInitialResponse(let mechanism, let data):
            body.writeCString(mechanism)
            if let data {
                body.writeInteger(Int32(data.count))
                body.writeBytes(data)
            } else {
                body.writeInteger(Int32(-1))
            }
        case .saslResponse(let data): body.writeBytes(data)
        }
        buffer.writeInteger(typeByte)
        buffer.writeInteger(Int32(4 + body.readableBytes))
        buffer.writeBytes(body.readableBytesView)
    }

    private static func writeValue(_ value: [UInt8]?, into body: inout ByteBuffer) {
        if let value {
            body.writeInteger(Int32(value.count))
            body.writeBytes(value)
        } else {
            body.writeInteger(Int32(-1))
        }
    }
}
