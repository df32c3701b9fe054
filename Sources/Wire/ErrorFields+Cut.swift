/// An ErrorResponse or NoticeResponse too long to hold, rebuilt from its first bytes.
///
/// PostgreSQL bounds a message only by its 1 GB allocation limit, and an error can quote what
/// the client sent whole (`select repeat('x', 300000000)::int`: 22P02 with the 300 MB input in
/// its message field). A proxy that holds such a message to read it holds it whole; this keeps
/// only its first bytes instead, and the caller drops the rest as it arrives.
///
/// Fields follow the protocol chapter "Error and Notice Message Fields" (55.8): each is a code
/// byte and a NUL-terminated string, and a zero byte ends the list. PostgreSQL writes them in
/// the order of src/backend/utils/error/elog.c send_message_to_frontend: S (localized
/// severity), V (severity), C (SQLSTATE), M (message), D, H, P/p, q, W, s, t, c, d, n, F, L, R.
/// The short fields the proxy needs (S, V, C) therefore come first, and a cut falls in a
/// later, free-text one.
extension ErrorFields {
    /// The message to send in place of one whose body is longer than what was kept.
    public struct Cut: Equatable, Sendable {
        /// The rebuilt message, header included: the fields before the cut byte for byte, the
        /// cut field's value up to a character boundary followed by ``marker(droppedBytes:)``,
        /// and none of the fields after it.
        public var message: ByteBuffer
        /// The same fields, decoded (as UTF-8, lossily) for the session's own bookkeeping.
        public var fields: ErrorFields
        /// Bytes of the server's message the client does not get: from the cut to its end.
        public var droppedBytes: Int
    }

    /// Why a message cannot be cut: the caller closes the session (nothing sound to forward).
    public enum CutFailure: Error, Equatable, Sendable {
        /// A zero byte ends the field list before the declared length (malformed).
        case endsEarly
        /// The cut falls in the severity or SQLSTATE (S, V, C), which must reach the client
        /// whole; PostgreSQL never sends one this long.
        case cutInField(UInt8)
    }

    /// The text appended to a cut value. ASCII only: valid in every client encoding
    /// PostgreSQL supports (docs 24.3.1 Supported Character Sets), so it needs no conversion.
    public static func marker(droppedBytes: Int) -> String {
        "... (\(droppedBytes) bytes cut by Portcullis)"
    }

    /// `type` is `E` or `N`; `body` the first bytes of its body (after the 5-byte header);
    /// `bodyLength` the whole body's length as its header declares it (longer than `body`).
    /// `utf8`: the client encoding is known to be UTF8 (see ``characterBoundary(in:utf8:)``).
    public static func cut(type: UInt8, body: some Collection<UInt8>, bodyLength: Int, utf8: Bool) throws(CutFailure) -> Cut {
        let bytes = Array(body)
        // The complete fields, as sent, and the one the cut falls in, if any.
        var kept: [(code: UInt8, value: ArraySlice<UInt8>)] = []
        var cutField: (code: UInt8, valueStart: Int)?
        var i = 0
        while i < bytes.count {
            let code = bytes[i]
            guard code != 0 else { throw .endsEarly }
            guard let end = bytes[(i + 1)...].firstIndex(of: 0) else {
                // Its code may be the last byte kept.
                if Self.uncuttable.contains(code) { throw .cutInField(code) }
                cutField = (code, i + 1)
                break
            }
            kept.append((code, bytes[(i + 1)..<end]))
            i = end + 1
        }
        let dropped: Int
        let messageCode = UInt8(ascii: "M")
        if let cutField {
            let value = bytes[cutField.valueStart...]
            let boundary = Self.characterBoundary(in: value, utf8: utf8)
            dropped = bodyLength - cutField.valueStart - boundary
            kept.append((cutField.code, value.prefix(boundary) + Array(marker(droppedBytes: dropped).utf8)))
        } else {
            // The cut fell between two fields: the marker goes on the message (M), which
            // PostgreSQL always sends, or is one when none was kept.
            dropped = bodyLength - bytes.count
            let note = Array(marker(droppedBytes: dropped).utf8)
            if let index = kept.firstIndex(where: { $0.code == messageCode }) {
                kept[index].value = kept[index].value + [UInt8(ascii: " ")] + note
            } else {
                kept.append((messageCode, note[...]))
            }
        }
        var message = ByteBuffer()
        message.writeInteger(type)
        message.writeInteger(Int32(4 + kept.reduce(1) { $0 + 2 + $1.value.count }))
        for field in kept {
            message.writeInteger(field.code)
            message.writeBytes(field.value)
            message.writeInteger(UInt8(0))
        }
        message.writeInteger(UInt8(0))
        let fields = kept.map { Field(code: $0.code, value: String(decoding: $0.value, as: UTF8.self)) }
        return Cut(message: message, fields: ErrorFields(fields: fields), droppedBytes: dropped)
    }

    /// Severity and SQLSTATE: a client reads them as whole values.
    static let uncuttable: Set<UInt8> = Set("SVC".utf8)

    /// How many leading bytes of `value` end on a character boundary in the client encoding
    /// (the server sends text in it):
    ///
    /// - `utf8` (the session's client encoding is known to be UTF8: read-only sessions) and
    ///   they are valid UTF-8 but for an incomplete last sequence: all but that sequence;
    /// - otherwise, up to and including the last byte below 0x30 — not "valid UTF-8" as a
    ///   guess: SJIS text can be valid UTF-8 too (found in review: `C3 83` is U+00C3 and an
    ///   SJIS half-width katakana followed by a lead byte, cut between the lead byte and its
    ///   second byte). In every encoding PostgreSQL
    ///   supports such a byte is an ASCII character of its own, never part of a multibyte one:
    ///   the second bytes of SJIS, BIG5, GBK and UHC start at 0x40, JOHAB's at 0x31, GB18030's
    ///   four-byte form uses 0x30–0x39 (src/common/wchar.c), and the server encodings keep
    ///   every byte below 0x80 ASCII. What follows the last space or quote is dropped.
    ///
    /// In any encoding, bytes below 0x80 two or more places after the last byte at or above it
    /// are characters of their own (a multibyte character's bytes after its first that fall
    /// below 0x80 are at most one, or in GB18030's four-byte form the second and fourth, each
    /// after a byte at or above 0x80), so a value ending in such a run, or all ASCII, is kept whole.
    static func characterBoundary(in value: ArraySlice<UInt8>, utf8: Bool) -> Int {
        if utf8, let valid = validUTF8Prefix(value) { return valid }
        guard let high = value.lastIndex(where: { $0 >= 0x80 }), value.endIndex - high < 3 else { return value.count }
        if let last = value.lastIndex(where: { $0 < 0x30 }) { return last - value.startIndex + 1 }
        return 0
    }

    /// The length of `value` without an incomplete UTF-8 sequence at its end, when the rest
    /// is valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points over U+10FFFF);
    /// nil when it is not.
    static func validUTF8Prefix(_ value: ArraySlice<UInt8>) -> Int? {
        var i = value.startIndex
        while i < value.endIndex {
            let lead = value[i]
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0x00...0x7F: i += 1; continue
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return nil
            }
            for k in 1..<length {
                guard i + k < value.endIndex else { return i - value.startIndex }
                let byte = value[i + k]
                let range = k == 1 ? low...high : 0x80...0xBF
                guard range.contains(byte) else { return nil }
            }
            i += length
        }
        return value.count
    }
}
