/// Which run-time settings a read-only identity may change (SET, RESET, set_config, and the
/// startup packet: its parameters and the `-c`/`--` switches of `options`).
///
/// Deny-list on purpose: applications set many harmless and custom (`app.x`) settings,
/// while only a few settings undo the read-only guarantee. Refused:
/// - `transaction_read_only`, `default_transaction_read_only` — turning read-only off
///   (docs 20.11.1 Statement Behavior); setting them to a value PostgreSQL reads as true
///   (``isSafeValue(_:forProtected:)``) is allowed, it changes nothing;
/// - `role`, `session_authorization` — switching to an identity with more rights;
/// - `session_replication_role` — disables triggers and rules;
/// - `standard_conforming_strings` — only `on`, the value the classifier lexes with;
/// - `transaction_isolation`/`default_transaction_isolation` are allowed (they cannot write);
/// - `search_path` is allowed unless it names `pg_catalog` after another schema: that would
///   let a function in that schema shadow an allow-listed built-in of the same name
///   (docs 5.9.5 The System Catalog Schema: pg_catalog is searched first unless listed).
enum SettingPolicy {
    static let protectedSettings: Set<String> = [
        "transaction_read_only", "default_transaction_read_only", "role", "session_authorization",
        "session_replication_role", "standard_conforming_strings",
    ]

    /// Protected settings whose value `true` is the safe one: the read-only flags, and
    /// `standard_conforming_strings`, which libpg_query lexes as on — with it off a backslash
    /// would hide a quote from the classifier (src/backend/parser/scan.l, `xq` vs `xe`).
    static let readOnlyFlags: Set<String> = ["transaction_read_only", "default_transaction_read_only",
                                             "standard_conforming_strings"]

    /// The search_path value's schemas, in order, as SET or set_config would set them.
    /// True when `pg_catalog` appears but not first.
    static func searchPathDemotesCatalog(_ schemas: [String]) -> Bool {
        let names = schemas.map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        guard let index = names.firstIndex(where: { $0 == "pg_catalog" || $0 == "\"pg_catalog\"" }) else {
            return false
        }
        return index != 0
    }

    /// Setting names are case-insensitive in PostgreSQL (guc.c compares with pg_strcasecmp,
    /// which folds ASCII, and other bytes through the server locale's tolower()). A name
    /// with a non-ASCII byte is treated as protected: a single-byte server locale could fold
    /// it onto a protected name.
    static func isProtected(_ name: String) -> Bool {
        name.utf8.contains { $0 >= 0x80 } || protectedSettings.contains(asciiLowercased(name))
    }

    /// True when `value`, given as the text of a protected read-only flag, is one PostgreSQL's
    /// parse_bool (src/backend/utils/adt/bool.c, parse_bool_with_len) reads as true: a non-empty
    /// prefix of `true` or `yes`, `on`, or `1`, in any case, without surrounding white space.
    static func isSafeValue(_ value: String, forProtected name: String) -> Bool {
        guard readOnlyFlags.contains(asciiLowercased(name)) else { return false }
        return parsesAsTrue(value)
    }

    static func parsesAsTrue(_ value: String) -> Bool {
        PostgresBool.parse(value) == true
    }

    /// Why a read-only identity may not give `name` the text value `value` (set_config, a
    /// startup parameter, `-c name=value`), or nil when it may. The same rules as SET.
    static func refusal(name: String, value: String) -> String? {
        let lowered = asciiLowercased(name)
        if isProtected(name) {
            return isSafeValue(value, forProtected: name) ? nil : "\(lowered) is protected"
        }
        switch lowered {
        case "search_path":
            guard let schemas = splitIdentifierString(value) else { return "invalid search_path" }
            if let first = schemas.firstIndex(of: "pg_catalog"), first != 0 {
                return "search_path with pg_catalog after another schema"
            }
        case "client_encoding":
            if !ClientEncodingPolicy.isReadOnlyAllowed(value) { return "client encoding \"\(value)\"" }
        default:
            break
        }
        return nil
    }

    /// The identifiers of a list-valued setting as PostgreSQL's SplitIdentifierString
    /// (src/backend/utils/adt/varlena.c) reads them for search_path: comma-separated, white
    /// space (scanner_isspace: space, \t, \n, \r, \f) around names ignored, `"quoted"` names
    /// kept as written with `""` for a quote, unquoted names down-cased. nil when PostgreSQL
    /// would reject the list ("List syntax is invalid").
    static func splitIdentifierString(_ raw: String) -> [String]? {
        let bytes = Array(raw.utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 == 0x0C }
        var index = 0
        var names: [String] = []
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        if index == bytes.count { return [] }
        while true {
            var name: [UInt8] = []
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                while true {
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: "\"") {
                        if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                            name.append(UInt8(ascii: "\""))
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    name.append(bytes[index])
                    index += 1
                }
            } else {
                let start = index
                while index < bytes.count, bytes[index] != UInt8(ascii: ","), !isSpace(bytes[index]) { index += 1 }
                if start == index { return nil }
                // downcase_truncate_identifier: ASCII letters; other bytes kept (a name with
                // them is never taken for pg_catalog, whose spelling is ASCII).
                name = bytes[start..<index].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
            }
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            names.append(String(decoding: name, as: UTF8.self))
            if index == bytes.count { return names }
            guard bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            if index == bytes.count { return nil }
        }
    }

    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while scalars.first == " " { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }
}
