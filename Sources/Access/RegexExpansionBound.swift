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
/// repetition multiplies its atom by its largest count) against `maxUnits`, which is lower
/// than PostgreSQL's limit: a few hundred kilobytes of compiled regex at most, and about 200
/// times the size of a typical `^(.*)@example\.com$`.
enum RegexExpansionBound {
    /// DUPMAX in src/include/regex/regcustom.h.
    static var maxCount: Int { 255 }
    static var maxUnits: Int { 4096 }

    private struct Frame {
        var alternatives = 0
        var branch = 0
        var lastAtom = 0
    }

    /// nil when the pattern is within both limits.
    static func refusal(_ pattern: String) -> RegexCompileError? {
        let bytes = Array(pattern.utf8)
        var stack = [Frame()]
        var index = 0
        // Saturates just above the limit, so no product overflows.
        func capped(_ value: Int) -> Int { min(value, maxUnits + 1) }
        func addAtom(_ size: Int) {
            stack[stack.count - 1].lastAtom = size
            stack[stack.count - 1].branch = capped(stack[stack.count - 1].branch + size)
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
                addAtom(1)
                index += 2
            case UInt8(ascii: "["):
                addAtom(1)
                index = AdvancedRegexTranslation.scanBracketExpression(bytes, from: index).end
            case UInt8(ascii: "("):
                stack.append(Frame())
                index += 1
            case UInt8(ascii: ")") where stack.count > 1:
                let group = stack.removeLast()
                addAtom(capped(group.alternatives + group.branch + 1))
                index += 1
            case UInt8(ascii: "|"):
                let frame = stack[stack.count - 1]
                stack[stack.count - 1] = Frame(alternatives: capped(frame.alternatives + frame.branch))
                index += 1
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
                repeatLast(2)
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
                repeatLast(max(low, high ?? low + 1, 1))
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
