import Wire

extension ByteBuffer {
    /// The readable bytes of both, in order (for small control-message batches only).
    static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var out = lhs
        out.writeBytes(rhs.readableBytesView)
        return out
    }
}
