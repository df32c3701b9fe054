/// The header of a type+length framed message (55.7: Byte1 type, Int32 self-inclusive length).
public struct MessageFrame: Equatable, Sendable {
    public let type: UInt8
    /// The Int32 length field: the length of the payload plus the field itself.
    public let length: Int
    public var totalLength: Int { length + 1 }
    public var payloadLength: Int { length - 4 }

    public init(type: UInt8, length: Int) {
        self.type = type
        self.length = length
    }
}

public struct FrameDecoder: Sendable {
    public let maxMessageLength: Int

    public init(maxMessageLength: Int) {
        self.maxMessageLength = maxMessageLength
    }

    /// The next frame's header, without consuming anything; nil until 5 bytes are there.
    /// Lengths are checked here, before anyone allocates for the payload.
    public func peekFrame(in buffer: ByteBuffer) throws(WireError) -> MessageFrame? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let rawLength = buffer.getInteger(at: buffer.readerIndex + 1, as: Int32.self) else { return nil }
        let length = Int(rawLength)
        guard length >= 4 else { throw .invalidLength(type: type, length: length) }
        guard length <= maxMessageLength else { throw .messageTooLarge(type: type, length: length) }
        return MessageFrame(type: type, length: length)
    }

    /// The payload of a complete frame at the front of `buffer`, consuming the whole frame.
    public static func takePayload(_ frame: MessageFrame, from buffer: inout ByteBuffer) -> ByteBuffer? {
        guard buffer.readableBytes >= frame.totalLength else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        return buffer.readSlice(length: frame.payloadLength)
    }
}

/// Reading helpers for one message's payload that fail with the message type in the error.
struct PayloadReader {
    var buffer: ByteBuffer
    let type: UInt8

    mutating func int32() throws(WireError) -> Int32 {
        guard let v = buffer.readInteger(as: Int32.self) else { throw .malformedMessage(type: type, reason: "message too short") }
        return v
    }
    mutating func int16() throws(WireError) -> Int16 {
        guard let v = buffer.readInteger(as: Int16.self) else { throw .malformedMessage(type: type, reason: "message too short") }
        return v
    }
    mutating func byte() throws(WireError) -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw .malformedMessage(type: type, reason: "message too short") }
        return v
    }
    mutating func string() throws(WireError) -> String {
        guard let s = buffer.readCString() else { throw .malformedMessage(type: type, reason: "missing string terminator") }
        return s
    }
    /// A string's bytes as sent, without its NUL (not decoded: names and texts are in the
    /// client's encoding, which need not be UTF-8).
    mutating func cStringBytes() throws(WireError) -> [UInt8] {
        guard let bytes = buffer.readCStringBytes() else { throw .malformedMessage(type: type, reason: "missing string terminator") }
        return bytes
    }
    mutating func bytes(_ n: Int) throws(WireError) -> [UInt8] {
        guard n >= 0, let b = buffer.readBytes(length: n) else { throw .malformedMessage(type: type, reason: "message too short") }
        return b
    }
    mutating func rest() -> [UInt8] { buffer.readBytes(length: buffer.readableBytes) ?? [] }
    /// Each decoder must consume exactly the payload.
    func finish() throws(WireError) {
        guard buffer.readableBytes == 0 else { throw .malformedMessage(type: type, reason: "\(buffer.readableBytes) trailing bytes") }
    }
}
