import CPgQuery

/// Masking and reading of a statement text the session kept only the head and the tail of
/// (Session's `CutText`: a Query or Parse text over 1 MiB). Neither part parses on its own, so
/// this works on libpg_query's scanner (scan.l) alone, and fails closed where the scanner's
/// state is not known:
///
/// - The head starts where the text starts, so it is scanned as the server scans it. The
///   construct the cut fell inside (an unterminated quote, comment or dollar-quoted body: the
///   scanner's error names where it starts, scan.l `<xq,xe,xus><<EOF>>`, `<xc><<EOF>>`) is
///   redacted up to the cut; the rest is masked as any text (``SecretMasker``).
/// - The tail starts in a state the proxy cannot know: inside a literal, a comment, a quoted
///   identifier, a dollar-quoted body, or none. It is scanned under each of those starts (a
///   quote, `E'`, `E'\`, `"`, `/*` nested up to the depth its `*/` need, `--`, and every
///   `$tag$` it holds); every start the scanner accepts may be the true one, so a byte is
///   shown only when no accepted reading puts it in a secret — and under each reading every
///   constant of the statement the cut went through (before its first `;`) is redacted, as
///   its context (a PASSWORD keyword, a SET name) was not kept. No accepted reading: the tail
///   is redacted whole.
public enum CutTextMasker {
    /// What replaces a construct cut off at the end of the head.
    public static let cutConstruct = "<redacted to the cut>"
    public static let unreadableTail = "<kept end redacted: not readable>"

    /// The head: the part the scanner reads (`scannable`, maybe all of it), and the byte
    /// offset just after its last `;` at parenthesis depth 0 (0 when none): the statements
    /// before it are whole.
    public struct Head: Equatable, Sendable {
        public var scannable: String
        /// Bytes after `scannable` (the construct the cut fell inside, or an unreadable rest).
        public var redactedBytes: Int
        public var lastBoundary: Int
    }

    public static func head(_ head: String) -> Head {
        switch SecretMasker.scanReportingError(head) {
        case .tokens(let tokens):
            return Head(scannable: head, redactedBytes: 0, lastBoundary: lastBoundary(tokens))
        case .error(let position):
            let bytes = Array(head.utf8)
            guard let position, position <= bytes.count else { return Head(scannable: "", redactedBytes: bytes.count, lastBoundary: 0) }
            let prefix = String(decoding: bytes[..<position], as: UTF8.self)
            guard let tokens = SecretMasker.scan(prefix) else { return Head(scannable: "", redactedBytes: bytes.count, lastBoundary: 0) }
            return Head(scannable: prefix, redactedBytes: bytes.count - position, lastBoundary: lastBoundary(tokens))
        }
    }

    /// The byte offset after the last `;` outside parentheses.
    static func lastBoundary(_ tokens: [SecretMasker.Token]) -> Int {
        var depth = 0
        var boundary = 0
        for token in tokens {
            switch token.kind {
            case PG_QUERY__TOKEN__ASCII_40: depth += 1
            case PG_QUERY__TOKEN__ASCII_41: depth = max(0, depth - 1)
            case PG_QUERY__TOKEN__ASCII_59 where depth == 0: boundary = Int(token.end)
            default: break
            }
        }
        return boundary
    }

    /// The tail as it may be shown, the relations the statement the cut went through names in
    /// it (under any accepted reading: more rather than fewer), and where, under some
    /// accepted reading, whole statements start in it (after the first `;`).
    public struct Tail: Equatable, Sendable {
        public var masked: String
        public var relations: [String]
        public var statementStarts: [Int]
    }

    /// `allConstants`: every constant of every reading redacted (statement text `normalized`).
    public static func tail(_ tail: String, allConstants: Bool = false) -> Tail {
        let bytes = Array(tail.utf8)
        var redact: [Range<Int>] = []
        var relations: [String] = []
        var starts: [Int] = []
        var accepted = 0
        guard let openers = openers(tail) else { return Tail(masked: unreadableTail, relations: [], statementStarts: []) }
        for opener in openers {
            let openerBytes = opener.utf8.count
            let text = opener + tail
            guard let tokens = SecretMasker.scan(text) else { continue }
            accepted += 1
            let textBytes = Array(text.utf8)
            func shifted(_ token: SecretMasker.Token) -> Range<Int> {
                max(0, Int(token.start) - openerBytes)..<max(0, Int(token.end) - openerBytes)
            }
            for token in SecretMasker.secrets(in: tokens, bytes: textBytes) { redact.append(shifted(token)) }
            if allConstants {
                for token in tokens where isConstant(token.kind) || token.kind == PG_QUERY__TOKEN__ICONST
                    || token.kind == PG_QUERY__TOKEN__FCONST { redact.append(shifted(token)) }
            }
            // The first statement's context was not kept: all of its constants.
            var depth = 0
            var firstEnd: Int?
            var names: [String] = []
            var index = 0
            while index < tokens.count {
                let token = tokens[index]
                if token.kind == PG_QUERY__TOKEN__ASCII_40 { depth += 1 }
                if token.kind == PG_QUERY__TOKEN__ASCII_41 { depth = max(0, depth - 1) }
                if token.kind == PG_QUERY__TOKEN__ASCII_59 && depth == 0 {
                    firstEnd = Int(token.end) - openerBytes
                    break
                }
                if isConstant(token.kind) { redact.append(shifted(token)) }
                if relationKeywords.contains(token.kind.rawValue) {
                    var next = index + 1
                    if next < tokens.count, tokens[next].kind == PG_QUERY__TOKEN__ONLY { next += 1 }
                    if let name = qualifiedName(tokens, from: next, bytes: textBytes) { names.append(name) }
                }
                index += 1
            }
            for name in names where !relations.contains(name) { relations.append(name) }
            if let firstEnd, firstEnd < bytes.count, !starts.contains(firstEnd) { starts.append(firstEnd) }
        }
        guard accepted > 0 else { return Tail(masked: unreadableTail, relations: [], statementStarts: []) }
        return Tail(masked: SecretMasker.replacing(merged(redact, limit: bytes.count), in: bytes), relations: relations,
                    statementStarts: starts.sorted())
    }

