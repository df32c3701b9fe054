/// Messages a server sends (PostgreSQL docs 55.7). The same type byte means something else
/// from the frontend, hence a separate enum. Messages the proxy only relays keep their payload raw.
public enum BackendMessage: Equatable, Sendable {
    case authentication(AuthenticationRequest)                      // 'R'
    case parameterStatus(name: String, value: String)               // 'S'
    case backendKeyData(processID: Int32, secretKey: [UInt8])       // 'K'
    case readyForQuery(TransactionStatus)                           // 'Z'
    case errorResponse(ErrorFields)                                 // 'E'
    case noticeResponse(ErrorFields)                                // 'N'
    case negotiateProtocolVersion(newestMinorVersion: Int32, unrecognizedOptions: [String]) // 'v'
    case commandComplete(tag: String)                               // 'C'
    case emptyQueryResponse                                         // 'I'
    case parseComplete                                              // '1'
    case bindComplete                                               // '2'
    case closeComplete                                              // '3'
    case noData                                                     // 'n'
    case portalSuspended                                            // 's'
    case notificationResponse(processID: Int32, channel: String, payload: String) // 'A'
    case copyDone                                                   // 'c'
    /// RowDescription 'T', DataRow 'D', ParameterDescription 't', CopyInResponse 'G',
    /// CopyOutResponse 'H', CopyBothResponse 'W', CopyData 'd', FunctionCallResponse 'V':
    /// relayed as they are.
    case raw(type: UInt8, payload: [UInt8])

    public var typeByte: UInt8 {
        switch self {
        case .authentication: UInt8(ascii: "R")
        case .parameterStatus: UInt8(ascii: "S")
        case .backendKeyData: UInt8(ascii: "K")
        case .readyForQuery: UInt8(ascii: "Z")
        case .errorResponse: UInt8(ascii: "E")
        case .noticeResponse: UInt8(ascii: "N")
        case .negotiateProtocolVersion: UInt8(ascii: "v")
        case .commandComplete: UInt8(ascii: "C")
        case .emptyQueryResponse: UInt8(ascii: "I")
        case .parseComplete: UInt8(ascii: "1")
        case .bindComplete: UInt8(ascii: "2")
        case .closeComplete: UInt8(ascii: "3")
        case .noData: UInt8(ascii: "n")
        case .portalSuspended: UInt8(ascii: "s")
        case .notificationResponse: UInt8(ascii: "A")
        case .copyDone: UInt8(ascii: "c")
        case .raw(let type, _): type
        }
    }

    static let rawTypes: Set<UInt8> = Set("TDtGHWdV".utf8)

