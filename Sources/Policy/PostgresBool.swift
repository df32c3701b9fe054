/// PostgreSQL's reading of a boolean setting's text (src/backend/utils/adt/bool.c,
/// parse_bool_with_len): case-insensitive, no surrounding white space; a non-empty prefix of
/// `true`, `false`, `yes` or `no`; `on`, or a prefix of `off` of at least two letters (`o` alone
/// is ambiguous); `1` or `0`. nil when it is none of these.
public enum PostgresBool {
    public static func parse(_ value: String) -> Bool? {
        let lowered = String(decoding: value.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
        guard let first = lowered.first else { return nil }
        switch first {
        case "t": return "true".hasPrefix(lowered) ? true : nil
        case "f": return "false".hasPrefix(lowered) ? false : nil
        case "y": return "yes".hasPrefix(lowered) ? true : nil
        case "n": return "no".hasPrefix(lowered) ? false : nil
        case "o":
            if lowered == "on" { return true }
            return lowered.utf8.count >= 2 && "off".hasPrefix(lowered) ? false : nil
        case "1": return lowered == "1" ? true : nil
        case "0": return lowered == "0" ? false : nil
        default: return nil
        }
    }
}
