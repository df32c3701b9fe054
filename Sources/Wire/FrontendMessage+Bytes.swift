/// Names and statement texts as the bytes the client sent.
///
/// ``FrontendMessage/decode(frame:from:)`` reads every string as UTF-8 into a `String`, which
/// replaces any other byte with U+FFFD. Names and texts are in the session's
/// `client_encoding`, which need not be UTF-8 (a read-write identity may use LATIN1, EUC_JP,
/// …: postgres.c reads them with pq_getmsgstring, which converts from the client encoding), so
/// whatever is forwarded, kept or sent again must be these bytes, never a `String` encoded
/// again (found in review: a named Parse of LATIN1 `'caf\xe9'` re-encoded from its decoded
/// `String` reached the server as `'cafï¿½'`, and the LATIN1 names `\xff` and `\xfe` became
/// one name).
extension FrontendMessage {
    /// A Parse ('P'): statement name, text, declared parameter types (55.7 Parse).
    public struct RawParse: Equatable, Sendable {
        public var name: [UInt8]
        public var query: [UInt8]
        public var parameterTypes: [Int32]

        public init(name: [UInt8], query: [UInt8], parameterTypes: [Int32]) {
            self.name = name
            self.query = query
            self.parameterTypes = parameterTypes
        }

        /// Decodes one complete Parse frame at the front of `buffer`, consuming it. Accepts
        /// exactly what ``FrontendMessage/decode(frame:from:)`` accepts, so ``encode(into:)``
        /// gives back the frame's own bytes.
        public static func decode(frame: MessageFrame, from buffer: inout ByteBuffer) throws(WireError) -> RawParse {
            guard frame.type == UInt8(ascii: "P") else { throw .unknownMessageType(frame.type) }
            guard let payload = FrameDecoder.takePayload(frame, from: &buffer) else {
                throw .malformedMessage(type: frame.type, reason: "incomplete message")
            }
            var r = PayloadReader(buffer: payload, type: frame.type)
            let name = try r.cStringBytes()
            let query = try r.cStringBytes()
            let count = Int(UInt16(bitPattern: try r.int16()))
            var types: [Int32] = []
            types.reserveCapacity(count)
            for _ in 0..<count { types.append(try r.int32()) }
            try r.finish()
            return RawParse(name: name, query: query, parameterTypes: types)
        }

        public func encode(into buffer: inout ByteBuffer) {
            buffer.writeInteger(UInt8(ascii: "P"))
            buffer.writeInteger(Int32(4 + name.count + 1 + query.count + 1 + 2 + 4 * parameterTypes.count))
            buffer.writeBytes(name)
            buffer.writeInteger(UInt8(0))
            buffer.writeBytes(query)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt16(clamping: parameterTypes.count))
            for type in parameterTypes { buffer.writeInteger(type) }
        }
    }

    /// A Close ('C') of the statement or portal with this name, byte for byte.
    public static func encodeClose(_ target: DescribeTarget, name: some Collection<UInt8>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "C"))
        buffer.writeInteger(Int32(4 + 1 + name.count + 1))
        buffer.writeInteger(target.rawValue)
        buffer.writeBytes(name)
        buffer.writeInteger(UInt8(0))
    }
}
