import FuzzSupport
import Wire

/// Type+length framed messages after startup, both directions: FrameDecoder.peekFrame /
/// takePayload, FrontendMessage.decode and its authentication-phase decoders (SASL initial
/// response, SASL response, password), and BackendMessage.decode (AuthenticationRequest,
/// ErrorFields, ...), on a stream that may hold many frames.
///
/// The first input byte picks the maximum message length and a chunk size; the rest is the
/// stream. Properties: a decoded message consumed exactly its frame; it re-encodes to bytes
/// that decode to the same message; feeding the stream in chunks (compacting the buffer in
/// between, as a session does) yields the same frames as feeding it whole.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    guard let control = input.bytes.first else { return 0 }
    let stream = Array(input.bytes.dropFirst())
    let decoder = FrameDecoder(maxMessageLength: control & 0x80 == 0 ? 1 << 20 : 64)
    let chunk = Int(control & 0x0f) + 1
    let whole = frames(stream, decoder: decoder, chunk: Int.max, decodeMessages: true)
    let pieces = frames(stream, decoder: decoder, chunk: chunk, decodeMessages: false)
    fuzzCheck(whole.frames == pieces.frames, "chunked (\(chunk)) frames differ from whole")
    fuzzCheck(whole.error == pieces.error, "chunked (\(chunk)) error differs from whole")
    return 0
}

private struct Frame: Equatable {
    let type: UInt8
    let payload: [UInt8]
}

private func frames(_ stream: [UInt8], decoder: FrameDecoder, chunk: Int,
                    decodeMessages: Bool) -> (frames: [Frame], error: WireError?) {
    var buffer = ByteBuffer()
    var found: [Frame] = []
    var offset = 0
    while offset < stream.count {
        let end = stream.count - offset > chunk ? offset + chunk : stream.count
        buffer.writeBytes(stream[offset..<end])
        offset = end
        while true {
            let frame: MessageFrame
            do {
                guard let peeked = try decoder.peekFrame(in: buffer) else { break }
                frame = peeked
            } catch {
                return (found, error)
            }
            guard buffer.readableBytes >= frame.totalLength else { break }
            if decodeMessages { decodeEveryWay(frame, buffer) }
            let before = buffer.readableBytes
            guard let payload = FrameDecoder.takePayload(frame, from: &buffer) else {
                fuzzCheck(false, "takePayload failed on a complete frame")
                break
            }
            fuzzCheck(before - buffer.readableBytes == frame.totalLength, "takePayload consumed the wrong amount")
            found.append(Frame(type: frame.type, payload: Array(payload.readableBytesView)))
            buffer.discardReadBytes()
        }
    }
    return (found, nil)
}

/// Each decoder gets its own copy of the buffer with the complete frame at the front.
private func decodeEveryWay(_ frame: MessageFrame, _ buffer: ByteBuffer) {
    let start = buffer.readableBytes
    var copy = buffer
    if let message = try? FrontendMessage.decode(frame: frame, from: &copy) {
        fuzzCheck(start - copy.readableBytes == frame.totalLength, "FrontendMessage.decode consumed the wrong amount")
        var encoded = ByteBuffer()
        message.encode(into: &encoded)
        let again = redecode(&encoded) { frame, buffer throws(WireError) in try FrontendMessage.decode(frame: frame, from: &buffer) }
        fuzzCheck(again == message, "frontend \(message) re-decodes as \(String(describing: again))")
    }
    copy = buffer
    if let message = try? BackendMessage.decode(frame: frame, from: &copy) {
        fuzzCheck(start - copy.readableBytes == frame.totalLength, "BackendMessage.decode consumed the wrong amount")
        var encoded = ByteBuffer()
        message.encode(into: &encoded)
        let again = redecode(&encoded) { frame, buffer throws(WireError) in try BackendMessage.decode(frame: frame, from: &buffer) }
        fuzzCheck(again == message, "backend \(message) re-decodes as \(String(describing: again))")
    }
    copy = buffer
    if let (mechanism, data) = try? FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &copy) {
        var encoded = ByteBuffer()
        FrontendMessage.saslInitialResponse(mechanism: mechanism, data: data).encode(into: &encoded)
        let again = redecode(&encoded) { frame, buffer throws(WireError) in
            try FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &buffer)
        }
        fuzzCheck(again?.mechanism == mechanism && again?.data == data, "SASLInitialResponse does not round-trip")
    }
    copy = buffer
    _ = try? FrontendMessage.decodeSASLResponse(frame: frame, from: &copy)
    copy = buffer
    _ = try? FrontendMessage.decodePasswordMessage(frame: frame, from: &copy)
}

/// Decodes the one re-encoded frame in `buffer` (no length limit: it came from our encoder).
private func redecode<T>(_ buffer: inout ByteBuffer,
                         _ decode: (MessageFrame, inout ByteBuffer) throws(WireError) -> T) -> T? {
    guard let frame = try? FrameDecoder(maxMessageLength: Int(Int32.max)).peekFrame(in: buffer) else { return nil }
    let value = try? decode(frame, &buffer)
    fuzzCheck(value == nil || buffer.readableBytes == 0, "re-encoded frame not consumed exactly")
    return value
}
