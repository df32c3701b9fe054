import CPortcullisShims

/// The cryptographic primitives PostgreSQL password authentication needs, all provided by
/// OpenSSL 3's libcrypto (PostgreSQL's own `src/common/cryptohash_openssl.c` and
/// `hmac_openssl.c` use the same provider, so results match the server bit for bit).
///
/// Failures of OpenSSL for well-formed input mean a broken installation (e.g. a FIPS
/// provider without MD5), not bad input, so they stop the process instead of being thrown.
public enum Crypto {
    /// Length in bytes of a SHA-256 digest, and so of every SCRAM-SHA-256 key.
    public static let sha256Length = 32

    /// SHA-256 of `data` (SCRAM's `H()`, RFC 5802 section 2.2).
    public static func sha256(_ data: some Collection<UInt8>) -> [UInt8] {
        digest(Array(data), algorithm: EVP_sha256(), length: sha256Length, name: "SHA-256")
    }

    /// MD5 of `data` as 32 lowercase hex digits, the form PostgreSQL's `pg_md5_hash` produces
    /// (Protocol 55.3.2, AuthenticationMD5Password).
    public static func md5Hex(_ data: some Collection<UInt8>) -> String {
        hex(digest(Array(data), algorithm: EVP_md5(), length: 16, name: "MD5"))
    }

    /// HMAC-SHA-256 (SCRAM's `HMAC()`, RFC 5802 section 2.2), through the EVP_MAC interface.
    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: sha256Length)
        var outLength = 0
        // An empty key is a valid HMAC key; OpenSSL only needs a non-null pointer for it.
        let keyBytes: [UInt8] = key.isEmpty ? [0] : key
        let dataBytes: [UInt8] = data.isEmpty ? [0] : data
        let produced = keyBytes.withUnsafeBytes { keyBuffer in
            dataBytes.withUnsafeBufferPointer { dataBuffer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    EVP_Q_mac(nil, "HMAC", nil, "SHA256", nil,
                              keyBuffer.baseAddress, key.count,
                              dataBuffer.baseAddress, data.count,
                              outBuffer.baseAddress, outBuffer.count, &outLength)
                }
            }
        }
        guard produced != nil, outLength == sha256Length else {
            fatalError("OpenSSL HMAC-SHA256 failed")
        }
        return out
    }

    /// PBKDF2 with HMAC-SHA-256 and a 32-byte output: SCRAM's `Hi(str, salt, i)`
    /// (RFC 5802 section 2.2, RFC 7677), which is exactly PBKDF2 with dkLen = hash length.
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        guard let out = pbkdf2SHA256(password: password, salt: salt, iterations: iterations, while: { true }) else {
            fatalError("OpenSSL PBKDF2-HMAC-SHA256 failed")
        }
        return out
    }

    /// Iterations run between two looks at `keepGoing`: a millisecond or two.
    static let pbkdf2Step = 4096

    /// ``pbkdf2SHA256(password:salt:iterations:)`` that asks `keepGoing` every
    /// ``pbkdf2Step`` iterations and gives up (nil) once it says no: a count a role chose
    /// (PostgreSQL accepts up to INT_MAX, tens of minutes) need not run on after nobody wants
    /// the result. The iterations are OpenSSL's own (``pc_pbkdf2_sha256_step``, as its
    /// PKCS5_PBKDF2_HMAC runs them), so the cost per iteration is the same.
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, while keepGoing: () -> Bool) -> [UInt8]? {
        precondition(iterations >= 1 && iterations <= Int(Int32.max), "PBKDF2 iteration count out of range")
        // Non-null buffers even when empty: a null key would mean "keep the previous key".
        let passwordBytes: [UInt8] = password.isEmpty ? [0] : password
        let saltBytes: [UInt8] = salt.isEmpty ? [0] : salt
        let started = passwordBytes.withUnsafeBufferPointer { passwordBuffer in
            saltBytes.withUnsafeBufferPointer { saltBuffer in
                pc_pbkdf2_sha256_start(passwordBuffer.baseAddress, password.count, saltBuffer.baseAddress, salt.count)
            }
        }
        guard let state = started else { fatalError("OpenSSL PBKDF2-HMAC-SHA256 failed") }
        defer { pc_pbkdf2_sha256_free(state) }
        var remaining = iterations - 1
        while remaining > 0 {
            guard keepGoing() else { return nil }
            let step = min(remaining, pbkdf2Step)
            guard pc_pbkdf2_sha256_step(state, step) == 1 else { fatalError("OpenSSL PBKDF2-HMAC-SHA256 failed") }
            remaining -= step
        }
        var out = [UInt8](repeating: 0, count: sha256Length)
        out.withUnsafeMutableBufferPointer { pc_pbkdf2_sha256_result(state, $0.baseAddress) }
        return out
    }

    /// `count` bytes from OpenSSL's CSPRNG (as PostgreSQL's `pg_strong_random`).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0 && count <= Int(Int32.max))
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let status = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard status == 1 else { fatalError("OpenSSL RAND_bytes failed: no secure randomness available") }
        return out
    }

    /// Compares two byte strings in time that depends only on their length, so an attacker
    /// cannot learn how many leading bytes of a proof or signature were right.
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard !lhs.isEmpty else { return true }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }

    /// Lowercase hexadecimal rendering of `bytes`.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func digest(_ bytes: [UInt8], algorithm: OpaquePointer?, length: Int, name: String) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        var outLength: UInt32 = 0
        let input: [UInt8] = bytes.isEmpty ? [0] : bytes
        let status = input.withUnsafeBytes { inputBuffer in
            out.withUnsafeMutableBufferPointer { output in
                EVP_Digest(inputBuffer.baseAddress, bytes.count, output.baseAddress, &outLength, algorithm, nil)
            }
        }
        guard status == 1, Int(outLength) == length else { fatalError("OpenSSL \(name) digest failed") }
        return out
    }
}
