import CPgQuery

/// An upper bound on how deeply a statement's parse tree nests, computed from PostgreSQL's own
/// lexer (`pg_query_scan`, flat and non-recursive) before anything recursive runs.
///
/// Why it is needed: libpg_query's raw parser keeps its Bison stack on the heap, but everything
/// after it recurses once per tree level — the protobuf conversion (`_outNode`), protobuf-c's
/// pack, unpack and free, and `pg_query_normalize`'s walker. PostgreSQL's `check_stack_depth`
/// is compiled into libpg_query but never fires there (its `stack_base_ptr` is never set, see
/// src/postgres/src_backend_tcop_postgres.c), and `_outNode` does not call it anyway. Bison
/// bounds bracket-like nesting (YYMAXDEPTH 10000: "memory exhausted", 42601), but left-deep
/// chains — `1+1+…`, `x::t::t…`, `a JOIN b … JOIN c`, `SELECT … UNION SELECT …` — reduce as
/// they go and nest without limit. So the text must be judged before it is parsed.
///
/// The bound, in tree levels (one `Node` and the message it wraps):
/// - Every token that is not an identifier, a constant, a comment, a separator or a closing
///   bracket counts 1 in its *element*: operators, `::`, `.`, `*` and every keyword — deny by
///   default, so no keyword construct (AT TIME ZONE, IS NOT TRUE, COLLATE, …) is missed.
/// - Elements are what lies between `,`, `;`, `AND` and `OR` at one bracket level. List items
///   are siblings in the tree, and gram.y flattens AND/OR chains (makeAndExpr/makeOrExpr), so
///   mixing them nests at most two BoolExpr levels (`sawAnd`/`sawOr`). The AND of
///   `BETWEEN x AND y` is not a separator.
/// - Set operations and joins chain *across* those separators (`SELECT 1, 2 UNION SELECT 3, 4`,
///   `JOIN … ON a AND b JOIN …`), so `UNION`, `INTERSECT`, `EXCEPT` and `JOIN` count for their
///   whole bracket level.
/// - `(`, `[` and `CASE` (closed by `)`, `]`, `END`) open a level worth 2 plus what it holds
///   (a sub-select nests SubLink, SelectStmt, ResTarget per parenthesis: 3 with its SELECT).
///
/// So a level's bound is 2 + its set-operation/join count + its boolean levels + its deepest
/// element, where an element is its own count plus its deepest nested level. The bound
/// over-counts (every keyword is a level), never under-counts; `DepthTests` checks it against
/// the real tree depth for every shape and for random token soups.
struct NestingBound {
    private struct Level {
        var isCase = false
        var chain = 0
        var element = 0
        var deepestChildInElement = 0
        var deepestElement = 0
        var sawAnd = false
        var sawOr = false
        var betweenPending = false

        mutating func endElement() {
            deepestElement = max(deepestElement, element + deepestChildInElement)
            element = 0
            deepestChildInElement = 0
        }

        /// This level's bound, counting the bracket that opened it (`opener`).
        mutating func bound(opener: Int) -> Int {
            endElement()
            return opener + chain + (sawAnd ? 1 : 0) + (sawOr ? 1 : 0) + deepestElement
        }
    }

    /// Weight of an opening bracket or CASE.
    static let bracketWeight = 2

    private var levels: [Level] = [Level()]

