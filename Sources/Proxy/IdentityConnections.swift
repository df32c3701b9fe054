import Synchronization

/// Logged-in sessions per identity (the client's user name), all loops together: what
/// `max_identity_connections` and an identity's `max_connections` bound, as PostgreSQL's role
/// CONNECTION LIMIT does (src/backend/utils/init/postinit.c, InitializeSessionUserId:
/// FATAL 53300 "too many connections for role", after authentication). Without it one
/// identity could take every `max_client_connections` slot.
public final class IdentityConnections: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    /// Takes a slot for `identity` unless `limit` are taken already (nil: no limit, counted all
    /// the same so a reload that sets one sees the sessions already there).
    public func reserve(_ identity: String, limit: Int?) -> Bool {
        counts.withLock { counts in
            let taken = counts[identity, default: 0]
            if let limit, taken >= limit { return false }
            counts[identity] = taken + 1
            return true
        }
    }

    public func release(_ identity: String) {
        counts.withLock { counts in
            guard let taken = counts[identity] else { return }
            counts[identity] = taken > 1 ? taken - 1 : nil
        }
    }

    public func count(_ identity: String) -> Int {
        counts.withLock { $0[identity, default: 0] }
    }
}
