/// PostgreSQL's MD5 password scheme (PostgreSQL docs 21.5 "Password Authentication";
/// Protocol 55.2.2 AuthenticationMD5Password): the stored secret is
/// `"md5" + md5hex(password + username)` and the wire response to a 4-byte salt is
/// `"md5" + md5hex(md5hex(password + username) + salt)`.
public enum MD5Password {
    private static let prefix = "md5"

    /// The stored form `md5<32 hex>` of a cleartext password (as `pg_md5_encrypt`).
    public static func hash(user: String, password: String) -> String {
        prefix + Crypto.md5Hex(Array(password.utf8) + Array(user.utf8))
    }

    /// The PasswordMessage payload (without the trailing NUL) answering an MD5 challenge.
    /// `storedHash` is the `md5...` form from `hash(user:password:)`; a leading "md5" is
    /// stripped before hashing, as libpq does with its intermediate result.
    public static func response(storedHash: String, salt: [UInt8]) -> String {
        let hexPart = storedHash.hasPrefix(prefix) ? Array(storedHash.utf8.dropFirst(prefix.utf8.count)) : Array(storedHash.utf8)
        return prefix + Crypto.md5Hex(hexPart + salt)
    }

    /// Checks a client's MD5 response against a stored `md5...` hash in constant time
    /// (as PostgreSQL's `md5_crypt_verify`).
    public static func verify(clientResponse: String, storedHash: String, salt: [UInt8]) -> Bool {
        guard storedHash.hasPrefix(prefix), storedHash.utf8.count == prefix.utf8.count + 32 else { return false }
        return Crypto.constantTimeEquals(Array(response(storedHash: storedHash, salt: salt).utf8),
                                         Array(clientResponse.utf8))
    }
}
