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
    static let secretWords = ["password", "passwd", "pwd", "secret", "token", "passphrase", "apikey", "api_key", "credential",
                              "private_key", "encryption_key", "signing_key", "access_key", "jwt", "bearer"]

    /// `sql` with every secret constant replaced; unchanged when it holds none. Text the scanner
    /// rejects (an unterminated quote, say) is redacted whole: it cannot be shown safely.
    /// `standardConformingStrings` false: scanned as PostgreSQL scans with the setting off
    /// (a text the audit logs unsplit because its server read it that way).
    public static func mask(_ sql: String, standardConformingStrings: Bool = true) -> String {
        guard let tokens = scan(sql, standardConformingStrings: standardConformingStrings) else {
            return sql.isEmpty ? sql : "<unparsable statement redacted>"
        }
        let bytes = Array(sql.utf8)
        let secret = secrets(in: tokens, bytes: bytes)
        guard !secret.isEmpty else { return sql }
        return replacing(secret.map { Int($0.start)..<Int($0.end) }, in: bytes)
    }

    /// `sql` with every string constant (and, with `numbers`, every numeric one) replaced by
    /// ``redacted``: statement text `normalized` where `pg_query_normalize` left constants in
    /// place — it does not rewrite utility statements (PREPARE … AS, CREATE VIEW … AS, COMMENT
    /// … IS, DEFAULT, CHECK) or a text with a syntax error, which it fails on (found in review:
    /// those kept names, SSNs and file paths verbatim). Text the scanner rejects is redacted
    /// whole, as by ``mask(_:standardConformingStrings:)``.
    public static func maskingConstants(_ sql: String, numbers: Bool) -> String {
        let bytes = Array(sql.utf8)
        // Every constant has a quote or a digit (B'…', X'…', E'…', U&'…', $$…$$ and numbers).
        guard bytes.contains(where: { $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "$") || (numbers && (48...57).contains($0)) }) else {
            return sql
        }
        guard let tokens = scan(sql) else { return "<unparsable statement redacted>" }
        let constants = tokens.filter { token in
            CutTextMasker.isConstant(token.kind) || (numbers && (token.kind == PG_QUERY__TOKEN__ICONST || token.kind == PG_QUERY__TOKEN__FCONST))
        }
        guard !constants.isEmpty else { return sql }
        return replacing(constants.map { Int($0.start)..<Int($0.end) }, in: bytes)
    }

    /// False only when ``mask(_:standardConformingStrings:)`` certainly returns `sql` unchanged,
    /// found without scanning (the audit writer's fast path for common statements). Every
    /// secret the masker redacts is either a string constant ('…', E'…', U&'…', $$…$$: a quote
    /// or a dollar sign) or a bare value after `TO`/`=` of a name that contains one of
    /// ``secretWords`` (`SET app.password = S3cret`, `= 31337001`); a name's text as written
    /// contains the word whenever its unquoted form does (undoing `""` leaves a `"` between
    /// the parts). So a text without a quote, a dollar sign and any secret word is left as is.
    /// Keep in step with ``secrets(in:bytes:)``.
    public static func mayChange(_ sql: String) -> Bool {
        // No copy for a native string (the common case): one pass over its bytes.
        if let answer = sql.utf8.withContiguousStorageIfAvailable({ mayChange(bytes: $0) }) { return answer }
        return Array(sql.utf8).withUnsafeBufferPointer { mayChange(bytes: $0) }
    }

    private static func mayChange(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // ASCII lower case: the secret words are ASCII, and looksSecret lowercases.
        func lower(_ byte: UInt8) -> UInt8 { (65...90).contains(byte) ? byte | 0x20 : byte }
        for index in bytes.indices {
            let byte = bytes[index]
            if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "$") { return true }
            let folded = lower(byte)
            for word in secretWordBytes where word[0] == folded && index + word.count <= bytes.count {
                var matched = 1
                while matched < word.count, lower(bytes[index + matched]) == word[matched] { matched += 1 }
                if matched == word.count { return true }
            }
        }
        return false
    }

    static let secretWordBytes: [[UInt8]] = secretWords.map { Array($0.utf8) }

    /// `bytes` with each of `ranges` (sorted by start; overlaps are skipped) replaced by ``redacted``.
    static func replacing(_ ranges: [Range<Int>], in bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var position = 0
        for range in ranges where range.lowerBound >= position && range.upperBound <= bytes.count {
            out += bytes[position..<range.lowerBound]
            out += Array(redacted.utf8)
            position = range.upperBound
        }
        out += bytes[position...]
        return String(decoding: out, as: UTF8.self)
    }

    /// The constants of `tokens` (scanned from `bytes`) that hold secrets, sorted by start.
    static func secrets(in tokens: [Token], bytes: [UInt8]) -> [Token] {
        func text(_ token: Token) -> Substring {
            guard token.start >= 0, token.end <= bytes.count, token.start <= token.end else { return "" }
            return Substring(decoding: bytes[Int(token.start)..<Int(token.end)], as: UTF8.self)
        }
        // Comments are not part of the grammar: skipped when looking back.
        let significant = tokens.filter { $0.kind != PG_QUERY__TOKEN__SQL_COMMENT && $0.kind != PG_QUERY__TOKEN__C_COMMENT }
        var secret: [Token] = []
        var secretStarts: Set<Int32> = []
        func isValue(_ kind: PgQuery__Token) -> Bool {
            kind == PG_QUERY__TOKEN__SCONST || kind == PG_QUERY__TOKEN__USCONST || kind == PG_QUERY__TOKEN__IDENT
                || kind == PG_QUERY__TOKEN__ICONST || kind == PG_QUERY__TOKEN__FCONST
        }
        func take(_ token: Token) {
            if secretStarts.insert(token.start).inserted { secret.append(token) }
        }
        /// The token at `index` and, when it opens a parenthesis, everything up to the one
        /// that closes it.
        func takeValue(at index: Int) {
            guard index < significant.count else { return }
            guard significant[index].kind == PG_QUERY__TOKEN__ASCII_40 else { return take(significant[index]) }
            var depth = 0
            for inner in significant[index...] {
                take(inner)
                if inner.kind == PG_QUERY__TOKEN__ASCII_40 { depth += 1 }
                if inner.kind == PG_QUERY__TOKEN__ASCII_41 { depth -= 1; if depth == 0 { break } }
            }
        }
        for (index, token) in significant.enumerated() {
            func back(_ n: Int) -> Token? { index - n >= 0 ? significant[index - n] : nil }
            // What follows PASSWORD (or ENCRYPTED, written for ENCRYPTED PASSWORD) when it is a
            // value of any form: a statement with a password mistyped does not parse, and the
            // audit shows its text (found in review: `PASSWORD "pw"`, `PASSWORD pw`,
            // `PASSWORD ('pw')`, `PASSWORD ’pw’`, `ENCRYPTED 'pw'`, `OPTIONS (password: 'pw')`
            // were kept). The scanner reads `password` as that keyword anywhere: as a column
            // (`SELECT password FROM`, `app.password = …`) a keyword or an operator follows it.
            let isSecretWord = token.kind == PG_QUERY__TOKEN__PASSWORD || token.kind == PG_QUERY__TOKEN__ENCRYPTED
                || (token.kind == PG_QUERY__TOKEN__IDENT && looksSecret(unquoted(text(token))))
            if isSecretWord, back(1)?.kind != PG_QUERY__TOKEN__ASCII_46, index + 1 < significant.count {
                let next = significant[index + 1]
                // A name that only looks secret takes `: value` alone: a word after it is more
                // likely an alias (`FROM api_tokens t`) than a value.
                let keyword = token.kind != PG_QUERY__TOKEN__IDENT
                switch next.kind {
                case PG_QUERY__TOKEN__IDENT, PG_QUERY__TOKEN__ICONST, PG_QUERY__TOKEN__FCONST,
                     PG_QUERY__TOKEN__SCONST, PG_QUERY__TOKEN__USCONST:
                    if keyword { take(next) }
                case PG_QUERY__TOKEN__ASCII_40:
                    // `PASSWORD ('pw')`; not `secret(…)`, a call.
                    if keyword { takeValue(at: index + 1) }
                case PG_QUERY__TOKEN__ASCII_58:
                    takeValue(at: index + 2)
                default:
                    break
                }
            }
            // `IDENTIFIED BY 'pw'` (another system's syntax).
            if token.kind == PG_QUERY__TOKEN__BY, let before = back(1), before.kind == PG_QUERY__TOKEN__IDENT,
               unquoted(text(before)).lowercased() == "identified" {
                takeValue(at: index + 1)
            }
            // `SET name = value [, value …]` (also ALTER ROLE/DATABASE/SYSTEM … SET) with a
            // secret-looking name: every value of the list (gram.y var_list: constants and
            // bare words — `SET app.password = S3cret`, `= 123456`, `TO 'a', 'b'`).
            if token.kind == PG_QUERY__TOKEN__TO || token.kind == PG_QUERY__TOKEN__ASCII_61,
               let name = back(1), name.kind != PG_QUERY__TOKEN__SCONST, looksSecret(unquoted(text(name))) {
                var next = index + 1
                while next < significant.count, isValue(significant[next].kind) {
                    if secretStarts.insert(significant[next].start).inserted { secret.append(significant[next]) }
                    next += 1
                    guard next < significant.count, significant[next].kind == PG_QUERY__TOKEN__ASCII_44 else { break }
                    next += 1
                }
            }
            // set_config(name, value, is_local) whose name (a constant, maybe cast or escaped)
            // looks secret: every constant and word of its second argument.
            if token.kind == PG_QUERY__TOKEN__ASCII_40, let function = back(1), unquoted(text(function)).lowercased() == "set_config" {
                var depth = 0
                var argument = 0
                var nameIsSecret = false
                var next = index + 1
                while next < significant.count {
                    let inner = significant[next]
                    if inner.kind == PG_QUERY__TOKEN__ASCII_40 { depth += 1 }
                    if inner.kind == PG_QUERY__TOKEN__ASCII_41 { if depth == 0 { break }; depth -= 1 }
                    if depth == 0, inner.kind == PG_QUERY__TOKEN__ASCII_44 { argument += 1; if argument > 1 { break } }
                    if argument == 0, inner.kind == PG_QUERY__TOKEN__SCONST || inner.kind == PG_QUERY__TOKEN__USCONST,
                       looksSecret(constantValue(text(inner))) { nameIsSecret = true }
                    if argument == 1, nameIsSecret, isValue(inner.kind), inner.kind != PG_QUERY__TOKEN__IDENT,
                       secretStarts.insert(inner.start).inserted {
                        secret.append(inner)
                    }
                    next += 1
                }
            }
        }
        for (index, token) in significant.enumerated()
        where (token.kind == PG_QUERY__TOKEN__SCONST || token.kind == PG_QUERY__TOKEN__USCONST) && !secretStarts.contains(token.start) {
            func back(_ n: Int) -> Token? { index - n >= 0 ? significant[index - n] : nil }
            let isSecret: Bool = {
                if back(1)?.kind == PG_QUERY__TOKEN__PASSWORD { return true }
                // A generic option (gram.y generic_option_elem: `name 'value'`, in OPTIONS of
                // servers and user mappings) with a secret-looking name, quoted or not:
                // `"password" '…'`, `sslpassword '…'`.
                if let name = back(1), name.kind == PG_QUERY__TOKEN__IDENT, looksSecret(unquoted(text(name))) { return true }
                if let assign = back(1), assign.kind == PG_QUERY__TOKEN__TO || assign.kind == PG_QUERY__TOKEN__ASCII_61,
                   let name = back(2), looksSecret(text(name)) { return true }
                if back(1)?.kind == PG_QUERY__TOKEN__ASCII_44, let name = back(2), name.kind == PG_QUERY__TOKEN__SCONST,
                   back(3)?.kind == PG_QUERY__TOKEN__ASCII_40, let function = back(4),
                   text(function).lowercased() == "set_config", looksSecret(text(name)) { return true }
                // Escapes undone first (found in review: `E'… pass\x77ord=…'`); a U&'…' string
                // with an escape is taken for a secret (its escapes, and UESCAPE, are not decoded
                // here, and may spell any `=` or `@`).
                let constant = text(token)
                let customEscape = index + 1 < significant.count && significant[index + 1].kind == PG_QUERY__TOKEN__UESCAPE
                if token.kind == PG_QUERY__TOKEN__USCONST, constant.contains("\\") || customEscape { return true }
                return holdsConnectionPassword(constant) || holdsConnectionPassword(constantValue(constant))
                    || holdsPasswordClause(innerText(constant))
            }()
            if isSecret { secret.append(token) }
        }
        secret.sort { $0.start < $1.start }
        return secret
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

    /// An identifier as PostgreSQL names it: a quoted one without its quotes (doubled quotes
    /// undone), other words as written (looksSecret ignores case).
    static func unquoted(_ word: Substring) -> Substring {
        guard word.count >= 2, word.first == "\"", word.last == "\"" else { return word }
        return Substring(String(word.dropFirst().dropLast()).replacing("\"\"", with: "\""))
    }

    /// A string constant's value as PostgreSQL reads it, enough to judge a setting's name:
    /// `E'…'` with its backslash escapes undone (scan.l xe: `\xHH`, `\ooo`, `\uXXXX`,
    /// `\UXXXXXXXX`, `\c`), other forms without their delimiters.
    static func constantValue(_ constant: Substring) -> Substring {
        guard let first = constant.first, first == "E" || first == "e" else { return innerText(constant) }
        let body = Array(innerText(constant).unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func hex(_ count: Int, from start: Int, radix: Int = 16) -> (UInt32, Int)? {
            var value: UInt32 = 0
            var j = start
            while j < body.count, j - start < count, let digit = UInt32(String(body[j]), radix: radix) {
                value = value * UInt32(radix) + digit
                j += 1
            }
            return j > start ? (value, j) : nil
        }
        while i < body.count {
            let scalar = body[i]
            if scalar == "\\", i + 1 < body.count {
                let next = body[i + 1]
                var decoded: (UInt32, Int)?
                switch next {
                case "x": decoded = hex(2, from: i + 2)
                case "u": decoded = hex(4, from: i + 2)
                case "U": decoded = hex(8, from: i + 2)
                case "0"..."7": decoded = hex(3, from: i + 1, radix: 8)
                default: decoded = nil
                }
                if let (value, end) = decoded, let decodedScalar = Unicode.Scalar(value) {
                    out.append(decodedScalar)
                    i = end
                } else {
                    out.append(next)
                    i += 2
                }
                continue
            }
            if scalar == "'", i + 1 < body.count, body[i + 1] == "'" { i += 1 }
            out.append(scalar)
            i += 1
        }
        return Substring(String(out))
    }

    static func looksSecret(_ name: Substring) -> Bool {
        let lower = name.lowercased()
        return secretWords.contains { lower.contains($0) }
    }

    /// `password=` in key/value form (libpq's conninfo, any spacing and case), or a URI with
    /// `user:password@`.
    static func holdsConnectionPassword(_ literal: Substring) -> Bool {
        // libpq decodes percent-encoded URI keys and values (fe-connect.c conninfo_uri_decode):
        // `?%70assword=…` is `?password=…`.
        let lower = percentDecoded(literal.lowercased())
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

    /// `text` with `%HH` sequences decoded (invalid ones left as they are).
    static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let value = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(value)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self).lowercased()
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
        if case .tokens(let tokens) = scanReportingError(sql, standardConformingStrings: standardConformingStrings) { return tokens }
        return nil
    }

    enum ScanOutcome {
        case tokens([Token])
        /// The scanner's error, at this UTF-8 byte offset when it named one (an unterminated
        /// quote or comment: where it starts, scan.l `<xq,xe,xus><<EOF>>`, `<xc><<EOF>>`).
        case error(atByte: Int?)
    }

    static func scanReportingError(_ sql: String, standardConformingStrings: Bool = true) -> ScanOutcome {
        // A text the lexer would take quadratic time on is redacted whole (``LexerCost``).
        guard LexerCost.isBounded(sql) else { return .error(atByte: nil) }
        let previous = standardConformingStrings ? 1 : cpq_set_standard_conforming_strings(0)
        let result = pg_query_scan(sql)
        if !standardConformingStrings { _ = cpq_set_standard_conforming_strings(previous) }
        defer { pg_query_free_scan_result(result) }
        if let error = result.error {
            // cursorpos counts characters from 1 (scanner_errposition: pg_mbstrlen_with_len + 1).
            let characters = Int(error.pointee.cursorpos) - 1
            guard characters >= 0 else { return .error(atByte: nil) }
            var bytes = 0
            var count = 0
            for scalar in sql.unicodeScalars {
                guard count < characters else { break }
                bytes += scalar.utf8.count
                count += 1
            }
            return .error(atByte: count == characters ? bytes : nil)
        }
        guard let unpacked = pg_query__scan_result__unpack(nil, result.pbuf.len, UnsafeRawPointer(result.pbuf.data)?
            .assumingMemoryBound(to: UInt8.self)) else { return .error(atByte: nil) }
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
        return .tokens(tokens)
    }
}

private extension String {
    /// A quoted identifier's name (`"set_config"` calls set_config too).
    func trimmingQuotes() -> String {
        guard count >= 2, first == "\"", last == "\"" else { return self }
        return String(dropFirst().dropLast())
    }
}
