/// A PostgreSQL SCRAM-SHA-256 secret, as stored in `pg_authid.rolpassword` and accepted by
/// `ALTER ROLE ... PASSWORD` (PostgreSQL docs 21.5 "Password Authentication"; format from
/// `src/backend/libpq/auth-scram.c`): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
/// with salt and keys in base64.
public struct SCRAMVerifier: Equatable, Sendable {
    public static let scheme = "SCRAM-SHA-256"
    /// PostgreSQL's defaults (`SCRAM_DEFAULT_SALT_LEN`, `SCRAM_SHA_256_DEFAULT_ITERATIONS`).
    public static let defaultSaltLength = 16
    public static let defaultIterations = 4096

    public let iterations: Int
    public let salt: [UInt8]
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    /// Keys must be 32 bytes (SHA-256) and iterations at least 1.
    public init?(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        guard iterations >= 1, iterations <= Int(Int32.max),
              storedKey.count == Crypto.sha256Length, serverKey.count == Crypto.sha256Length else { return nil }
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Parses the stored form. Stricter than PostgreSQL's `parse_scram_secret` only in refusing
    /// iteration counts below 1 (which no client could complete anyway: libpq refuses them).
    public init?(parsing text: String) {
        let sections = text.split(separator: "$", omittingEmptySubsequences: false)
        guard sections.count == 3, sections[0] == Self.scheme else { return nil }
        let parameters = sections[1].split(separator: ":", omittingEmptySubsequences: false)
        let keys = sections[2].split(separator: ":", omittingEmptySubsequences: false)
        guard parameters.count == 2, keys.count == 2,
              parameters[0].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let iterations = Int(parameters[0]),
              let salt = Base64.decode(bytes: parameters[1].utf8),
              let storedKey = Base64.decode(bytes: keys[0].utf8),
              let serverKey = Base64.decode(bytes: keys[1].utf8) else { return nil }
        self.init(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }

    /// The stored form, suitable for `ALTER ROLE ... PASSWORD '<text>'`.
    public var text: String {
        "\(Self.scheme)$\(iterations):\(Base64.encode(salt))$\(Base64.encode(storedKey)):\(Base64.encode(serverKey))"
    }

    /// Whether `keys` (from ``SCRAMKeyDerivation/checking(password:against:)``) are this
    /// verifier's: auth-scram.c `scram_verify_plain_password` compares the ServerKey; both
    /// keys are compared here, in constant time.
    public func matches(_ keys: SCRAMKeys) -> Bool {
        Crypto.constantTimeEquals(keys.storedKey, storedKey) && Crypto.constantTimeEquals(keys.serverKey, serverKey)
    }

    /// Derives a verifier from a cleartext password as PostgreSQL's `pg_be_scram_build_secret`
    /// and libpq's `PQencryptPasswordConn` do (password normalised per `SCRAMPassword`).
    /// Runs PBKDF2 on the calling thread: for the command line and tests, never an event loop.
    public static func make(password: String,
                            salt: [UInt8] = Crypto.randomBytes(SCRAMVerifier.defaultSaltLength),
                            iterations: Int = SCRAMVerifier.defaultIterations) -> SCRAMVerifier {
        let keys = SCRAMKeys(password: SCRAMPassword.normalized(password), salt: salt, iterations: iterations)
        guard let verifier = SCRAMVerifier(iterations: iterations, salt: salt,
                                           storedKey: keys.storedKey, serverKey: keys.serverKey) else {
            preconditionFailure("SCRAM iteration count must be between 1 and \(Int32.max)")
        }
        return verifier
    }
}

/// The key hierarchy of RFC 5802 section 3 for SCRAM-SHA-256 (password-equivalent: handled
/// as the password it comes from).
public struct SCRAMKeys: Sendable {
    public let clientKey: [UInt8]
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    init(password: [UInt8], salt: [UInt8], iterations: Int) {
        self.init(saltedPassword: Crypto.pbkdf2SHA256(password: password, salt: salt, iterations: iterations))
    }

    /// Nil when `keepGoing` said stop before the derivation ended
    /// (``Crypto/pbkdf2SHA256(password:salt:iterations:while:)``).
    init?(password: [UInt8], salt: [UInt8], iterations: Int, while keepGoing: () -> Bool) {
        guard let salted = Crypto.pbkdf2SHA256(password: password, salt: salt, iterations: iterations, while: keepGoing) else {
            return nil
        }
        self.init(saltedPassword: salted)
    }

    private init(saltedPassword: [UInt8]) {
        clientKey = Crypto.hmacSHA256(key: saltedPassword, data: Array("Client Key".utf8))
        storedKey = Crypto.sha256(clientKey)
        serverKey = Crypto.hmacSHA256(key: saltedPassword, data: Array("Server Key".utf8))
    }

    init(clientKey: [UInt8], serverKey: [UInt8]) {
        self.clientKey = clientKey
        storedKey = Crypto.sha256(clientKey)
        self.serverKey = serverKey
    }
}

/// Password normalisation before key derivation.
///
/// PostgreSQL runs SASLprep (RFC 4013) on the password and, when that fails because the
/// password is not valid UTF-8 or contains prohibited characters, uses the raw bytes
/// (`auth-scram.c` header comment, `pg_saslprep` in `src/common/saslprep.c`).
///
/// Implemented here: pure-ASCII passwords are used unchanged, which is exactly what
/// `pg_saslprep` does for them. NOT implemented: the SASLprep mapping and NFKC
/// normalisation of non-ASCII passwords; those are used as raw UTF-8 bytes, which is what
/// PostgreSQL does when SASLprep fails. For non-ASCII passwords that are already in NFKC
/// form and contain no mapped characters (non-ASCII spaces, soft hyphens, zero-width
/// characters) this matches PostgreSQL; for others a PostgreSQL-made verifier and ours differ.
enum SCRAMPassword {
    static func normalized(_ password: String) -> [UInt8] {
        Array(password.utf8)
    }
}
