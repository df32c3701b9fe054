/// Generators for the nesting-bound property tests in DepthTests.

/// Random SQL expressions over the constructs ``NestingBound`` distinguishes: brackets, CASE,
/// sub-selects, operators, casts, AND/OR (separators), BETWEEN … AND, set operations and joins.
struct RandomExpressions {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    private mutating func next(_ bound: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(bound))
    }

    mutating func statement() -> String {
        var parts = ["select \(expression(depth: 0))"]
        if next(2) == 0 { parts.append(", \(expression(depth: 0))") }
        parts.append(" from t")
        for _ in 0..<next(4) { parts.append(" join t on \(expression(depth: 0))") }
        if next(2) == 0 { parts.append(" where \(expression(depth: 0))") }
        var sql = parts.joined()
        for _ in 0..<next(3) { sql += " union select \(expression(depth: 0)), \(expression(depth: 0))" }
        return sql
    }

    /// An operand of a non-associative operator (BETWEEN, IS, IN): bracketed unless a leaf or a
    /// call, so that most generated statements parse.
    mutating func operand(depth: Int) -> String {
        let text = expression(depth: depth)
        return text.contains(" ") && !text.hasPrefix("abs(") ? "(\(text))" : text
    }

    mutating func expression(depth: Int) -> String {
        if depth > 5 || next(3) == 0 { return ["1", "a", "'x'", "true", "$1"][next(5)] }
        let d = depth + 1
        switch next(14) {
        case 0: return "\(expression(depth: d)) + \(expression(depth: d))"
        case 1: return "(\(expression(depth: d)))"
        case 2: return "\(expression(depth: d)) and \(expression(depth: d))"
        case 3: return "\(expression(depth: d)) or \(expression(depth: d))"
        case 4: return "not \(expression(depth: d))"
        case 5: return "case when \(expression(depth: d)) then \(expression(depth: d)) else \(expression(depth: d)) end"
        case 6: return "(select \(expression(depth: d)) from t where \(expression(depth: d)))"
        case 7: return "\(expression(depth: d))::int"
        case 8: return "abs(\(expression(depth: d)), \(expression(depth: d)))"
        case 9: return "\(operand(depth: d)) between \(operand(depth: d)) and \(operand(depth: d))"
        case 10: return "array[\(expression(depth: d)), \(expression(depth: d))]"
        case 11: return "\(operand(depth: d)) is not true"
        case 12: return "\(operand(depth: d)) in (\(expression(depth: d)), \(expression(depth: d)))"
        default: return "exists (select 1 from t join t u on \(expression(depth: d)) union select 2)"
        }
    }
}

/// Random whole statements over most of SELECT's grammar: joins with and without parentheses,
/// LATERAL, set operations, WITH, VALUES, window frames (BETWEEN … AND), GROUP BY ROLLUP,
/// ORDER BY USING, COLLATE, AT TIME ZONE, field selection, subscripts, casts, OPERATOR(…), CASE
/// with AND/OR inside, sub-selects everywhere an expression goes.
struct RandomStatements {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    private mutating func next(_ bound: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(bound))
    }
    private mutating func from(depth: Int) -> String {
        let d = depth + 1
        switch next(7) {
        case 0: return "t"
        case 1: return "t join t on \(e(d)) and \(e(d))"
        case 2: return "t join t join t on \(e(d)) on \(e(d))"
        case 3: return "(\(select(d))) s"
        case 4: return "t natural join t cross join t"
        case 5: return "lateral (\(select(d))) x, t"
        default: return "t, t left join t using (a)"
        }
    }
    mutating func select(_ depth: Int) -> String {
        let d = depth + 1
        var s = "select \(e(d)), \(e(d)) from \(from(depth: d))"
        if next(2) == 0 { s += " where \(e(d)) or \(e(d)) and \(e(d))" }
        if next(3) == 0 { s += " group by rollup(a, \(e(d))) having \(e(d))" }
        for _ in 0..<next(3) { s += [" union all ", " intersect ", " except "][next(3)] + "select \(e(d)), \(e(d)) from t" }
        if next(3) == 0 { s += " order by \(e(d)) using <, a" }
        if next(3) == 0 { s = "with w as (\(select(d))), v as (values (\(e(d))), (\(e(d)))) " + s }
        return s
    }
    private mutating func p(_ d: Int) -> String {
        let x = e(d)
        return x.contains(" ") ? "(\(x))" : x
    }
    private mutating func e(_ depth: Int) -> String {
        if depth > 5 || next(3) == 0 { return ["1", "a", "'x'", "true", "$1", "t.a", "null"][next(7)] }
        let d = depth + 1
        switch next(26) {
        case 0: return "\(e(d)) - \(e(d)) * \(e(d))"
        case 1: return "\(p(d)) collate \"C\""
        case 2: return "\(p(d)) at time zone 'utc'"
        case 3: return "row(\(e(d)), \(e(d)))"
        case 4: return "(\(p(d))).f"
        case 5: return "sum(\(e(d))) over (partition by \(e(d)) order by \(e(d)) rows between unbounded preceding and current row)"
        case 6: return "exists (\(select(d)))"
        case 7: return "\(p(d)) = any(array[\(e(d)), \(e(d))])"
        case 8: return "\(p(d)) like \(p(d)) escape 'x'"
        case 9: return "\(p(d)) is distinct from \(p(d))"
        case 10: return "coalesce(\(e(d)), \(e(d)))"
        case 11: return "case \(p(d)) when \(e(d)) then \(e(d)) and \(e(d)) else \(e(d)) or \(e(d)) end"
        case 12: return "\(p(d)) not between symmetric \(p(d)) and \(p(d))"
        case 13: return "interval '1' day"
        case 14: return "cast(\(e(d)) as int)"
        case 15: return "\(p(d))[1]"
        case 16: return "- \(p(d))"
        case 17: return "\(p(d)) ->> 'a'"
        case 18: return "(\(select(d)))"
        case 19: return "\(p(d)) in (\(select(d)))"
        case 20: return "not \(p(d)) and not \(p(d))"
        case 21: return "\(p(d))::int[]::text"
        case 22: return "\(p(d)) is not true"
        case 23: return "array(\(select(d)))"
        case 24: return "\(e(d)) || \(e(d)) || \(e(d))"
        default: return "\(p(d)) operator(pg_catalog.+) \(p(d))"
        }
    }
}
