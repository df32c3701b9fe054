/// Settings a read-only identity may not choose in its startup packet: the same protected
/// settings as SET (SettingPolicy), whether given as a startup parameter or inside `options`
/// (`-c name=value`, `-cname=value`, `--name=value`; PostgreSQL docs 20.1.4 and 34.1.2).
public enum StartupSettingsPolicy {
    /// The first protected setting the parameters would set, or nil.
    public static func protectedSetting(in parameters: [(name: String, value: String)]) -> String? {
        for (name, value) in parameters {
            if name == "options" {
                if let hit = settingNames(inOptions: value).first(where: SettingPolicy.isProtected) { return hit }
            } else if SettingPolicy.isProtected(name) {
                return name.lowercased()
            }
        }
        return nil
    }

    /// Setting names in an `options` value, split as PostgreSQL's pg_split_opts does (white space
    /// separates, a backslash takes the next character literally); `-` in names becomes `_`.
    static func settingNames(inOptions options: String) -> [String] {
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

        var names: [String] = []
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
                let name = assignment.split(separator: "=", maxSplits: 1).first.map(String.init) ?? assignment
                names.append(String(name.map { $0 == "-" ? "_" : $0 }).lowercased())
            }
            index += 1
        }
        return names
    }
}
