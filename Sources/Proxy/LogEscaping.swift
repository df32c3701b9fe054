import Logging

/// Escaping for text that reaches a log line. Names, statements, error texts and reasons come
/// from clients and servers; written raw, a newline forges a second log line, an ANSI escape
/// rewrites what a terminal shows, a bidi override reorders it. One function, applied once, in
/// the handler (`EscapingLogHandler`), so no call site can forget it. Same spirit as
/// PostgreSQL's log_line_prefix escaping of application_name (only printable ASCII kept), but
/// reversible: nothing is lost, it is only made visible.
public enum LogText {
    /// A message: as `escaped`, except that a line break stays a line break followed by a tab,
    /// as PostgreSQL writes multi-line messages to its stderr log (elog.c append_with_tabs).
    /// Every real log line starts with a timestamp; a continuation starts with a tab, so no
    /// text can pass for a line of its own.
    public static func escapedMessage(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { escaped(String($0)) }.joined(separator: "\n\t")
    }

    /// `\` → `\\`; `\n`, `\r`, `\t` as such; other C0 controls and DEL → `\xHH`; C1 controls,
    /// line/paragraph separators, bidi and zero-width format characters → `\u{HHHH}`.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else { out.append(scalar); continue }
            let replacement: String
            switch scalar.value {
            case 0x5C: replacement = "\\\\"
            case 0x0A: replacement = "\\n"
            case 0x0D: replacement = "\\r"
            case 0x09: replacement = "\\t"
            case 0..<0x20, 0x7F: replacement = "\\x" + hex(scalar.value, digits: 2)
            default: replacement = "\\u{" + hex(scalar.value, digits: 4) + "}"
            }
            out.append(contentsOf: replacement.unicodeScalars)
        }
        return String(out)
    }

    /// A metadata value: escaped, and quoted when it holds a space, `=` or `"`, so a value
    /// cannot pose as another `key=value` field (StreamLogHandler prints them space-separated).
    public static func metadataValue(_ text: String) -> String {
        let escaped = escaped(text)
        guard escaped.isEmpty || escaped.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" }) else { return escaped }
        return "\"" + escaped.replacingQuotes() + "\""
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x5C, 0x7F, 0x80...0x9F: true
        // zero-width and bidi marks, line/paragraph separators, bidi embeddings/overrides/isolates, BOM
        case 0x200B...0x200F, 0x2028...0x202E, 0x2066...0x2069, 0xFEFF: true
        default: false
        }
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    static func escaped(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): .string(metadataValue(text))
        case .stringConvertible(let convertible): .string(metadataValue(convertible.description))
        case .array(let values): .array(values.map(escaped))
        case .dictionary(let values): .dictionary(values.mapValues(escaped))
        }
    }

    static func escaped(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var out: Logger.Metadata = [:]
        for (key, value) in metadata { out[escaped(key)] = escaped(value) }
        return out
    }
}

private extension String {
    func replacingQuotes() -> String {
        var out = ""
        for character in self { if character == "\"" { out += "\\\"" } else { out.append(character) } }
        return out
    }
}

/// Wraps the process's log handler so every message and metadata value is escaped once,
/// centrally (`LogText`), whoever logs it.
public struct EscapingLogHandler: LogHandler {
    private var inner: any LogHandler

    public init(_ inner: any LogHandler) {
        self.inner = inner
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = LogText.escaped(newValue) }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: LogText.escaped(key)] = newValue.map(LogText.escaped) }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: LogText.escapedMessage(event.message.description))
        event.metadata = event.metadata.map(LogText.escaped)
        inner.log(event: event)
    }
}
