import Wire

/// Transaction pooling: a client's session-level settings (SET, RESET, set_config(..., false),
/// SET SESSION CHARACTERISTICS) move with it from server to server.
///
/// The proxy does not replay the client's statements (a SET may be rolled back, sit in a
/// multi-statement string or come from set_config): once a transaction that could have
/// changed a setting is over, it asks the server itself what the session's settings are —
/// `pg_settings` rows whose `source` is `session` (docs 54.24 pg_settings) — and on the next
/// server the client gets it runs `RESET ALL` (back to the start-up values the pool's
/// connections share, as they were all started with the same startup packet) and
/// `set_config(name, setting, false)` for each (names and values as hex). These exchanges are the proxy's own: their
/// replies, ParameterStatus included, never reach the client, whose view stays what its own
/// statements were told.
///
/// Pure: the shell sends ``captureQuery`` or ``applyQuery(_:)`` and feeds the server's
/// messages to ``received(_:)`` until it finishes.
package struct SettingsExchange: Sendable {
    package enum Purpose: Sendable, Equatable {
        /// Reading the client's settings after its transaction.
        case capture
        /// Making a server's settings the client's before its transaction.
        case apply
    }

    package enum Step: Equatable {
        case more
        case finished([String: String])
        case failed(String)
    }

    package let purpose: Purpose
    private var rows: [String: String] = [:]
    private var error: String?

    package init(_ purpose: Purpose) { self.purpose = purpose }

    /// role and session_authorization pin instead (they are not in pg_settings either). Names and
    /// values travel as hex of their UTF-8 bytes, so neither quoting nor whatever
    /// client_encoding the server session has can change them. It runs with the client's own
    /// search_path, so every function and operator is schema-qualified: an unqualified `=` would
    /// be the client's if it put its own first (found in review: a capture that found no
    /// settings left the next client on a server with the first one's search_path).
    package static let captureQuery = """
        SELECT pg_catalog.encode(pg_catalog.convert_to(name, 'UTF8'), 'hex'), \
        pg_catalog.encode(pg_catalog.convert_to(setting, 'UTF8'), 'hex') \
        FROM pg_catalog.pg_settings WHERE source OPERATOR(pg_catalog.=) 'session' \
        AND name OPERATOR(pg_catalog.<>) 'role' AND name OPERATOR(pg_catalog.<>) 'session_authorization'
        """

    /// RESET ALL, then the client's settings — an ASCII-only text, each name and value given as
    /// hex (one linear pass, however long or strange the value).
    package static func applyQuery(_ settings: [String: String]) -> String {
        guard !settings.isEmpty else { return "RESET ALL" }
        let calls = settings.sorted { $0.key < $1.key }.map { "pg_catalog.set_config(\(text($0.key)), \(text($0.value)), false)" }
        return "RESET ALL; SELECT " + calls.joined(separator: ", ")
    }

    /// `convert_from(decode('<hex>', 'hex'), 'UTF8')`: the text whose UTF-8 bytes those are.
    static func text(_ value: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(value.utf8.count * 2)
        for byte in value.utf8 {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 15)])
        }
        return "pg_catalog.convert_from(pg_catalog.decode('\(String(decoding: hex, as: UTF8.self))', 'hex'), 'UTF8')"
    }

    /// Hex digits back to the text they encode; nil if they are not hex.
    static func fromHex(_ hex: String) -> String? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// One whole server message of the exchange.
    package mutating func received(_ message: BackendMessage) -> Step {
        switch message {
        case .raw(let type, let payload) where type == UInt8(ascii: "D") && purpose == .capture:
            if let (name, value) = Self.pair(payload), let decodedName = Self.fromHex(name), let decodedValue = Self.fromHex(value) {
                rows[decodedName] = decodedValue
            }
        case .errorResponse(let fields):
            error = error ?? (fields.message ?? "error \(fields.sqlState ?? "")")
        case .readyForQuery(let status):
            if let error { return .failed(error) }
            return status == .idle ? .finished(rows) : .failed("the server is not idle after restoring settings")
        default:
            break
        }
        return .more
    }

    /// A DataRow of two text columns (55.7 DataRow: Int16 count, then Int32 length and bytes).
    static func pair(_ payload: [UInt8]) -> (String, String)? {
        guard payload.count >= 2, Int(payload[0]) << 8 | Int(payload[1]) == 2 else { return nil }
        var offset = 2
        var columns: [String] = []
        for _ in 0..<2 {
            guard payload.count >= offset + 4 else { return nil }
            let length = Int(Int32(bitPattern: UInt32(payload[offset]) << 24 | UInt32(payload[offset + 1]) << 16
                                   | UInt32(payload[offset + 2]) << 8 | UInt32(payload[offset + 3])))
            offset += 4
            guard length >= 0, payload.count >= offset + length else { return nil }
            columns.append(String(decoding: payload[offset..<(offset + length)], as: UTF8.self))
            offset += length
        }
        return (columns[0], columns[1])
    }
}
