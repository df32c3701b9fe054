/// The size guard PostgreSQL's regex compiler has and glibc's lacks.
///
/// glibc's regcomp copies a sub-expression once per count of a bounded repetition and accepts
/// counts up to 32767, so the 12 bytes `(a{1,32767})` take gigabytes to compile and
/// `((a{1,255}){1,255}){1,255}` likewise (the access fuzzer found this as an out-of-memory; a
/// reload with such a pg_hba.conf line would take the proxy down). PostgreSQL refuses counts
/// above 255 (DUPMAX in src/include/regex/regcustom.h, REG_BADBR "invalid repetition count(s)")
/// and stops compiling when its NFA outgrows REG_MAX_COMPILE_SPACE (REG_ETOOBIG "regular
/// expression is too complex"). Both are checked here on the translated ERE before regcomp:
/// the first exactly as PostgreSQL does, the second as an estimate of the expanded size (each
/// repetition multiplies its atom by its largest count; groups and alternatives weigh more,
/// see `groupCost`) against `maxUnits`, which is far lower than PostgreSQL's limit but about
/// 40 times the size of a typical `^(.*)@example\.com$` (22 units).
///
/// A third refusal has no PostgreSQL counterpart: a repetition count (`{m}`, `{m,}`, `{m,n}`
/// with a maximum above 1) on something that can match the empty string. glibc's compile time
/// doubles with each count there: `(x?|){16,}` takes 0.2 s, `(x?|){29,}` longer than 20 s.
/// `*`, `+` and `?` on such atoms stay allowed (they compile at once).
///
/// And a fourth: nested repetition, a quantifier allowing more than one (`*`, `+`, `{m,n}`)
/// on something that already holds one (`(a+)*`, `([a-z]+\.)+`, `a{2}{3}`; `?` is not a
/// repetition here, so `(.*\.)?` is fine). glibc finds submatches by backtracking, so with it
/// a pg_ident.conf line using `\1` took longer than a minute on a 64-byte system user name —
/// a name the client chooses.
enum RegexExpansionBound {
    /// DUPMAX in src/include/regex/regcustom.h.
    static var maxCount: Int { 255 }
    static var maxUnits: Int { 1000 }
    /// A group is three of glibc's nodes (open, close, the sub-expression) and an alternative
    /// one more; both can match the empty string, and glibc's epsilon closures (for each node,
    /// every node it reaches without consuming input) grow with the square of such runs: at one
    /// unit each, `((|){64}){63}` stayed under the bound and took about 1 GB to compile.
    static var groupCost: Int { 3 }
    static var alternativeCost: Int { 2 }

    private struct Frame {
        var alternatives = 0
        var branch = 0
        var lastAtom = 0
        /// Whether some finished alternative of this group can match the empty string.
        var someAlternativeNullable = false
        /// Whether the current branch, without its last atom, can match the empty string.
        var prefixNullable = true
        var lastAtomNullable = true
        var branchNullable: Bool { prefixNullable && lastAtomNullable }
        /// Whether the last atom repeats (or holds something that repeats) more than once.
        var lastAtomRepeats = false
        /// Whether anything in this group so far repeats more than once.
        var containsRepetition = false
    }

