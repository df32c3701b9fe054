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
/// They must never end the client's session (found in review: a cancel landing on the capture,
/// the client's own `statement_timeout = '1ms'` timing the capture out, `temp_buffers` refused
/// on a backend that had used temporary tables, and a 9 MB value whose hex overran the frame
/// limit each ended it with FATAL 08006). So:
///
/// - the capture runs in its own transaction block, followed by a ROLLBACK Query that ends it
///   should an error have left it aborted, with `statement_timeout` set to 0 for it
///   (`set_config(…, true)`, gone at its COMMIT) once the client's value was read by a first,
///   trivial statement; statement timeouts apply per statement of a multi-statement Query
///   (postgres.c exec_simple_query: disable_statement_timeout between statements, the next
///   one's timer armed with the value then in force, start_xact_command →
///   enable_statement_timeout). Locks and idle-in-transaction time play no part: pg_settings
///   locks no table and the block never waits for the client;
/// - values longer than ``maxCarriedValueBytes`` are not read: they are named
///   (``Outcome/tooLarge``) and the session keeps its server (the shell pins it);
/// - the restore sends `RESET ALL` and each setting as a Query of its own, so one that fails
///   (temp_buffers after temporary tables were accessed: guc.c check_temp_buffers) fails
///   alone and is named (``Outcome/failed``); `statement_timeout` and `lock_timeout` are set last,
///   after the others ran without them;
/// - the shell takes the cancel key off the backend while an exchange runs, so a client's
///   CancelRequest never reaches the proxy's own query (ClientSession+Settings.swift).
///
/// Pure: the shell sends ``messages`` and feeds the server's messages to ``received(_:)``
/// until it finishes.
package struct SettingsExchange: Sendable {
    package enum Purpose: Sendable, Equatable {
        /// Reading the client's settings after its transaction.
        case capture
        /// Making a server's settings the client's before its transaction.
        case apply
    }

    /// What an exchange that ran to its ReadyForQuery found.
    package struct Outcome: Equatable, Sendable {
        /// Capture: the session's settings (carried values only).
        package var settings: [String: String] = [:]
        /// Capture: settings whose values are too long to carry (``maxCarriedValueBytes``).
        package var tooLarge: [String] = []
        /// Apply: settings the server refused, with its message.
        package var failed: [String: String] = [:]

        package init(settings: [String: String] = [:], tooLarge: [String] = [], failed: [String: String] = [:]) {
            self.settings = settings
            self.tooLarge = tooLarge
            self.failed = failed
        }
    }

    package enum Step: Equatable {
        case more
        case finished(Outcome)
        /// The capture failed (an error, or the server not idle after it): the settings are not
        /// known.
        case failed(String)
    }

    package let purpose: Purpose
    /// Apply: the settings in the order their Queries were sent (after `RESET ALL`).
    private let order: [String]
    private var rows: [String: String] = [:]
    private var tooLarge: [String] = []
    private var carriedBytes = 0
    /// Capture: `statement_timeout` as the client had it, and its reset value, both as
    /// current_setting shows them.
    private var statementTimeout: String?
    private var statementTimeoutReset: String?
    /// Capture: `exit_on_error` as the client had it, and its reset value.
    private var exitOnError: String?
    private var exitOnErrorReset: String?
    private var commandsCompleted = 0
    private var readyForQueries = 0
    private var error: String?
    private var failed: [String: String] = [:]

    package init(_ purpose: Purpose, settings: [String: String] = [:]) {
        self.purpose = purpose
        order = purpose == .apply ? Self.applyOrder(settings) : []
    }

    /// The longest value carried (bytes): its hex travels in one DataRow, under the shell's frame
    /// limit, and the restore's Query holds it twice over. Longer ones pin the session.
    package static let maxCarriedValueBytes = 1 << 20
    /// The most bytes of settings (names and values) carried in all: past it none are kept and
    /// the session pins, so hundreds of 1 MB custom settings cannot grow the proxy's memory
    /// (found in review: each later transaction would also build twice that in restore Queries).
    package static let maxCarriedTotalBytes = 1 << 20

    /// Settings set last on restore: while they run, the client's own timeouts must not apply
    /// to the proxy's other Queries, nor its `exit_on_error` turn a refused setting into the
    /// end of the session (found in review).
    static let timeouts: Set<String> = ["statement_timeout", "lock_timeout", "exit_on_error"]

    /// The texts of the Queries to send, in order.
    package static func messages(_ purpose: Purpose, settings: [String: String]) -> [String] {
        switch purpose {
        // ROLLBACK as a Query of its own: after an error (a cancel that was already on its way,
        // a timeout) the block is left aborted, and the client's next statement would fail in
        // it; after a COMMIT it only warns that no transaction is in progress.
        case .capture: [captureQuery, "ROLLBACK"]
        case .apply: ["RESET ALL"] + applyOrder(settings).map { name in
            "SELECT pg_catalog.set_config(\(text(name)), \(text(settings[name] ?? "")), false)"
        }
        }
    }

    static func applyOrder(_ settings: [String: String]) -> [String] {
        settings.keys.sorted { (timeouts.contains($0) ? 1 : 0, $0) < (timeouts.contains($1) ? 1 : 0, $1) }
    }

    /// role and session_authorization pin instead (they are not in pg_settings either). Names and
    /// values travel as hex of their UTF-8 bytes, so neither quoting nor whatever
    /// client_encoding the server session has can change them. It runs with the client's own
    /// search_path, so every function and operator is schema-qualified: an unqualified `=` would
    /// be the client's if it put its own first (found in review: a capture that found no
    /// settings left the next client on a server with the first one's search_path).
    ///
    /// Statements: BEGIN (read committed: a client's default serializable read-only deferrable
    /// would wait for a safe snapshot); the client's statement_timeout and exit_on_error read,
    /// then set to 0 and off for the block, in one statement that reads no table (it still runs
    /// under the client's statement_timeout, which may be 1ms) — so neither is read from
    /// pg_settings afterwards, where the block's own values show (found in review: a client's
    /// `exit_on_error = on` came back off), nor are the per-transaction settings the BEGIN set
    /// (transaction_isolation: replayed with set_config it fails after the first query);
    /// the rows (a value over the bound as NULL), statement_timeout's reset value under the
    /// empty name (set_config returns it as current_setting shows it) and exit_on_error's under
    /// a NUL (hex `00`: no setting's name); COMMIT. Each is carried when the client's value
    /// differs from its reset value.
    package static let captureQuery = """
        BEGIN ISOLATION LEVEL READ COMMITTED; \
        SELECT pg_catalog.encode(pg_catalog.convert_to(pg_catalog.current_setting('statement_timeout'), 'UTF8'), 'hex'), \
        pg_catalog.encode(pg_catalog.convert_to(pg_catalog.current_setting('exit_on_error'), 'UTF8'), 'hex'), \
        pg_catalog.set_config('statement_timeout', '0', true), pg_catalog.set_config('exit_on_error', 'off', true); \
        SELECT pg_catalog.encode(pg_catalog.convert_to(name, 'UTF8'), 'hex'), \
        CASE WHEN pg_catalog.octet_length(setting) OPERATOR(pg_catalog.<=) \(maxCarriedValueBytes) \
        THEN pg_catalog.encode(pg_catalog.convert_to(setting, 'UTF8'), 'hex') END \
        FROM pg_catalog.pg_settings WHERE source OPERATOR(pg_catalog.=) 'session' \
        AND name OPERATOR(pg_catalog.<>) 'role' AND name OPERATOR(pg_catalog.<>) 'session_authorization' \
        AND name OPERATOR(pg_catalog.<>) 'statement_timeout' AND name OPERATOR(pg_catalog.<>) 'exit_on_error' \
        AND name OPERATOR(pg_catalog.<>) 'transaction_isolation' AND name OPERATOR(pg_catalog.<>) 'transaction_read_only' \
        AND name OPERATOR(pg_catalog.<>) 'transaction_deferrable' \
        UNION ALL SELECT '', pg_catalog.encode(pg_catalog.convert_to(pg_catalog.set_config('statement_timeout', reset_val, true), 'UTF8'), 'hex') \
        FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'statement_timeout' \
        UNION ALL SELECT '00', pg_catalog.encode(pg_catalog.convert_to(reset_val, 'UTF8'), 'hex') \
        FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'exit_on_error'; \
        COMMIT
        """

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
            captureRow(payload)
        case .commandComplete:
            commandsCompleted += 1
        case .errorResponse(let fields):
            let text = fields.message ?? "error \(fields.sqlState ?? "")"
            if purpose == .apply {
                // Query 0 is RESET ALL, then one per setting.
                let name = readyForQueries == 0 ? "RESET ALL" : (order.indices.contains(readyForQueries - 1) ? order[readyForQueries - 1] : "?")
                failed[name] = text
            } else if readyForQueries == 0 {
                // The capture's; the ROLLBACK after it only makes sure no block is left open
                // (it ends the session idle or the exchange fails below).
                error = error ?? text
            }
        case .readyForQuery(let status):
            readyForQueries += 1
            if purpose == .apply {
                guard readyForQueries > order.count else { return .more }
                if status != .idle { failed["(transaction state)"] = "the server is not idle after restoring settings" }
                return .finished(Outcome(failed: failed))
            }
            guard readyForQueries >= 2 else { return .more }
            if let error { return .failed(error) }
            guard status == .idle else { return .failed("the server is not idle after reading settings") }
            var settings = rows
            if let current = statementTimeout, current != statementTimeoutReset { settings["statement_timeout"] = current }
            if let current = exitOnError, current != exitOnErrorReset { settings["exit_on_error"] = current }
            return .finished(Outcome(settings: settings, tooLarge: tooLarge.sorted()))
        default:
            break
        }
        return .more
    }

    /// A capture DataRow: statement 1's (the client's statement_timeout), or statement 2's.
    private mutating func captureRow(_ payload: [UInt8]) {
        guard let columns = Self.columns(payload) else { return }
        switch commandsCompleted {
        case 1:
            // statement_timeout and exit_on_error as the client had them, then what the two
            // set_config calls return.
            guard columns.count == 4 else { return }
            statementTimeout = columns[0].flatMap(Self.fromHex)
            exitOnError = columns[1].flatMap(Self.fromHex)
        case 2:
            guard columns.count == 2, let name = columns[0].flatMap(Self.fromHex) else { return }
            guard let hex = columns[1] else { return tooLarge.append(name) }
            guard let value = Self.fromHex(hex) else { return }
            if name.isEmpty { statementTimeoutReset = value; return }
            if name == "\u{0}" { exitOnErrorReset = value; return }
            carriedBytes += name.utf8.count + value.utf8.count
            guard carriedBytes <= Self.maxCarriedTotalBytes else {
                if !rows.isEmpty || tooLarge.isEmpty { tooLarge.append("(all settings: more than \(Self.maxCarriedTotalBytes) bytes)") }
                rows.removeAll()
                return
            }
            rows[name] = value
        default:
            break
        }
    }

    /// A DataRow's text columns (55.7 DataRow: Int16 count, then Int32 length and bytes; -1 is
    /// NULL).
    static func columns(_ payload: [UInt8]) -> [String?]? {
        guard payload.count >= 2 else { return nil }
        let count = Int(payload[0]) << 8 | Int(payload[1])
        var offset = 2
        var columns: [String?] = []
        for _ in 0..<count {
            guard payload.count >= offset + 4 else { return nil }
            let length = Int(Int32(bitPattern: UInt32(payload[offset]) << 24 | UInt32(payload[offset + 1]) << 16
                                   | UInt32(payload[offset + 2]) << 8 | UInt32(payload[offset + 3])))
            offset += 4
            if length < 0 {
                columns.append(nil)
                continue
            }
            guard payload.count >= offset + length else { return nil }
            columns.append(String(decoding: payload[offset..<(offset + length)], as: UTF8.self))
            offset += length
        }
        return columns
    }
}
