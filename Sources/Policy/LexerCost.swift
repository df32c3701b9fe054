/// PostgreSQL's lexer is quadratic on long runs of operator characters, and every libpg_query
/// entry point (scan, parse, normalize, split) runs it first: the text must be judged before
/// it reaches any of them.
///
/// Why (src/backend/parser/scan.l): `xcstart` is `\/\*{op_chars}*` and its action puts all but
/// the `/*` back (`yyless(2)`), so `/*/*/*…` rescans the rest of the run at every comment start,
/// in the INITIAL and the (nested) comment state alike; `{operator}` matches a whole run of
/// `op_chars` and then gives back everything from an embedded `/*` or `--` on, or trailing `+`
/// and `-` (`+-+-+-…` shrinks to one character each time). Found in review: 16 KB of nested
/// comment starts took a classifier thread 3.3 s, 60 KB 15–30 s, and two such statements held
/// every classifier thread of the proxy. PostgreSQL pays that in the sender's own backend;
/// here the threads are shared. A run of at most ``maxOperatorRun`` bytes bounds the lexer's work
/// to O(text length × maxOperatorRun).
///
/// Legitimate text has short runs: an operator is at most 63 characters (NAMEDATALEN), and a
/// `--` comment of dashes or `=` signs is consumed by the comment rule, not rescanned — but it is
/// counted here too (this scan does not lex), as are runs inside string literals: fail closed.
public enum LexerCost {
    /// The longest run of operator characters a text may hold (bytes).
    public static let maxOperatorRun = 256

    /// scan.l `op_chars`: ``~!@#^&|`?+-*/%<>=``.
    static func isOperatorCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "@"), UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "&"),
             UInt8(ascii: "|"), UInt8(ascii: "`"), UInt8(ascii: "?"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "*"),
             UInt8(ascii: "/"), UInt8(ascii: "%"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "="):
            true
        default:
            false
        }
    }

    /// The longest run of operator characters in `sql`, stopping once it exceeds the limit.
    static func longestOperatorRun(_ sql: String) -> Int {
        var longest = 0
        var current = 0
        for byte in sql.utf8 {
            if isOperatorCharacter(byte) {
                current += 1
                if current > longest {
                    longest = current
                    if longest > maxOperatorRun { return longest }
                }
            } else {
                current = 0
            }
        }
        return longest
    }

    /// True when PostgreSQL's lexer may be run on `sql`.
    public static func isBounded(_ sql: String) -> Bool {
        longestOperatorRun(sql) <= maxOperatorRun
    }

    /// The refusal for a text the lexer must not see (54001, as PostgreSQL's own "too complex"),
    /// or nil.
    public static func refusal(for sql: String) -> Refusal? {
        guard !isBounded(sql) else { return nil }
        return Refusal(sqlState: "54001",
                       message: "statement is too complex: it holds a run of more than \(maxOperatorRun) operator characters",
                       isPostgreSQLText: false)
    }
}
