import Wire

/// Walks a byte stream of type+length framed messages (protocol 3.0) so bytes can be forwarded
/// as they arrive, without buffering whole messages and without re-encoding them. Only the
/// messages a caller wants to see whole are held back until complete.
///
/// Protocol 55.7: every message after startup is `Byte1 type, Int32 length (self-inclusive), payload`.
public struct MessageStreamTracker: Sendable {
    public enum Step: Equatable, Sendable {
        /// Forward this many bytes from the front of the buffer.
        case forward(Int)
        /// A message the caller asked to inspect is complete at the front of the buffer.
        case inspect(MessageFrame)
        /// More bytes are needed.
        case needMoreBytes
        /// An inspected message of a type limited by `maxHeldBody` declares a longer body: known
        /// from its header alone, never held whole. The caller answers it and then calls
        /// ``skipRest(of:consumed:)``.
        case oversized(MessageFrame)
        /// Drop this many bytes from the front of the buffer: the rest of a message being skipped.
        case skip(Int)
    }

    /// Message types a client may send after login (postgres.c SocketBackend, PostgreSQL 15):
    /// Query, FunctionCall, Terminate, Bind, Close, Describe, Execute, Flush, Parse, Sync,
    /// CopyData, CopyDone, CopyFail.
    public static let frontendTypes: Set<UInt8> = Set("QFXBCDEHPSdcf".utf8)

    private let decoder: FrameDecoder
    /// Which types are held whole, valid, or forwarded in runs (``MessageTypeTables``).
    private let tables: MessageTypeTables
    /// Bytes of the current message still to be forwarded (0 = at a message boundary).
    private var remainingInMessage = 0
    /// Bytes of the current message still to be dropped (``Step/skip(_:)``).
    private var remainingToSkip = 0
    /// Types held whole only up to ``maxHeldBody`` bytes of body.
    private let limitedTypes: Set<UInt8>
    private let maxHeldBody: Int
    public private(set) var lastMessageType: UInt8 = 0

    /// `validTypes`: the types the stream may carry (`frontendTypes` for a client); nil = any.
    /// `runs`: types forwarded in runs of complete messages of the same type (never one that
    /// is inspected, nor with `validTypes`, whose check is per message).
    /// `limitedTypes`/`maxHeldBody`: inspected types whose messages are reported as
    /// ``Step/oversized(_:)`` from their header when the body is longer (a read-only session's
    /// Query and Parse over `readonly_max_statement_size`: refused without buffering up to
    /// `max_message_size` first).
    public init(maxMessageLength: Int, inspecting types: Set<UInt8>, validTypes: Set<UInt8>? = nil, runs: Set<UInt8> = [],
                limitedTypes: Set<UInt8> = [], maxHeldBody: Int = .max) {
        decoder = FrameDecoder(maxMessageLength: maxMessageLength)
        tables = MessageTypeTables.shared(inspecting: types, validTypes: validTypes, runs: runs)
        self.limitedTypes = limitedTypes
        self.maxHeldBody = maxHeldBody
    }

    public var isAtMessageBoundary: Bool { remainingInMessage == 0 && remainingToSkip == 0 }

    /// The caller answered an ``Step/oversized(_:)`` message and consumed `consumed` bytes of
    /// it (what had arrived, at most the whole); the rest is dropped as it arrives.
    public mutating func skipRest(of frame: MessageFrame, consumed: Int) {
        remainingToSkip = max(0, frame.totalLength - consumed)
    }

    /// Decides what to do with the bytes at the front of `buffer`. The caller must then forward
    /// (or consume) exactly what `.forward` said, or handle and consume the inspected frame.
    public mutating func nextStep(in buffer: ByteBuffer) throws(WireError) -> Step {
        let available = buffer.readableBytes
        if remainingToSkip > 0 {
            guard available > 0 else { return .needMoreBytes }
            let n = min(remainingToSkip, available)
            remainingToSkip -= n
            return .skip(n)
        }
        if remainingInMessage > 0 {
            guard available > 0 else { return .needMoreBytes }
            let n = min(remainingInMessage, available)
            remainingInMessage -= n
            return .forward(n)
        }
        // As PostgreSQL: an unknown type is a FATAL "invalid frontend message type N" (08P01)
        // as soon as its first byte is read, without waiting for the length it declares.
        if let validTypes = tables.valid, let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), !validTypes[type] {
            throw .unknownMessageType(type)
        }
        guard let frame = try decoder.peekFrame(in: buffer) else { return .needMoreBytes }
        lastMessageType = frame.type
        if tables.inspected[frame.type] {
            if frame.totalLength - 5 > maxHeldBody && limitedTypes.contains(frame.type) { return .oversized(frame) }
            return available >= frame.totalLength ? .inspect(frame) : .needMoreBytes
        }
        let n = min(frame.totalLength, available)
        remainingInMessage = frame.totalLength - n
        if remainingInMessage == 0 && tables.runs[frame.type] {
            return .forward(n + completeRun(of: frame.type, in: buffer, from: buffer.readerIndex + n, available: available - n))
        }
        return .forward(n)
    }

    /// Bytes of the complete messages of `type` that follow at `start`, up to the first other
    /// type, incomplete message or invalid length (which the next step then handles as usual:
    /// forwarded in part, inspected, or refused).
    private func completeRun(of type: UInt8, in buffer: ByteBuffer, from start: Int, available: Int) -> Int {
        var total = 0
        while available - total >= 5,
              buffer.getInteger(at: start + total, as: UInt8.self) == type,
              let rawLength = buffer.getInteger(at: start + total + 1, as: Int32.self),
              rawLength >= 4, Int(rawLength) <= decoder.maxMessageLength,
              available - total >= Int(rawLength) + 1 {
            total += Int(rawLength) + 1
        }
        return total
    }
}
