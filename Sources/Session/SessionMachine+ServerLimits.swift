import Wire

/// Server messages the session holds whole to read them, bounded.
///
/// PostgreSQL limits a message only by its 1 GB allocation limit (pqcomm.c, MaxAllocSize), and
/// an error may quote what the client sent whole: `select repeat('x', 300000000)::int` is
/// answered with 22P02 `invalid input syntax for type integer: "xxx…"`, 300 MB long. Found in
/// review: a read-only session holds every ErrorResponse whole before forwarding it (the gate
/// reads it), three such sessions whose clients did not read took the proxy to 2.5 GB (server
/// read buffer, decoded copy and client send buffer: about three times the message each).
///
/// So a type the session holds (``SessionMachine/init(_:backendProcessID:backendSecretKey:serverParameters:)``
/// lists them per configuration) is held only up to ``Configuration/maxHeldServerBody`` bytes of
/// body; the tracker reports a longer one from its header (``MessageStreamTracker/Step/oversized(_:)``),
/// as it does a read-only client's over-long Query, and:
///
/// - an ErrorResponse or NoticeResponse is cut (``ErrorFields/cut(type:body:bodyLength:utf8:)``):
///   its first `maxHeldServerBody` bytes are held, the client gets a well-formed message with
///   the fields they hold (S, V, C come first in PostgreSQL's order, elog.c
///   send_message_to_frontend) and the cut field's value ending in "... (N bytes cut by
///   Portcullis)", and the rest is dropped as it arrives (``Action/discardFromServer(_:)``);
/// - any other held type is not something PostgreSQL sends that long (CommandComplete tags fit
///   in 64 bytes, ReadyForQuery is one byte, the completions are empty; a ParameterStatus
///   value can be long only for a reported (GUC_REPORT) setting whose value PostgreSQL does not
///   bound: application_name is GUC_IS_NAME, cut to 63 bytes (guc.c), the list of reported
///   settings grows between releases) and cannot be cut without the session misreading it (the
///   tripwire and transaction pooling read the values): the session ends with a FATAL 54000
///   naming it, logged as the reason, and the server connection is not reused.
///
/// Types that are not held (DataRow, CopyData, a NoticeResponse in every configuration today,
/// an ErrorResponse of a read-write session-mode session without audit) stream byte for byte
/// whatever their length, as before.
extension SessionMachine {
    /// 256 kB: what the session holds at most of one server message, so about three times that
    /// per session while its client does not read (server read buffer, the cut copy, the
    /// client's send buffer), the order of `outbound_buffer_limit`'s default (256 kB) that
    /// already bounds what waits for a slow client. PostgreSQL's own texts are short, and it
    /// quotes at most 100 bytes of a COPY line's column in CONTEXT (copyfromparse.c,
    /// MAX_COPY_DATA_DISPLAY); what makes an error longer is an input or an internal query
    /// (dynamic SQL) of the client's own making, quoted whole.
    package static let maxHeldServerBody = 256 * 1024

    /// A held type whose header declares a body over the bound: cut (errors and notices) or
    /// the end of the session.
    mutating func serverOversized(_ frame: MessageFrame, in buffer: ByteBuffer, now: Int64) -> Action {
        let bound = configuration.maxHeldServerBody
        let bodyLength = frame.totalLength - 5
        let error = UInt8(ascii: "E"), notice = UInt8(ascii: "N")
        guard frame.type == error || frame.type == notice else {
            return serverMessageTooLong(frame, reason: "the server sent a \(Self.serverMessageName(frame.type)) of \(bodyLength) bytes, over the \(bound) bytes Portcullis holds of one")
        }
        // Its leading fields: held up to the bound (the tracker reports it again from its
        // header until then), never beyond.
        let held = 5 + bound
        guard buffer.readableBytes >= held else { return .wait }
        let cut: ErrorFields.Cut
        do {
            // Read-only sessions run in UTF8 (the tripwire ends any other); others may use
            // any client encoding, which the session does not follow.
            cut = try ErrorFields.cut(type: frame.type, body: buffer.readableBytesView.dropFirst(5).prefix(bound), bodyLength: bodyLength,
                                      utf8: configuration.readOnly != nil)
        } catch {
            let what = switch error {
            case .endsEarly: "ends its fields before its declared length"
            case .cutInField(let code): "has a \(Character(Unicode.Scalar(code))) field over \(bound) bytes"
            }
            return serverMessageTooLong(frame, reason: "the server sent a \(Self.serverMessageName(frame.type)) of \(bodyLength) bytes that \(what)")
        }
        serverTracker.skipRest(of: frame, consumed: held)
        guard frame.type == error, let replacement = serverErrorReceived(cut.fields, now: now) else {
            return .replaceToClient(consume: held, bytes: cut.message)
        }
        // A stand-in's error whose refusal token was kept: the refusal, as for any other.
        var out = ByteBuffer()
        BackendMessage.errorResponse(replacement).encode(into: &out)
        return .replaceToClient(consume: held, bytes: out)
    }

    /// Fail closed: the session cannot read the message without holding it, nor pass it on
    /// unread. The client is told why (FATAL, as PostgreSQL ends a session); the server
    /// connection, left in the middle of a message, is never reused.
    private mutating func serverMessageTooLong(_ frame: MessageFrame, reason: String) -> Action {
        serverUnusable = true
        return .close(reason: reason, error: .error(sqlState: SQLState.programLimitExceeded,
                                                    message: "terminating connection because \(reason)", severity: "FATAL"))
    }

    /// Names from the protocol chapter "Message Formats" (55.7) for the types a session holds.
    static func serverMessageName(_ type: UInt8) -> String {
        switch type {
        case UInt8(ascii: "E"): "ErrorResponse"
        case UInt8(ascii: "N"): "NoticeResponse"
        case UInt8(ascii: "S"): "ParameterStatus"
        case UInt8(ascii: "C"): "CommandComplete"
        case UInt8(ascii: "Z"): "ReadyForQuery"
        case UInt8(ascii: "G"): "CopyInResponse"
        case UInt8(ascii: "1"): "ParseComplete"
        case UInt8(ascii: "3"): "CloseComplete"
        case UInt8(ascii: "I"): "EmptyQueryResponse"
        case UInt8(ascii: "s"): "PortalSuspended"
        default: "message of type \(type)"
        }
    }
}
