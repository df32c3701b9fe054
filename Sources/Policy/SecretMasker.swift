import CPgQuery

/// Removes secrets from statement text before it is written anywhere (audit stream, logs),
/// whatever the text mode. Token-based, on PostgreSQL's own scanner (libpg_query
/// `pg_query_scan`, src/backend/parser/scan.l), so quoting, dollar quotes and comments are
/// read as the server reads them. A string constant is replaced by `'<redacted>'` when it is:
///
/// - the value after the keyword PASSWORD: `CREATE/ALTER ROLE … [ENCRYPTED] PASSWORD '…'`
///   (docs: CREATE ROLE), and `OPTIONS (password '…')` of CREATE/ALTER SERVER and USER MAPPING
///   (postgres_fdw, dblink_fdw);
/// - the value of `SET name TO|= '…'` (also `ALTER ROLE/DATABASE/SYSTEM … SET`) or of
///   `set_config('name', '…', …)` where the setting's name looks secret-bearing
///   (``secretWords``);
/// - any constant that holds a connection string with a password (`password=…` key/value form,
///   or a `postgresql://user:secret@…` URI), as passed to dblink_connect, dblink,
///   dblink_exec or CREATE SUBSCRIPTION … CONNECTION;
/// - any constant that holds SQL text with a `PASSWORD '…'` clause: the body of a DO block or
///   a function, or a statement passed to dblink_exec or EXECUTE, whose password the scanner
///   sees only as part of one constant.
///
/// pgAudit itself only truncates CREATE/ALTER ROLE after the word "password"; this covers
/// more, and keeps the rest of the statement readable.
public enum SecretMasker {
    public static let redacted = "'<redacted>'"

    /// Parts of setting names that mark their values as secrets.
    static let secretWords = ["password", "passwd", "secret", "token", "passphrase", "apikey", "api_key", "credential", "private_key"]

    /// `sql` with every secret constant replaced; unchanged when it holds none. Text the scanner
    /// rejects (an unterminated quote, say) is redacted whole: it cannot be shown safely.
    /// `standardConformingStrings` false: scanned as PostgreSQL scans with the setting off
    /// (a text the audit logs unsplit because its server read it that way).
    public static func mask(_ sql: String, standardConformingStrings: Bool = true) -> String {
        guard let tokens = scan(sql, standardConformingStrings: standardConformingStrings) else {
            return sql.isEmpty ? sql : "<unparsable statement redacted>"
        }
        let bytes = Array(sql.utf8)
        func text(_ token: Token) -> Substring {
            guard token.start >= 0, token.end <= bytes.count, token.start <= token.end else { return "" }
            return Substring(decoding: bytes[Int(token.start)..<Int(token.end)], as: UTF8.self)
        }
        // Comments are not part of the grammar: skipped when looking back.
        let significant = tokens.filter { $0.kind != PG_QUERY__TOKEN__SQL_COMMENT && $0.kind != PG_QUERY__TOKEN__C_COMMENT }
        var secret: [Token] = []
        for (index, token) in significant.enumerated()
        where token.kind == PG_QUERY__TOKEN__SCONST || token.kind == PG_QUERY__TOKEN__USCONST {
            func back(_ n: Int) -> Token? { index - n >= 0 ? significant[index - n] : nil }
            let isSecret: Bool = {
                if back(1)?.kind == PG_QUERY__TOKEN__PASSWORD { return true }
                if let assign = back(1), assign.kind == PG_QUERY__TOKEN__TO || assign.kind == PG_QUERY__TOKEN__ASCII_61,
                   let name = back(2), looksSecret(text(name)) { return true }
                if back(1)?.kind == PG_QUERY__TOKEN__ASCII_44, let name = back(2), name.kind == PG_QUERY__TOKEN__SCONST,
                   back(3)?.kind == PG_QUERY__TOKEN__ASCII_40, let function = back(4),
                   text(function).lowercased() == "set_config", looksSecret(text(name)) { return true }
                return holdsConnectionPassword(text(token)) || holdsPasswordClause(innerText(text(token)))
            }()
            if isSecret { secret.append(token) }
        }
        guard !secret.isEmpty else { return sql }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var position = 0
        for token in secret where Int(token.start) >= position {
            out += bytes[position..<Int(token.start)]
            out += Array(redacted.utf8)
            position = Int(token.end)
        }
        out += bytes[position...]
        return String(decoding: out, as: UTF8.self)
    }

    /// Bind parameter values of `sql` as they may be written (pgAudit `log_parameter`): a value
    /// holding a connection string with a password is redacted; and when the statement calls
    /// `set_config` or a dblink function, or names PASSWORD, every value is — a parameter there
    /// may be a secret setting's value or a password, and which one cannot be told from the
    /// text (the setting's name may itself be a parameter). Text the scanner rejects: all.
    public static func maskParameters(_ values: [String?], sql: String) -> [String?] {
        let redactedValue = "<redacted>"
        guard let tokens = scan(sql) else { return values.map { $0.map { _ in redactedValue } } }
        let bytes = Array(sql.utf8)
        let secretBearing = tokens.contains { token in
            if token.kind == PG_QUERY__TOKEN__PASSWORD { return true }
            guard token.kind == PG_QUERY__TOKEN__IDENT, token.start >= 0, token.end <= bytes.count, token.start < token.end else { return false }
            let word = String(decoding: bytes[Int(token.start)..<Int(token.end)], as: UTF8.self).lowercased()
                .trimmingQuotes()
            return word == "set_config" || word.hasPrefix("dblink")
        }
        return values.map { value in
            guard let value else { return nil }
            return secretBearing || holdsConnectionPassword(Substring(value)) || holdsPasswordClause(Substring(value))
                ? redactedValue : value
        }
    }

