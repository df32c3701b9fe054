/// Narrows the gap between PostgreSQL's "advanced" regular expressions (ARE, docs 9.7.3.1,
/// which hba.c compiles with REG_ADVANCED) and glibc's POSIX ERE.
///
/// Translated (outside bracket expressions): class shorthands `\d \D \s \S \w \W`, the
/// anchors `\A \Z`, word boundaries `\m \M \y \Y` (to glibc's `\< \> \b \B`), the
/// character escapes `\a \b \t \n \r \f \v \e`, `\B` (a backslash), a backslash before a
/// non-alphanumeric character (that character), and a `{` not followed by a digit (a literal
/// in ARE, a bound or an error in ERE). Refused, so that a pattern never silently means
/// something else than in PostgreSQL and never matches slowly (fail closed): back-references
/// `\1`–`\9` (glibc backtracks on them, exponentially in the user name's length), anything
/// starting with `(?` (non-capturing groups, lookaround, embedded options), a `***`
/// director, non-greedy quantifiers, other alphanumeric escapes (`\x`, `\u`, `\c`, `\0`,
/// ...), and a backslash inside a bracket expression (an escape in ARE, a literal in ERE).
enum AdvancedRegexTranslation {
    static func translate(_ pattern: String) -> Result<String, RegexCompileError> {
        let bytes = Array(pattern.utf8)
        if bytes.starts(with: Array("***".utf8)) {
            return refuse("\"***\" directors are")
        }
        var output: [UInt8] = []
        var index = 0
        func byte(_ offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }
        while index < bytes.count {
            let current = bytes[index]
            switch current {
            case UInt8(ascii: "\\"):
                guard let next = byte(index + 1) else {
                    output.append(current)
                    index += 1
                    continue
                }
                if let replacement = escapeReplacements[next] {
                    output.append(contentsOf: Array(replacement.utf8))
                } else if next >= UInt8(ascii: "1"), next <= UInt8(ascii: "9") {
                    // A back-reference in both dialects, but glibc matches it by backtracking:
                    // `^(.*)(.*)(.*)(.*)\4\3\2\1$` takes seconds on a 24-byte user name, and
                    // the user name is the client's to choose.
                    return refuse("back-references are")
                } else if isASCIIAlphanumeric(next) {
                    return refuse("the escape \\\(Character(Unicode.Scalar(next))) is")
                } else if extendedSpecials.contains(next) {
                    output.append(contentsOf: [current, next])
                } else {
                    // ARE: a backslash before any other character means that character; glibc
                    // would read \< \> \` \' as GNU anchors.
                    output.append(next)
                }
                index += 2
            case UInt8(ascii: "("):
                if byte(index + 1) == UInt8(ascii: "?") {
                    return refuse("\"(?\" constructs (non-capturing groups, lookaround, options) are")
                }
                output.append(current)
                index += 1
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "}"):
                if byte(index + 1) == UInt8(ascii: "?") {
                    return refuse("non-greedy quantifiers are")
                }
                output.append(current)
                index += 1
            case UInt8(ascii: "{"):
                // ARE: a brace not followed by a digit is a literal (`a{,2}` matches "a{,2}");
                // glibc would read `{,2}` as `{0,2}` and refuse `{x}`.
                if let next = byte(index + 1), next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
                    output.append(current)
                } else {
                    output.append(contentsOf: [UInt8(ascii: "\\"), current])
                }
                index += 1
            case UInt8(ascii: "["):
                switch copyBracketExpression(bytes, from: index, into: &output) {
                case .success(let end): index = end
                case .failure(let error): return .failure(error)
                }
            default:
                output.append(current)
                index += 1
            }
        }
        return .success(String(decoding: output, as: UTF8.self))
    }

    private static let escapeReplacements: [UInt8: String] = [
        UInt8(ascii: "d"): "[[:digit:]]", UInt8(ascii: "D"): "[^[:digit:]]",
        UInt8(ascii: "s"): "[[:space:]]", UInt8(ascii: "S"): "[^[:space:]]",
        UInt8(ascii: "w"): "[[:alnum:]_]", UInt8(ascii: "W"): "[^[:alnum:]_]",
        UInt8(ascii: "A"): "^", UInt8(ascii: "Z"): "$",
        UInt8(ascii: "m"): "\\<", UInt8(ascii: "M"): "\\>",
        UInt8(ascii: "y"): "\\b", UInt8(ascii: "Y"): "\\B",
        UInt8(ascii: "t"): "\t", UInt8(ascii: "n"): "\n", UInt8(ascii: "r"): "\r",
        UInt8(ascii: "f"): "\u{0C}", UInt8(ascii: "v"): "\u{0B}", UInt8(ascii: "e"): "\u{1B}",
        UInt8(ascii: "a"): "\u{07}", UInt8(ascii: "b"): "\u{08}",
        // ARE's \B is a synonym for \\ (glibc's would be "not a word boundary").
        UInt8(ascii: "B"): "\\\\",
    ]

    /// Characters that stay special in ERE after a backslash is removed.
    private static let extendedSpecials = Set(".[]()*+?{}|^$\\".utf8)

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// Copies `[...]` unchanged and returns the index after it. An unterminated bracket is
    /// copied as is, for regcomp to report.
    private static func copyBracketExpression(_ bytes: [UInt8], from start: Int,
                                              into output: inout [UInt8]) -> Result<Int, RegexCompileError> {
        let scanned = scanBracketExpression(bytes, from: start)
        if scanned.hasBackslash {
            return refuse("backslashes inside bracket expressions are")
        }
        output.append(contentsOf: bytes[start..<scanned.end])
        return .success(scanned.end)
    }

    /// The bracket expression at `start`: the index after its closing `]` (or the end of the
    /// pattern), and whether a backslash occurs outside its class, collating and equivalence
    /// names. A leading `]` or `^]` is literal; `[:class:]`, `[.x.]` and `[=x=]` may contain `]`.
    static func scanBracketExpression(_ bytes: [UInt8], from start: Int) -> (end: Int, hasBackslash: Bool) {
        var index = start + 1
        var hasBackslash = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "^") { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1 }
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "\\") { hasBackslash = true }
            if current == UInt8(ascii: "]") { return (index + 1, hasBackslash) }
            if current == UInt8(ascii: "["), index + 1 < bytes.count,
               let delimiter = [UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "=")].first(where: { $0 == bytes[index + 1] }) {
                var close = index + 2
                while close + 1 < bytes.count, !(bytes[close] == delimiter && bytes[close + 1] == UInt8(ascii: "]")) {
                    close += 1
                }
                index = close + 2
                continue
            }
            index += 1
        }
        return (bytes.count, hasBackslash)
    }

    private static func refuse<T>(_ what: String) -> Result<T, RegexCompileError> {
        .failure(RegexCompileError(message: "\(what) not supported by Portcullis"))
    }
}
