import CPortcullisShims
import EventLoop
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
    /// The seed of mock SCRAM salts for unknown users (see `mockAuthenticationSeed`).
    public let mockAuthenticationSeed: [UInt8]
    /// The file's 32 bytes: the backup master key (BackupFormat derives a key per backup from
    /// it with HKDF-SHA256). Package-visible only.
    package let material: [UInt8]

    public init(bytes: [UInt8]) throws(SecretKeyError) {
        guard bytes.count == Self.length else { throw SecretKeyError("a secret key is exactly \(Self.length) bytes, not \(bytes.count)") }
        material = bytes
        // PostgreSQL derives mock salts from a cluster-wide nonce made at initdb (pg_control's
        // mock_authentication_nonce, auth-scram.c scram_mock_salt); ours comes from this key,
        // under its own label, so it survives restarts and reveals nothing about the AES key.
        mockAuthenticationSeed = Crypto.hmacSHA256(key: bytes, data: Array("portcullis scram mock salt v1".utf8))
        var derived = [UInt8](repeating: 0, count: 32)
        let info = Array("portcullis aes-256-gcm".utf8)
        let salt = Array("portcullis".utf8)
        guard pc_hkdf_sha256(bytes, bytes.count, salt, salt.count, info, info.count, &derived, derived.count) == 1 else {
            throw SecretKeyError("HKDF failed")
        }
        aesKey = derived
    }

    public static func generateBytes() -> [UInt8] { Crypto.randomBytes(length) }

    /// Loads a key file; refuses a symbolic link (O_NOFOLLOW), anything but a regular file, a
    /// file owned by anyone but this process's user or root, one that group or others can
    /// read, or one of the wrong size (PostgreSQL's rule for ssl_key_file, be-secure-common.c
    /// check_ssl_key_file_permissions). The checks are made on the opened descriptor, so the
    /// file checked is the file read.
    public static func load(path: String) throws(SecretKeyError) -> SecretKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ELOOP { throw SecretKeyError("secret key file \"\(path)\" is a symbolic link; name the file itself") }
            throw SecretKeyError("could not access secret key file \"\(path)\": \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SecretKeyError("could not access secret key file \"\(path)\": \(String(cString: strerror(errno)))") }
        try checkOwnership(path: path, mode: st.st_mode, owner: st.st_uid, euid: geteuid())
        let bytes: [UInt8]?
        do throws(Errno) {
            bytes = try Descriptor.readAll(fd, limit: length)
        } catch {
            throw SecretKeyError("could not read secret key file \"\(path)\": \(error)")
        }
        guard let bytes, bytes.count == length else { throw SecretKeyError("secret key file \"\(path)\" must hold exactly \(length) bytes (portcullis keygen)") }
        return try SecretKey(bytes: bytes)
    }

    /// The pure part of `load`'s checks.
    static func checkOwnership(path: String, mode: mode_t, owner: uid_t, euid: uid_t) throws(SecretKeyError) {
        guard (mode & S_IFMT) == S_IFREG else { throw SecretKeyError("secret key file \"\(path)\" is not a regular file") }
        guard owner == euid || owner == 0 else {
            throw SecretKeyError("secret key file \"\(path)\" must be owned by the user running portcullis or root (owner uid \(owner))")
        }
        guard mode & 0o077 == 0 else {
            throw SecretKeyError("secret key file \"\(path)\" has group or world access; permissions must be u=rw (0600) or less")
        }
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
