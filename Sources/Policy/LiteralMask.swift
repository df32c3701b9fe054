/// A fast cache key for the plainest SQL texts: the text with every string and numeric
/// literal replaced by a marker byte, computed by a small scanner instead of libpg_query's
/// `pg_query_normalize` (which runs the whole grammar).
///
/// It is only trusted where it provably agrees with `pg_query_normalize`: when a shape is
/// first cached, ``normalizedForm(highestParameter:)`` rebuilds what `pg_query_normalize`
/// would print — each masked literal replaced by `$n`, numbered after the highest parameter
/// already in the text — and the fast key is stored only if that equals the real normalized
/// text byte for byte. So two texts with one fast key have one normalized key, and get the
/// decision the normalized cache would give them; any text the scanner does not fully
/// understand simply takes the slow path.
///
/// The scanner accepts printable ASCII and whitespace only, and gives up (nil) on anything
/// whose lexing depends on more context: quoted identifiers, dollar quoting, backslashes,
/// comments, prefixed strings (E'', B'', X'', N'', U&''), exponents, and `$` other than a
/// parameter `$n`.
struct LiteralMask: Equatable {
    /// The text with literals replaced by 0x01 (string) and 0x02 (number); these bytes never
    /// occur in an accepted text.
    let key: String
    /// Byte ranges of the masked literals in the original text, in order.
    let literals: [Range<Int>]
    /// The highest `$n` parameter in the text (0 if none).
    let highestParameter: Int
    private let original: [UInt8]

    init?(_ sql: String) {
        let bytes = Array(sql.utf8)
        var key: [UInt8] = []
        key.reserveCapacity(bytes.count)
        var literals: [Range<Int>] = []
        var highest = 0
        var i = 0
        func isIdentifierByte(_ b: UInt8) -> Bool {
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
        }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case 0x09, 0x0A, 0x0D, 0x20:
                key.append(b)
                i += 1
            case 0x22, 0x5C, 0x60: // " \ `
                return nil
            case 0x27: // '
                if i > 0 && (isIdentifierByte(bytes[i - 1]) || bytes[i - 1] == 0x26 || bytes[i - 1] == 0x27) { return nil }
                var j = i + 1
                while true {
                    guard j < bytes.count else { return nil }
                    if bytes[j] == 0x27 {
                        if j + 1 < bytes.count && bytes[j + 1] == 0x27 { j += 2; continue }
                        break
                    }
                    if bytes[j] < 0x20 && bytes[j] != 0x09 && bytes[j] != 0x0A && bytes[j] != 0x0D { return nil }
                    if bytes[j] > 0x7E || bytes[j] == 0x5C { return nil }
                    j += 1
                }
                literals.append(i..<(j + 1))
                key.append(0x01)
                i = j + 1
            case 0x30...0x39:
                var j = i
                while j < bytes.count && isDigit(bytes[j]) { j += 1 }
                if j + 1 < bytes.count && bytes[j] == 0x2E && isDigit(bytes[j + 1]) {
                    j += 1
                    while j < bytes.count && isDigit(bytes[j]) { j += 1 }
                }
                // 1e5, 1.x, 0x1F, 1_000, 12abc: lexed differently across versions — slow path.
                if j < bytes.count && (isIdentifierByte(bytes[j]) || bytes[j] == 0x2E || bytes[j] == 0x24) { return nil }
                if i > 0 && bytes[i - 1] == 0x2E { return nil }
                literals.append(i..<j)
                key.append(0x02)
                i = j
            case 0x24: // $n parameter
                var j = i + 1
                while j < bytes.count && isDigit(bytes[j]) { j += 1 }
                guard j > i + 1, j - i < 8 else { return nil }
                if j < bytes.count && (isIdentifierByte(bytes[j]) || bytes[j] == 0x24) { return nil }
                highest = max(highest, Int(String(decoding: bytes[(i + 1)..<j], as: UTF8.self)) ?? Int.max)
                key.append(contentsOf: bytes[i..<j])
                i = j
            case 0x41...0x5A, 0x61...0x7A, 0x5F:
                var j = i
                while j < bytes.count && isIdentifierByte(bytes[j]) { j += 1 }
                if j < bytes.count && (bytes[j] == 0x24 || bytes[j] == 0x27) { return nil }
                key.append(contentsOf: bytes[i..<j])
                i = j
            case 0x2D where i + 1 < bytes.count && bytes[i + 1] == 0x2D: // --
                return nil
            case 0x2F where i + 1 < bytes.count && bytes[i + 1] == 0x2A: // /*
                return nil
            case 0x21...0x7E:
                key.append(b)
                i += 1
            default:
                return nil
            }
        }
        self.key = String(decoding: key, as: UTF8.self)
        self.literals = literals
        highestParameter = highest
        original = bytes
    }

    /// What `pg_query_normalize` prints when it replaces exactly the masked literals.
    func normalizedForm() -> String {
        var out: [UInt8] = []
        out.reserveCapacity(original.count)
        var position = 0
        for (index, range) in literals.enumerated() {
            out.append(contentsOf: original[position..<range.lowerBound])
            out.append(contentsOf: Array("$\(highestParameter + index + 1)".utf8))
            position = range.upperBound
        }
        out.append(contentsOf: original[position...])
        return String(decoding: out, as: UTF8.self)
    }
}
