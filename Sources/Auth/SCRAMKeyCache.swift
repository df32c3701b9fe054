import Synchronization

/// Salted-password keys for the client half of SCRAM, derived once per (password, salt,
/// iteration count).
///
/// PBKDF2 with PostgreSQL's default 4096 iterations costs about a millisecond of CPU, and the
/// proxy's upstream logins repeat it for every new server connection with the same password
/// and the same verifier (the salt and count come from the role's stored verifier, so they
/// only change when the password does). RFC 5802 section 5.1 allows a client to cache
/// ClientKey/ServerKey for a given salt and count ("the client can store ... in order to
/// avoid recomputation"), which is what libpq could do and what this does.
///
/// The key of the table is a SHA-256 digest over the inputs, so the table holds no password
/// text; the values are password-equivalent keys, held in the same process memory as the
/// passwords they come from. The table is bounded: when it is full it is emptied (entries are
/// cheap to recompute, and a bound matters more than a perfect eviction order).
public final class SCRAMKeyCache: Sendable {
    public static let shared = SCRAMKeyCache(capacity: 256)

    private let capacity: Int
    private let table = Mutex<[[UInt8]: SCRAMKeys]>([:])
    private let derivations = Atomic<Int>(0)

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// How many times PBKDF2 ran (for tests and metrics).
    public var derivationCount: Int { derivations.load(ordering: .relaxed) }

    func keys(password: [UInt8], salt: [UInt8], iterations: Int) -> SCRAMKeys {
        var input = Crypto.sha256(password)
        input += withUnsafeBytes(of: UInt64(iterations).bigEndian, Array.init)
        input += salt
        let digest = Crypto.sha256(input)
        if let found = table.withLock({ $0[digest] }) { return found }
        // Derived outside the lock: two threads may both derive the same keys once, which is
        // harmless, while holding the lock through PBKDF2 would serialise every loop's logins.
        let derived = SCRAMKeys(password: password, salt: salt, iterations: iterations)
        derivations.add(1, ordering: .relaxed)
        table.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            table[digest] = derived
        }
        return derived
    }
}