    /// Decodes one complete frame at the front of `buffer` and consumes it.
    public static func decode(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> BackendMessage {
        guard let payload = FrameDecoder.takePayload(frame, from: &buffer) else {
            throw .malformedMessage(type: frame.type, reason: "incomplete message")
        }
        var r = PayloadReader(buffer: payload, type: frame.type)
        let message: BackendMessage
        switch frame.type {
        case UInt8(ascii: "R"):
            message = .authentication(try AuthenticationRequest.decode(&r))
        case UInt8(ascii: "S"):
            message = .parameterStatus(name: try r.string(), value: try r.string())
        case UInt8(ascii: "K"):
            let pid = try r.int32()
            let key = r.rest()
            guard (4...256).contains(key.count) else { throw .malformedMessage(type: frame.type, reason: "invalid secret key length") }
            message = .backendKeyData(processID: pid, secretKey: key)
        case UInt8(ascii: "Z"):
            guard let status = TransactionStatus(rawValue: try r.byte()) else {
                throw .malformedMessage(type: frame.type, reason: "invalid transaction status")
            }
            message = .readyForQuery(status)
        case UInt8(ascii: "E"):
            return .errorResponse(try ErrorFields.decode(&r))
        case UInt8(ascii: "N"):
            return .noticeResponse(try ErrorFields.decode(&r))
        case UInt8(ascii: "v"):
            let minor = try r.int32()
            let count = try r.int32()
            guard count >= 0 && Int(count) <= payload.readableBytes else { throw .malformedMessage(type: frame.type, reason: "invalid option count") }
            var options: [String] = []
            for _ in 0..<count { options.append(try r.string()) }
            message = .negotiateProtocolVersion(newestMinorVersion: minor, unrecognizedOptions: options)
        case UInt8(ascii: "C"):
            message = .commandComplete(tag: try r.string())
        case UInt8(ascii: "I"): message = .emptyQueryResponse
        case UInt8(ascii: "1"): message = .parseComplete
        case UInt8(ascii: "2"): message = .bindComplete
        case UInt8(ascii: "3"): message = .closeComplete
        case UInt8(ascii: "n"): message = .noData
        case UInt8(ascii: "s"): message = .portalSuspended
        case UInt8(ascii: "c"): message = .copyDone
        case UInt8(ascii: "A"):
            message = .notificationResponse(processID: try r.int32(), channel: try r.string(), payload: try r.string())
        default:
            guard rawTypes.contains(frame.type) else { throw .unknownMessageType(frame.type) }
            return .raw(type: frame.type, payload: r.rest())
        }
        try r.finish()
        return message
    }

    public func encode(into buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        switch self {
        case .authentication(let request): request.encodePayload(into: &body)
        case .parameterStatus(let name, let value):
            body.writeCString(name)
            body.writeCString(value)
        case .backendKeyData(let processID, let secretKey):
            body.writeInteger(processID)
            body.writeBytes(secretKey)
        case .readyForQuery(let status): body.writeInteger(status.rawValue)
        case .errorResponse(let fields), .noticeResponse(let fields): fields.encodePayload(into: &body)
        case .negotiateProtocolVersion(let minor, let options):
            body.writeInteger(minor)
            body.writeInteger(Int32(options.count))
            for option in options { body.writeCString(option) }
        case .commandComplete(let tag): body.writeCString(tag)
        case .emptyQueryResponse, .parseComplete, .bindComplete, .closeComplete, .noData, .portalSuspended, .copyDone:
            break
        case .notificationResponse(let processID, let channel, let payload):
            body.writeInteger(processID)
            body.writeCString(channel)
            body.writeCString(payload)
        case .raw(_, let payload): body.writeBytes(payload)
        }
        buffer.writeInteger(typeByte)
        buffer.writeInteger(Int32(4 + body.readableBytes))
        buffer.writeBytes(body.readableBytesView)
    }
}

/// ReadyForQuery's transaction status indicator.
public enum TransactionStatus: UInt8, Equatable, Sendable {
    case idle = 73          // 'I'
    case inTransaction = 84 // 'T'
    case failed = 69        // 'E'
}

/// AuthenticationXXX requests ('R', 55.7), by their Int32 code.
public enum AuthenticationRequest: Equatable, Sendable {
    case ok                                 // 0
    case cleartextPassword                  // 3
    case md5Password(salt: [UInt8])         // 5
    case sasl(mechanisms: [String])         // 10
    case saslContinue([UInt8])              // 11
    case saslFinal([UInt8])                 // 12
    /// Kerberos (2), SCM (6), GSS (7, 8), SSPI (9): not spoken by this proxy.
    case unsupported(Int32)

    static func decode(_ r: inout PayloadReader) throws(WireError) -> AuthenticationRequest {
        let code = try r.int32()
        switch code {
        case 0: return .ok
        case 3: return .cleartextPassword
        case 5: return .md5Password(salt: try r.bytes(4))
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try r.string()
                if name.isEmpty { break }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(r.rest())
        case 12: return .saslFinal(r.rest())
        default:
            _ = r.rest()
            return .unsupported(code)
        }
    }

    func encodePayload(into body: inout ByteBuffer) {
        switch self {
        case .ok: body.writeInteger(Int32(0))
        case .cleartextPassword: body.writeInteger(Int32(3))
        case .md5Password(let salt):
            body.writeInteger(Int32(5))
            body.writeBytes(salt)
        case .sasl(let mechanisms):
            body.writeInteger(Int32(10))
            for m in mechanisms { body.writeCString(m) }
            body.writeInteger(UInt8(0))
        case .saslContinue(let data):
            body.writeInteger(Int32(11))
            body.writeBytes(data)
        case .saslFinal(let data):
            body.writeInteger(Int32(12))
            body.writeBytes(data)
        case .unsupported(let code):
            body.writeInteger(code)
        }
    }
}
