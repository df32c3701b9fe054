import CPortcullisShims

/// Streaming zstd (libzstd's ZSTD_compressStream2 / ZSTD_decompressStream): bytes in, bytes out,
/// bounded memory whatever the input size.
public final class ZstdCompressor {
    private let context: OpaquePointer
    private var output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

    /// `level`: 1–19 (zstd's scale, 3 is its default); `workers`: zstd's own threads (0 = none).
    public init(level: Int32 = 3, workers: Int32 = 0) throws(BackupFormatError) {
        guard let context = ZSTD_createCCtx() else { throw BackupFormatError("zstd: out of memory") }
        self.context = context
        try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
        try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
        if workers > 0 { try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, workers)) }
    }

    deinit { ZSTD_freeCCtx(context) }

    public func update(_ bytes: [UInt8]) throws(BackupFormatError) -> [UInt8] {
        try run(bytes, ZSTD_e_continue)
    }

    public func finish() throws(BackupFormatError) -> [UInt8] {
        try run([], ZSTD_e_end)
    }

    private func run(_ bytes: [UInt8], _ directive: ZSTD_EndDirective) throws(BackupFormatError) -> [UInt8] {
        var produced: [UInt8] = []
        var failure: BackupFormatError?
        bytes.withUnsafeBytes { source in
            var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let (remaining, chunk): (Int, [UInt8]) = output.withUnsafeMutableBytes { target in
                    var out = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
                    let r = ZSTD_compressStream2(context, &out, &input, directive)
                    return (r, Array(target.prefix(out.pos)))
                }
                if ZSTD_isError(remaining) != 0 {
                    failure = BackupFormatError("zstd: \(String(cString: ZSTD_getErrorName(remaining)))")
                    return
                }
                produced += chunk
                let done = directive == ZSTD_e_end ? remaining == 0 : input.pos == input.size
                if done { return }
            }
        }
        if let failure { throw failure }
        return produced
    }

    static func check(_ code: Int) throws(BackupFormatError) {
        if ZSTD_isError(code) != 0 { throw BackupFormatError("zstd: \(String(cString: ZSTD_getErrorName(code)))") }
    }
}

public final class ZstdDecompressor {
    private let context: OpaquePointer
    private var output = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    /// 0 once a frame ended exactly: anything else at the end means the stream was cut.
    private var lastHint = 0
    private var sawInput = false

    public init() throws(BackupFormatError) {
        guard let context = ZSTD_createDCtx() else { throw BackupFormatError("zstd: out of memory") }
        self.context = context
        // A decompression window bound: a hostile frame cannot ask for gigabytes.
        try ZstdCompressor.check(ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, 27))
    }

    deinit { ZSTD_freeDCtx(context) }

    public func update(_ bytes: [UInt8]) throws(BackupFormatError) -> [UInt8] {
        if bytes.isEmpty { return [] }
        sawInput = true
        var produced: [UInt8] = []
        var failure: BackupFormatError?
        bytes.withUnsafeBytes { source in
            var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let (hint, chunk, full): (Int, [UInt8], Bool) = output.withUnsafeMutableBytes { target in
                    var out = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
                    let r = ZSTD_decompressStream(context, &out, &input)
                    return (r, Array(target.prefix(out.pos)), out.pos == out.size)
                }
                if ZSTD_isError(hint) != 0 {
                    failure = BackupFormatError("zstd: \(String(cString: ZSTD_getErrorName(hint)))")
                    return
                }
                produced += chunk
                lastHint = hint
                if input.pos == input.size && !full { return }
            }
        }
        if let failure { throw failure }
        return produced
    }

    public func finish() throws(BackupFormatError) {
        guard sawInput, lastHint == 0 else { throw BackupFormatError("zstd: the compressed stream is incomplete") }
    }
}