    /// nil when the pattern is within the limits.
    static func refusal(_ pattern: String) -> RegexCompileError? {
        let bytes = Array(pattern.utf8)
        var stack = [Frame()]
        var index = 0
        // Saturates just above the limit, so no product overflows.
        func capped(_ value: Int) -> Int { min(value, maxUnits + 1) }
        func addAtom(_ size: Int, nullable: Bool = false, repeats: Bool = false) {
            let frame = stack[stack.count - 1]
            stack[stack.count - 1].prefixNullable = frame.branchNullable
            stack[stack.count - 1].lastAtomNullable = nullable
            stack[stack.count - 1].lastAtomRepeats = repeats
            if repeats { stack[stack.count - 1].containsRepetition = true }
            stack[stack.count - 1].lastAtom = size
            stack[stack.count - 1].branch = capped(frame.branch + size)
        }
        /// A quantifier whose maximum is above one; nil, or the refusal of a nested one.
        func markRepeating() -> RegexCompileError? {
            if stack[stack.count - 1].lastAtomRepeats {
                return RegexCompileError(message: "nested repetition (as in \"(a+)*\") is not supported by Portcullis")
            }
            stack[stack.count - 1].lastAtomRepeats = true
            stack[stack.count - 1].containsRepetition = true
            return nil
        }
        func repeatLast(_ factor: Int) {
            let frame = stack[stack.count - 1]
            let grown = capped(frame.lastAtom * factor)
            stack[stack.count - 1].branch = capped(frame.branch - frame.lastAtom + grown)
            stack[stack.count - 1].lastAtom = grown
        }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"):
                // In the translated pattern only glibc's word anchors match no character.
                let next = index + 1 < bytes.count ? bytes[index + 1] : 0
                addAtom(1, nullable: Set("<>bB`'".utf8).contains(next))
                index += 2
            case UInt8(ascii: "^"), UInt8(ascii: "$"):
                addAtom(1, nullable: true)
                index += 1
            case UInt8(ascii: "["):
                addAtom(1)
                index = AdvancedRegexTranslation.scanBracketExpression(bytes, from: index).end
            case UInt8(ascii: "("):
                stack.append(Frame())
                index += 1
            case UInt8(ascii: ")") where stack.count > 1:
                let group = stack.removeLast()
                addAtom(capped(group.alternatives + group.branch + groupCost),
                        nullable: group.someAlternativeNullable || group.branchNullable, repeats: group.containsRepetition)
                index += 1
            case UInt8(ascii: "|"):
                let frame = stack[stack.count - 1]
                stack[stack.count - 1] = Frame(alternatives: capped(frame.alternatives + frame.branch + alternativeCost),
                                               someAlternativeNullable: frame.someAlternativeNullable || frame.branchNullable,
                                               containsRepetition: frame.containsRepetition)
                index += 1
            case UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "+"):
                if bytes[index] != UInt8(ascii: "?"), let refusal = markRepeating() { return refusal }
                repeatLast(2)
                if bytes[index] != UInt8(ascii: "+") { stack[stack.count - 1].lastAtomNullable = true }
                index += 1
            case UInt8(ascii: "{"):
                guard let (low, high, end) = bound(bytes, from: index) else {
                    addAtom(1)
                    index += 1
                    continue
                }
                if low > maxCount || (high ?? 0) > maxCount {
                    return RegexCompileError(message: "invalid repetition count(s)")
                }
                if stack[stack.count - 1].lastAtomNullable, (high ?? Int.max) > 1 {
                    return RegexCompileError(message: "a repetition count on what can match the empty string (as in "
                                             + "\"(a?){20,}\") is not supported by Portcullis")
                }
                if (high ?? Int.max) > 1, let refusal = markRepeating() { return refusal }
                repeatLast(max(low, high ?? low + 1, 1))
                if low == 0 { stack[stack.count - 1].lastAtomNullable = true }
                index = end
            default:
                addAtom(1)
                index += 1
            }
            if let frame = stack.last, frame.alternatives + frame.branch > maxUnits {
                return RegexCompileError(message: "regular expression is too complex")
            }
        }
        return nil
    }

    /// `{m}`, `{m,}`, `{m,n}`, `{,n}` or `{,}` at `start`: the counts (saturated) and the index after `}`.
    private static func bound(_ bytes: [UInt8], from start: Int) -> (Int, Int?, Int)? {
        var index = start + 1
        func number() -> Int? {
            var value: Int?
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                value = min((value ?? 0) * 10 + Int(bytes[index] - UInt8(ascii: "0")), 1_000_000)
                index += 1
            }
            return value
        }
        // glibc reads `{,n}` as `{0,n}` and `{,}` as `*`.
        let low = number()
        var high = low
        if index < bytes.count, bytes[index] == UInt8(ascii: ",") {
            index += 1
            high = number()
        } else if low == nil {
            return nil
        }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "}") else { return nil }
        return (low ?? 0, high, index + 1)
    }
}
