import Auth
import Config
import Glibc
import EventLoop

/// The seed of mock SCRAM salts for unknown users. PostgreSQL's scram_mock_salt hashes the
/// user name with the cluster's mock_authentication_nonce (pg_control, made once at initdb),
/// so a user that does not exist gets the same salt on every attempt and across restarts, and
/// cannot be told from one that does by reconnecting after a restart. Ours comes from a
/// persistent secret too, in this order:
/// 1. `secret_key_file` (HMAC under its own label; see `SecretKey.mockAuthenticationSeed`);
/// 2. the client TLS private key file (HMAC over its bytes under a label);
/// 3. neither: random for the life of the process (logged as a warning at start).
enum MockSeed {
    enum Source: Equatable {
        case secretKeyFile(String)
        case tlsKeyFile(String)
        case random
    }

    static let label = Array("portcullis scram mock salt v1".utf8)

    static func derive(_ config: PortcullisConfig) -> (seed: [UInt8], source: Source) {
        if let path = config.general.secretKeyFile, !path.isEmpty, let key = try? SecretKey.load(path: path) {
            return (key.mockAuthenticationSeed, .secretKeyFile(path))
        }
        if config.tls.mode != .disable, let path = config.tls.keyFile, let bytes = readSmallFile(path), !bytes.isEmpty {
            return (Crypto.hmacSHA256(key: Crypto.sha256(bytes), data: label), .tlsKeyFile(path))
        }
        return (Crypto.randomBytes(32), .random)
    }

    /// At most 1 MiB; nil when unreadable.
    private static func readSmallFile(_ path: String) -> [UInt8]? {
        Descriptor.readFile(path, limit: 1 << 20, flags: O_NOCTTY | O_NONBLOCK)
    }
}
