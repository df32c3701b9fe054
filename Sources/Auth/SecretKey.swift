import CPortcullisShims
import Glibc

public struct SecretKeyError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The key that protects secrets at rest (`enc:` values in the configuration). It lives in its
/// own file, outside the configuration, readable by its owner only (like PostgreSQL's rule for
/// ssl_key_file). Values are AES-256-GCM with a per-value random nonce, under a key derived with
/// HKDF-SHA256 from the file's 32 bytes: `enc:v1:<base64(nonce ‖ ciphertext ‖ tag)>`.
public struct SecretKey: Sendable {
    public static let length = 32
    static let prefix = "enc:v1:"
    static let associatedData = Array("portcullis secret v1".utf8)
    private let aesKey: [UInt8]

    public init(bytes: [UInt8]) throws(SecretKeyError) {
        guard bytes.count == Self.length else { throw SecretKeyError("a secret key is exactly \(Self.length) bytes, not \(bytes.count)") }
        var derived = [UInt8](repeating: 0, count: 32)
        let info = Array("portcullis aes-256-gcm".utf8)
        let salt = Array("portcullis".utf8)
        guard pc_hkdf_sha256(bytes, bytes.count, salt, salt.count, info, info.count, &derived, derived.count) == 1 else {
            throw SecretKeyError("HKDF failed")
        }
        aesKey = derived
    }

    public static func generateBytes() -> [UInt8] { Crypto.randomBytes(length) }

    /// Loads a key file; refuses one that group or others can read, or of the wrong size.
    public static func load(path: String) throws(SecretKeyError) -> SecretKey {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SecretKeyError("could not access secret key file \"\(path)\": \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SecretKeyError("secret key file \"\(path)\" is not a regular file") }
        guard st.st_mode & 0o077 == 0 else {
            throw SecretKeyError("secret key file \"\(path)\" has group or world access; permissions must be u=rw (0600) or less")
        }
        guard let file = fopen(path, "rb") else { throw SecretKeyError("could not open secret key file \"\(path)\"") }
        defer { fclose(file) }
        var bytes = [UInt8](repeating: 0, count: length + 1)
        let n = fread(&bytes, 1, bytes.count, file)
        guard n == length else { throw SecretKeyError("secret key file \"\(path)\" must hold exactly \(length) bytes (portcullis keygen)") }
        return try SecretKey(bytes: Array(bytes.prefix(length)))
    }

    public static func isEncrypted(_ value: String) -> Bool { value.hasPrefix("enc:") }

    public func encrypt(_ plaintext: String) -> String {
        let input = Array(plaintext.utf8)
        let nonce = Crypto.randomBytes(12)
        var ciphertext = [UInt8](repeating: 0, count: input.count)
        var tag = [UInt8](repeating: 0, count: 16)
        let ok = pc_aes256gcm_seal(aesKey, nonce, Self.associatedData, Self.associatedData.count, input, input.count, &ciphertext, &tag)
        precondition(ok == 1, "AES-256-GCM encryption failed")
        return Self.prefix + Base64.encode(nonce + ciphertext + tag)
    }

    /// The plaintext, or an error that never contains the value.
    public func decrypt(_ value: String) throws(SecretKeyError) -> String {
        guard value.hasPrefix(Self.prefix) else { throw SecretKeyError("unsupported encrypted value format (expected enc:v1:)") }
        guard let blob = Base64.decode(String(value.dropFirst(Self.prefix.count))), blob.count >= 28 else {
            throw SecretKeyError("encrypted value is not valid base64 of nonce, ciphertext and tag")
        }
        let nonce = Array(blob.prefix(12))
        let tag = Array(blob.suffix(16))
        let ciphertext = Array(blob.dropFirst(12).dropLast(16))
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count)
        guard pc_aes256gcm_open(aesKey, nonce, Self.associatedData, Self.associatedData.count, ciphertext, ciphertext.count, tag, &plaintext) == 1 else {
            throw SecretKeyError("encrypted value does not decrypt with this key (wrong secret_key_file, or the value was altered)")
        }
        guard let text = String(validating: plaintext, as: UTF8.self) else { throw SecretKeyError("decrypted value is not UTF-8") }
        return text
    }
}