    static func looksSecret(_ name: Substring) -> Bool {
        let lower = name.lowercased()
        return secretWords.contains { lower.contains($0) }
    }

    /// `password=` in key/value form (libpq's conninfo, any spacing and case), or a URI with
    /// `user:password@`.
    static func holdsConnectionPassword(_ literal: Substring) -> Bool {
        let lower = literal.lowercased()
        if let range = lower.firstRange(of: "password") {
            let rest = lower[range.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
            if rest.first == "=" { return true }
        }
        if let scheme = lower.firstRange(of: "://") {
            let authority = lower[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" }
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") { return true }
        }
        return false
    }

    /// The word PASSWORD followed by a quoted value, in text that is itself SQL (a body, a
    /// statement in a string): `PASSWORD '…'` (also quoted once more, `''…''`), `E'…'`,
    /// `U&'…'`, `$$…$$`. `PASSWORD %L` (a format() placeholder) and `password=` (a connection
    /// string, ``holdsConnectionPassword(_:)``) are not this.
    /// A constant's text without its own delimiters (`'…'`, `E'…'`, `U&'…'`, `$tag$…$tag$`), so
    /// its closing quote is not read as the quote after a PASSWORD (`'app.password'`).
    static func innerText(_ constant: Substring) -> Substring {
        if constant.first == "$", let tagEnd = constant.dropFirst().firstIndex(of: "$") {
            let tag = constant[...tagEnd]
            let body = constant[constant.index(after: tagEnd)...]
            return body.hasSuffix(tag) ? body.dropLast(tag.count) : body
        }
        guard let open = constant.firstIndex(of: "'"), let close = constant.lastIndex(of: "'"), open < close else { return constant }
        return constant[constant.index(after: open)..<close]
    }

    static func holdsPasswordClause(_ literal: Substring) -> Bool {
        let lower = literal.lowercased()
        var searchFrom = lower.startIndex
        while let range = lower[searchFrom...].firstRange(of: "password") {
            searchFrom = range.upperBound
            let rest = lower[range.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\u{0C}" }
            guard let next = rest.first else { continue }
            if next == "'" || next == "$" { return true }
            if next == "e" || next == "u", let after = rest.dropFirst().first, after == "'" || after == "&" { return true }
        }
        return false
    }

    struct Token {
        let start: Int32
        let end: Int32
        let kind: PgQuery__Token
    }

    static func scan(_ sql: String, standardConformingStrings: Bool = true) -> [Token]? {
        // A text the lexer would take quadratic time on is redacted whole (``LexerCost``).
        guard LexerCost.isBounded(sql) else { return nil }
        let previous = standardConformingStrings ? 1 : cpq_set_standard_conforming_strings(0)
        let result = pg_query_scan(sql)
        if !standardConformingStrings { _ = cpq_set_standard_conforming_strings(previous) }
        defer { pg_query_free_scan_result(result) }
        guard result.error == nil else { return nil }
        guard let unpacked = pg_query__scan_result__unpack(nil, result.pbuf.len, UnsafeRawPointer(result.pbuf.data)?
            .assumingMemoryBound(to: UInt8.self)) else { return nil }
        defer { pg_query__scan_result__free_unpacked(unpacked, nil) }
        var tokens: [Token] = []
        tokens.reserveCapacity(unpacked.pointee.n_tokens)
        let bytes = Array(sql.utf8)
        for i in 0..<unpacked.pointee.n_tokens {
            guard let token = unpacked.pointee.tokens[i] else { continue }
            // A constant ends where the next token starts, less the white space between them:
            // the scanner's own `end` is short for some forms (U&'…' reports the U& part only).
            var end = i + 1 < unpacked.pointee.n_tokens ? (unpacked.pointee.tokens[i + 1]?.pointee.start ?? token.pointee.end)
                                                        : Int32(bytes.count)
            while end > token.pointee.start, [9, 10, 12, 13, 32].contains(bytes[Int(end) - 1]) { end -= 1 }
            tokens.append(Token(start: min(token.pointee.start, Int32(bytes.count)),
                                end: min(max(end, token.pointee.end), Int32(bytes.count)), kind: token.pointee.token))
        }
        return tokens
    }
}

private extension String {
    /// A quoted identifier's name (`"set_config"` calls set_config too).
    func trimmingQuotes() -> String {
        guard count >= 2, first == "\"", last == "\"" else { return self }
        return String(dropFirst().dropLast())
    }
}