    /// The relations a (scannable) part of a statement names after FROM, JOIN, UPDATE, INTO,
    /// TABLE, TRUNCATE or USING: a reading of the tokens, not of the grammar.
    public static func relations(in part: String) -> [String] {
        guard let tokens = SecretMasker.scan(part) else { return [] }
        let bytes = Array(part.utf8)
        var names: [String] = []
        for (index, token) in tokens.enumerated() where relationKeywords.contains(token.kind.rawValue) {
            var next = index + 1
            if next < tokens.count, tokens[next].kind == PG_QUERY__TOKEN__ONLY { next += 1 }
            if let name = qualifiedName(tokens, from: next, bytes: bytes), !names.contains(name) { names.append(name) }
        }
        return names
    }

    static let relationKeywords: Set<UInt32> = [PG_QUERY__TOKEN__FROM, PG_QUERY__TOKEN__JOIN, PG_QUERY__TOKEN__UPDATE,
                                                PG_QUERY__TOKEN__INTO, PG_QUERY__TOKEN__TABLE, PG_QUERY__TOKEN__TRUNCATE,
                                                PG_QUERY__TOKEN__USING].reduce(into: []) { $0.insert($1.rawValue) }

    static func isConstant(_ kind: PgQuery__Token) -> Bool {
        kind == PG_QUERY__TOKEN__SCONST || kind == PG_QUERY__TOKEN__USCONST || kind == PG_QUERY__TOKEN__BCONST
            || kind == PG_QUERY__TOKEN__XCONST
    }

    /// `a`, `a.b`, `a.b.c` of identifiers from `index`, as written.
    static func qualifiedName(_ tokens: [SecretMasker.Token], from index: Int, bytes: [UInt8]) -> String? {
        var parts: [String] = []
        var next = index
        while next < tokens.count, tokens[next].kind == PG_QUERY__TOKEN__IDENT {
            let token = tokens[next]
            parts.append(String(decoding: bytes[Int(token.start)..<min(Int(token.end), bytes.count)], as: UTF8.self))
            guard next + 2 < tokens.count, tokens[next + 1].kind == PG_QUERY__TOKEN__ASCII_46 else { break }
            next += 2
        }
        return parts.isEmpty ? nil : parts.joined(separator: ".")
    }

    /// Readings tried at most (comment depths, dollar tags): beyond them the tail is not read.
    static let maxReadings = 24

    /// The starts the scanner may have been in where the tail begins; nil when there are more
    /// than ``maxReadings``.
    static func openers(_ tail: String) -> [String]? {
        var out = ["", "'", "E'", "E'\\", "\"", "--"]
        // Nested comments (scan.l xc counts depth): as deep as the tail's unmatched `*/` need.
        let bytes = Array(tail.utf8)
        var unmatched = 0
        var depth = 0
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "/") && bytes[i + 1] == UInt8(ascii: "*") { depth += 1; i += 2; continue }
            if bytes[i] == UInt8(ascii: "*") && bytes[i + 1] == UInt8(ascii: "/") {
                if depth > 0 { depth -= 1 } else { unmatched += 1 }
                i += 2
                continue
            }
            i += 1
        }
        for level in 1...max(1, unmatched) { out.append(String(repeating: "/*", count: level)) }
        // A dollar-quoted body ends with its own tag, which the tail then holds.
        var tags: [String] = []
        i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "$") {
                var j = i + 1
                while j < bytes.count, bytes[j] == UInt8(ascii: "_") || (bytes[j] | 0x20 >= 97 && bytes[j] | 0x20 <= 122)
                    || (j > i + 1 && bytes[j] >= 48 && bytes[j] <= 57) || bytes[j] >= 128 { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: "$") {
                    let tag = String(decoding: bytes[i...j], as: UTF8.self)
                    if !tags.contains(tag) { tags.append(tag) }
                    i = j
                    continue
                }
            }
            i += 1
        }
        out += tags
        return out.count <= maxReadings ? out : nil
    }

    /// A scannable `part` with every constant (string, bit, number) as `?` (statement text
    /// `normalized`, where the parser's normalization cannot run on a cut text).
    public static func constantsRedacted(_ part: String) -> String {
        guard let tokens = SecretMasker.scan(part) else { return part.isEmpty ? part : cutConstruct }
        var out: [UInt8] = []
        let bytes = Array(part.utf8)
        var position = 0
        for token in tokens where isConstant(token.kind) || token.kind == PG_QUERY__TOKEN__ICONST || token.kind == PG_QUERY__TOKEN__FCONST {
            let start = Int(token.start), end = min(Int(token.end), bytes.count)
            guard start >= position, start <= end else { continue }
            out += bytes[position..<start]
            out.append(UInt8(ascii: "?"))
            position = end
        }
        out += bytes[position...]
        return String(decoding: out, as: UTF8.self)
    }

    /// `ranges` sorted, clipped to `limit`, overlapping ones joined.
    static func merged(_ ranges: [Range<Int>], limit: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for range in ranges.map({ min($0.lowerBound, limit)..<min($0.upperBound, limit) }).filter({ !$0.isEmpty })
            .sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, range.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                out.append(range)
            }
        }
        return out
    }
}