    mutating func add(_ token: PgQuery__Token) {
        switch token {
        case PG_QUERY__TOKEN__IDENT, PG_QUERY__TOKEN__UIDENT, PG_QUERY__TOKEN__FCONST, PG_QUERY__TOKEN__SCONST,
             PG_QUERY__TOKEN__USCONST, PG_QUERY__TOKEN__BCONST, PG_QUERY__TOKEN__XCONST, PG_QUERY__TOKEN__ICONST,
             PG_QUERY__TOKEN__PARAM, PG_QUERY__TOKEN__SQL_COMMENT, PG_QUERY__TOKEN__C_COMMENT:
            return
        case PG_QUERY__TOKEN__ASCII_40, PG_QUERY__TOKEN__ASCII_91: // ( [
            levels.append(Level())
        case PG_QUERY__TOKEN__CASE:
            levels.append(Level(isCase: true))
        case PG_QUERY__TOKEN__ASCII_41, PG_QUERY__TOKEN__ASCII_93: // ) ]
            // Closes the innermost bracket, and any CASE left open inside it (a syntax error,
            // but the bound must not depend on the text being valid).
            while levels.count > 1 {
                let wasCase = levels[levels.count - 1].isCase
                closeLevel()
                if !wasCase { return }
            }
            levels[0].element += 1 // an unmatched closer: counted, never trusted
        case PG_QUERY__TOKEN__END_P:
            if levels.count > 1 && levels[levels.count - 1].isCase {
                closeLevel()
            } else {
                levels[levels.count - 1].element += 1
            }
        case PG_QUERY__TOKEN__ASCII_44, PG_QUERY__TOKEN__ASCII_59: // , ;
            levels[levels.count - 1].endElement()
        case PG_QUERY__TOKEN__AND:
            if levels[levels.count - 1].betweenPending {
                levels[levels.count - 1].betweenPending = false
                levels[levels.count - 1].element += 1
            } else {
                levels[levels.count - 1].sawAnd = true
                levels[levels.count - 1].endElement()
            }
        case PG_QUERY__TOKEN__OR:
            levels[levels.count - 1].sawOr = true
            levels[levels.count - 1].endElement()
        case PG_QUERY__TOKEN__BETWEEN:
            levels[levels.count - 1].betweenPending = true
            levels[levels.count - 1].element += 1
        case PG_QUERY__TOKEN__UNION, PG_QUERY__TOKEN__INTERSECT, PG_QUERY__TOKEN__EXCEPT, PG_QUERY__TOKEN__JOIN:
            levels[levels.count - 1].chain += 1
        default:
            levels[levels.count - 1].element += 1
        }
    }

    private mutating func closeLevel() {
        var closed = levels.removeLast()
        let bound = closed.bound(opener: Self.bracketWeight)
        levels[levels.count - 1].deepestChildInElement = max(levels[levels.count - 1].deepestChildInElement, bound)
    }

    /// The bound over everything added so far (unclosed brackets are closed).
    var value: Int {
        var copy = self
        while copy.levels.count > 1 { copy.closeLevel() }
        return copy.levels[0].bound(opener: 0)
    }

    /// The bound for `sql`, or nil when PostgreSQL's lexer rejects the text.
    static func of(_ sql: String) -> Int? {
        let scan = pg_query_scan(sql)
        defer { pg_query_free_scan_result(scan) }
        guard scan.error == nil, let data = scan.pbuf.data else { return nil }
        var bound = NestingBound()
        let buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: scan.pbuf.len)
        guard ScanTokens.forEach(in: buffer, { bound.add($0) }) else { return nil }
        return bound.value
    }

    /// The most any text of `byteCount` bytes can score: each counted token is at least one
    /// byte, and a bracket (2) with both boolean levels (2) is the most one byte can add.
    static func ceiling(byteCount: Int) -> Int {
        4 * byteCount + 2
    }
}

/// Reads the token kinds out of `pg_query_scan`'s packed `ScanResult` (pg_query.proto:
/// `repeated ScanToken tokens = 2`, `Token token = 4`) without unpacking it: a text of a
/// million tokens would otherwise cost two million allocations. Anything unexpected in the
/// encoding makes it return false, and the caller fails closed.
enum ScanTokens {
    static func forEach(in bytes: UnsafeRawBufferPointer, _ body: (PgQuery__Token) -> Void) -> Bool {
        var reader = Reader(bytes: bytes, position: 0, end: bytes.count)
        while reader.position < reader.end {
            guard let (field, wireType) = reader.tag() else { return false }
            if field == 2 && wireType == 2 {
                guard let length = reader.varint(), length <= UInt64(reader.end - reader.position) else { return false }
                var token = Reader(bytes: bytes, position: reader.position, end: reader.position + Int(length))
                reader.position += Int(length)
                var kind: UInt64 = 0 // proto3 leaves a default (NUL) out
                while token.position < token.end {
                    guard let (tokenField, tokenWire) = token.tag() else { return false }
                    if tokenField == 4 && tokenWire == 0 {
                        guard let value = token.varint() else { return false }
                        kind = value
                    } else if !token.skip(wireType: tokenWire) {
                        return false
                    }
                }
                guard kind <= UInt64(UInt32.max) else { return false }
                body(PgQuery__Token(rawValue: UInt32(kind)))
            } else if !reader.skip(wireType: wireType) {
                return false
            }
        }
        return true
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let end: Int

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < end && shift < 64 {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }

        mutating func tag() -> (field: UInt64, wireType: UInt64)? {
            guard let tag = varint() else { return nil }
            return (tag >> 3, tag & 7)
        }

        mutating func skip(wireType: UInt64) -> Bool {
            switch wireType {
            case 0: return varint() != nil
            case 1: position += 8
            case 2:
                guard let length = varint(), length <= UInt64(end - position) else { return false }
                position += Int(length)
            case 5: position += 4
            default: return false
            }
            return position <= end
        }
    }
}
