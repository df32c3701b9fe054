/// A Query or Parse text longer than ``StatementLifecycle/maxTextBytes``, as the session keeps
/// it for the audit record: its first ``headBytes`` and its last ``tailBytes``, each cut at a
/// character boundary, and how many bytes between them were not kept.
///
/// Head and tail, not the head alone: padding a statement with a megabyte literal or comment
/// must not push out of the record the table it touches and what it did (`UPDATE t … OR v =
/// '<1 MB>'`, `SELECT '<1 MB>'; UPDATE t …`, `/* <1 MB> */ UPDATE t …`). pgAudit logs the
/// whole text (pgaudit.c log_audit_event); keeping it whole would let one client make the
/// loop queue megabytes per statement (audit_queue_max_bytes).
///
/// Carried in the record's text as `head NUL omitted-count NUL tail`: a protocol string ends at
/// its first NUL (postgres.c pq_getmsgstring; Portcullis reads texts as C strings), so no
/// client text holds one and none can pass for a cut text.
package struct CutText: Equatable, Sendable {
    package var head: String
    package var omittedBytes: Int
    package var tail: String

    package static let tailBytes = 64 << 10
    package static var headBytes: Int { StatementLifecycle.maxTextBytes - tailBytes }

    /// `text` as kept: itself when it is at most ``StatementLifecycle/maxTextBytes`` long.
    package static func bounded(_ text: String) -> String {
        let utf8 = text.utf8
        guard utf8.count > StatementLifecycle.maxTextBytes else { return text }
        // Index arithmetic on the UTF-8 view, no copy of the whole text (this runs on a loop).
        // Not inside a UTF-8 sequence (continuation bytes are 10xxxxxx).
        var headEnd = utf8.index(utf8.startIndex, offsetBy: headBytes)
        while headEnd > utf8.startIndex, utf8[headEnd] & 0xC0 == 0x80 { headEnd = utf8.index(before: headEnd) }
        var tailStart = utf8.index(utf8.endIndex, offsetBy: -tailBytes)
        while tailStart < utf8.endIndex, utf8[tailStart] & 0xC0 == 0x80 { tailStart = utf8.index(after: tailStart) }
        let cut = CutText(head: String(decoding: utf8[..<headEnd], as: UTF8.self),
                          omittedBytes: utf8.distance(from: headEnd, to: tailStart),
                          tail: String(decoding: utf8[tailStart...], as: UTF8.self))
        return cut.encoded
    }

    var encoded: String { head + "\u{0}\(omittedBytes)\u{0}" + tail }

    /// The parts of a text kept by ``bounded(_:)``, nil for a text kept whole.
    package init?(_ text: String) {
        let utf8 = text.utf8
        // O(1) on a native string: most texts are never searched for the NUL.
        guard utf8.count > Self.tailBytes, let first = utf8.firstIndex(of: 0) else { return nil }
        let afterFirst = utf8.index(after: first)
        guard let second = utf8[afterFirst...].firstIndex(of: 0),
              let omitted = Int(String(decoding: utf8[afterFirst..<second], as: UTF8.self)) else { return nil }
        head = String(decoding: utf8[..<first], as: UTF8.self)
        omittedBytes = omitted
        tail = String(decoding: utf8[utf8.index(after: second)...], as: UTF8.self)
    }

    package init(head: String, omittedBytes: Int, tail: String) {
        self.head = head
        self.omittedBytes = omittedBytes
        self.tail = tail
    }

    /// The text's whole length.
    package var totalBytes: Int { head.utf8.count + omittedBytes + tail.utf8.count }
}
