/// Standard base64 (RFC 4648 section 4, with `=` padding), the encoding SCRAM uses for salts,
/// proofs, signatures and channel-binding data (RFC 5802 section 7) and PostgreSQL uses in
/// `SCRAM-SHA-256$...` secrets.
///
/// Decoding is strict: no whitespace, no missing or extra padding, and the unused low bits of
/// the final group must be zero, so every byte string has exactly one accepted encoding.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: encodeToBytes(bytes), as: UTF8.self)
    }

    /// The encoding as ASCII bytes, for building SCRAM messages without a String round trip.
    public static func encodeToBytes(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= input.count {
            let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(alphabet[Int(group >> 6 & 63)])
            out.append(alphabet[Int(group & 63)])
            index += 3
        }
        let remaining = input.count - index
        if remaining > 0 {
            var group = UInt32(input[index]) << 16
            if remaining == 2 { group |= UInt32(input[index + 1]) << 8 }
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(remaining == 2 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return out
    }

    public static func decode(_ text: String) -> [UInt8]? {
        decode(bytes: Array(text.utf8))
    }

    /// Decodes ASCII base64; nil when the input is not canonical padded base64.
    public static func decode(bytes input: some Collection<UInt8>) -> [UInt8]? {
        let text = Array(input)
        guard text.count % 4 == 0 else { return nil }
        let equals = UInt8(ascii: "=")
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            var padding = 0
            if index + 4 == text.count, text[index + 3] == equals {
                padding = text[index + 2] == equals ? 2 : 1
            }
            var group: UInt32 = 0
            for offset in 0..<(4 - padding) {
                let value = decodeTable[Int(text[index + offset])]
                guard value != 0xff else { return nil }
                group = group << 6 | UInt32(value)
            }
            if padding == 0 {
                out.append(UInt8(group >> 16 & 0xff))
                out.append(UInt8(group >> 8 & 0xff))
                out.append(UInt8(group & 0xff))
            } else if padding == 1 {
                guard group & 0x3 == 0 else { return nil }
                out.append(UInt8(group >> 10 & 0xff))
                out.append(UInt8(group >> 2 & 0xff))
            } else {
                guard group & 0xf == 0 else { return nil }
                out.append(UInt8(group >> 4 & 0xff))
            }
            index += 4
        }
        return out
    }
}
