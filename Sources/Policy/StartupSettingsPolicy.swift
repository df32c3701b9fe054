/// Settings a read-only identity may not choose in its startup packet: the same protected
/// settings as SET (SettingPolicy), and a `client_encoding` that ``ClientEncodingPolicy``
/// refuses, whether given as a startup parameter or inside `options` (`-c name=value`,
/// `-cname=value`, `--name=value`; PostgreSQL docs 20.1.4 and 34.1.2).
public enum StartupSettingsPolicy {
    /// The first protected setting the parameters would set, or nil.
    public static func protectedSetting(in parameters: [(name: String, value: String)]) -> String? {
        for (name, value) in parameters {
            let assignments = name == "options" ? settings(inOptions: value) : [(name.lowercased(), value)]
            for assignment in assignments where isRefused(assignment) { return assignment.name }
        }
        return nil
    }

    private static func isRefused(_ assignment: (name: String, value: String)) -> Bool {
        SettingPolicy.isProtected(assignment.name)
            || (assignment.name == "client_encoding" && ClientEncodingPolicy.isUnsafe(assignment.value))
    }

    /// Setting names in an `options` value (see ``settings(inOptions:)``).
    static func settingNames(inOptions options: String) -> [String] {
        settings(inOptions: options).map(\.name)
    }

    /// Settings in an `options` value, split as PostgreSQL's pg_split_opts does (white space
    /// separates, a backslash takes the next character literally); `-` in names becomes `_`
    /// and names are lower-cased (ParseLongOption, guc.c).
    static func settings(inOptions options: String) -> [(name: String, value: String)] {
        var words: [String] = []
        var current = ""
        var escaped = false
        var inWord = false
        for ch in options {
            if escaped {
                current.append(ch)
                escaped = false
                inWord = true
            } else if ch == "\\" {
                escaped = true
            } else if ch == " " || ch == "\t" || ch == "\n" || ch == "\r" {
                if inWord { words.append(current); current = ""; inWord = false }
            } else {
                current.append(ch)
                inWord = true
            }
        }
        if inWord { words.append(current) }

        var settings: [(name: String, value: String)] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            var assignment: String?
            if word == "-c", index + 1 < words.count {
                assignment = words[index + 1]
                index += 1
            } else if word.hasPrefix("-c") {
                assignment = String(word.dropFirst(2))
            } else if word.hasPrefix("--") {
                assignment = String(word.dropFirst(2))
            }
            if let assignment {
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = parts.first.map(String.init) ?? assignment
                let value = parts.count > 1 ? String(parts[1]) : ""
                settings.append((String(name.map { $0 == "-" ? "_" : $0 }).lowercased(), value))
            }
            index += 1
        }
        return settings
    }
}
