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
/// A lookup is a few SHA-256 blocks and runs wherever the exchange runs (an event loop): a hit
/// costs no thread hop. A miss is a ``SCRAMKeyDerivation``, which the proxy runs off its loops
/// and which stores its result here when done.
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

    /// How many times PBKDF2 ran for this cache (for tests and metrics).
    public var derivationCount: Int { derivations.load(ordering: .relaxed) }

    /// Names the inputs without holding the password: SHA-256 over SHA-256(password), the
    /// iteration count and the salt.
    static func digest(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var input = Crypto.sha256(password)
        input += withUnsafeBytes(of: UInt64(iterations).bigEndian, Array.init)
        input += salt
        return Crypto.sha256(input)
    }

    /// The keys when they were derived before, else the derivation that makes them (and
    /// stores them here). Never runs PBKDF2 itself.
    func lookup(password: [UInt8], salt: [UInt8], iterations: Int) -> Lookup {
        let digest = Self.digest(password: password, salt: salt, iterations: iterations)
        if let found = table.withLock({ $0[digest] }) { return .found(found) }
        return .missing(SCRAMKeyDerivation(password: password, salt: salt, iterations: iterations, digest: digest, cache: self))
    }

    enum Lookup {
        case found(SCRAMKeys)
        case missing(SCRAMKeyDerivation)
    }

    /// Called by ``SCRAMKeyDerivation/derive()`` on whichever thread ran it. Two threads may
    /// both derive the same keys once, which is harmless; holding the lock through PBKDF2
    /// would serialise every loop's logins.
    func store(_ keys: SCRAMKeys, digest: [UInt8]) {
        derivations.add(1, ordering: .relaxed)
        table.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            table[digest] = keys
        }
    }

    /// Looks up, and derives on the calling thread on a miss: for tests and tools that are no
    /// event loop.
    func keys(password: [UInt8], salt: [UInt8], iterations: Int) -> SCRAMKeys {
        switch lookup(password: password, salt: salt, iterations: iterations) {
        case .found(let keys): return keys
        case .missing(let derivation): return derivation.derive()
        }
    }
}

/// One PBKDF2 run for SCRAM-SHA-256 (RFC 5802 section 3, `SaltedPassword := Hi(Normalize(password),
/// salt, i)`, then ClientKey, StoredKey and ServerKey) as a value, so that whoever meets it can
/// hand it to another thread: its cost grows with an iteration count that the stored verifier
/// decides (PostgreSQL accepts up to INT_MAX: `scram_iterations`, and any pre-hashed verifier in
/// `ALTER ROLE ... PASSWORD`), seconds for millions. PostgreSQL runs it in the one backend
/// process of the login (auth-scram.c `scram_SaltedPassword`; libpq in the client's process),
/// so it never delays anyone else; in the proxy it must not run on an event loop.
public struct SCRAMKeyDerivation: Sendable {
    let password: [UInt8]
    public let salt: [UInt8]
    public let iterations: Int
    /// Names the inputs (``SCRAMKeyCache/digest(password:salt:iterations:)``): two derivations
    /// with the same digest give the same keys, so one run can answer both.
    public let digest: [UInt8]
    /// Where the keys are kept once derived; nil: not kept (a client's cleartext password
    /// checked against a stored verifier, as PostgreSQL's `scram_verify_plain_password`).
    let cache: SCRAMKeyCache?

    /// Derivations that may share one run: the same inputs, and both kept or both not.
    public var sharingKey: [UInt8] { digest + [cache == nil ? 0 : 1] }

    init(password: [UInt8], salt: [UInt8], iterations: Int, digest: [UInt8], cache: SCRAMKeyCache?) {
        self.password = password
        self.salt = salt
        self.iterations = iterations
        self.digest = digest
        self.cache = cache
    }

    /// What checking `password` against a stored verifier costs: the derivation with the
    /// verifier's salt and count, not cached (a wrong password's keys are no use later).
    public static func checking(password: String, against verifier: SCRAMVerifier) -> SCRAMKeyDerivation {
        let normalized = SCRAMPassword.normalized(password)
        return SCRAMKeyDerivation(password: normalized, salt: verifier.salt, iterations: verifier.iterations,
                                  digest: SCRAMKeyCache.digest(password: normalized, salt: verifier.salt, iterations: verifier.iterations),
                                  cache: nil)
    }

    /// Runs PBKDF2: milliseconds at PostgreSQL's default count, seconds at millions. Never on
    /// an event loop.
    public func derive() -> SCRAMKeys {
        let keys = SCRAMKeys(password: password, salt: salt, iterations: iterations)
        cache?.store(keys, digest: digest)
        return keys
    }

    /// ``derive()`` that gives up (nil, nothing cached) once `keepGoing` says no; it is asked
    /// every few thousand iterations.
    public func derive(while keepGoing: () -> Bool) -> SCRAMKeys? {
        guard let keys = SCRAMKeys(password: password, salt: salt, iterations: iterations, while: keepGoing) else { return nil }
        cache?.store(keys, digest: digest)
        return keys
    }
}
