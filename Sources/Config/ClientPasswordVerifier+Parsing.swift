extension ClientPasswordVerifier {
    /// SHA-256 output length: StoredKey and ServerKey are both this long.
    static let scramKeyLength = 32

    /// Parses a stored verifier the way PostgreSQL's get_password_type and parse_scram_secret
    /// (src/backend/libpq/auth-scram.c) recognise them. Messages never repeat the input,
    /// because a mistyped verifier may be a plaintext password.
    static func parse(_ text: String) throws(SettingError) -> ClientPasswordVerifier {
        if text.hasPrefix("SCRAM-SHA-256$") {
            return try parseSCRAM(text)
        }
        let md5Digits = Set("0123456789abcdef")
        if text.hasPrefix("md5"), text.count == 35, text.dropFirst(3).allSatisfy({ md5Digits.contains($0) }) {
            return .md5(text)
        }
        throw SettingError(
            "password must be a SCRAM-SHA-256 verifier or an md5 hash; plaintext passwords are refused "
                + "(generate a verifier with `portcullis scram-verifier`)")
    }

    private static func parseSCRAM(_ text: String) throws(SettingError) -> ClientPasswordVerifier {
        func malformed(_ why: String) -> SettingError {
            SettingError("password is not a valid SCRAM-SHA-256 verifier: \(why)")
        }
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw malformed("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
        }
        let iterationsAndSalt = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        let keys = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard iterationsAndSalt.count == 2, keys.count == 2 else {
            throw malformed("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
        }
        guard iterationsAndSalt[0].allSatisfy({ $0.isASCII && $0.isNumber }),
            let iterations = Int32(iterationsAndSalt[0]), iterations > 0
        else {
            throw malformed("iteration count must be a positive integer")
        }
        guard let salt = Base64.decode(iterationsAndSalt[1]), !salt.isEmpty else {
            throw malformed("salt is not valid base64")
        }
        guard let storedKey = Base64.decode(keys[0]), storedKey.count == scramKeyLength else {
            throw malformed("StoredKey must be \(scramKeyLength) bytes of base64")
        }
        guard let serverKey = Base64.decode(keys[1]), serverKey.count == scramKeyLength else {
            throw malformed("ServerKey must be \(scramKeyLength) bytes of base64")
        }
        return .scramSHA256(iterations: Int(iterations), salt: salt, storedKey: storedKey, serverKey: serverKey)
    }
}

/// Standard base64 (RFC 4648 section 4) with mandatory padding, as PostgreSQL writes it.
enum Base64 {
    static func decode(_ text: Substring) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count / 4 * 3)
        var index = 0
        while index < bytes.count {
            let isLastGroup = index + 4 == bytes.count
            var values: [UInt8] = []
            var padding = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                if byte == UInt8(ascii: "=") {
                    // Padding is only legal in the last two positions of the final group.
                    guard isLastGroup, offset >= 2 else { return nil }
                    padding += 1
                    continue
                }
                guard padding == 0, let value = sextet(byte) else { return nil }
                values.append(value)
            }
            let group = values.reduce(UInt32(0)) { ($0 << 6) | UInt32($1) } << (6 * UInt32(padding))
            output.append(UInt8(truncatingIfNeeded: group >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: group >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: group)) }
            index += 4
        }
        return output
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
