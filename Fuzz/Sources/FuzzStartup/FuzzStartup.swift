import FuzzSupport
import Wire

/// The first bytes of a connection (StartupDecoder: StartupMessage, SSLRequest,
/// GSSENCRequest, CancelRequest), decoded as ClientStartupMachine does: repeatedly, from a
/// buffer that may hold several packets or a partial one.
///
/// Properties: a packet is consumed exactly (its declared length); nil leaves the cursor
/// where it was; a decoded packet re-encodes to bytes that decode to the same message; the
/// same bytes fed in pieces give the same messages.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStartup(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let whole = decodeAll(input.bytes, chunk: Int.max)
    if let first = input.bytes.first {
        let chunk = Int(first % 16) + 1
        let pieces = decodeAll(input.bytes, chunk: chunk)
        fuzzCheck(pieces.messages == whole.messages, "chunked decode (\(chunk)) differs from whole decode")
        fuzzCheck(pieces.failed == whole.failed, "chunked decode failure differs from whole decode")
    }
    return 0
}

private func decodeAll(_ bytes: [UInt8], chunk: Int) -> (messages: [StartupMessage], failed: Bool) {
    var buffer = ByteBuffer()
    var messages: [StartupMessage] = []
    var offset = 0
    while offset < bytes.count {
        let end = bytes.count - offset > chunk ? offset + chunk : bytes.count
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        while true {
            let before = buffer.readerIndex
            let declared = buffer.getInteger(at: buffer.readerIndex, as: Int32.self)
            let message: StartupMessage?
            do {
                message = try StartupDecoder.decode(&buffer)
            } catch {
                return (messages, true)
            }
            guard let message else {
                fuzzCheck(buffer.readerIndex == before, "nil moved the cursor")
                break
            }
            fuzzCheck(buffer.readerIndex - before == Int(declared ?? -1), "consumed \(buffer.readerIndex - before) of \(String(describing: declared))")
            var encoded = ByteBuffer()
            message.encode(into: &encoded)
            // Lossy UTF-8 repair can grow a packet past the limit; only compare when it fits.
            let again = encoded.readableBytes <= StartupDecoder.maxStartupPacketLength
                ? try? StartupDecoder.decode(&encoded) : message
            fuzzCheck(again == message, "re-encoded \(message) decodes to \(String(describing: again))")
            messages.append(message)
            buffer.discardReadBytes()
        }
    }
    return (messages, false)
}
