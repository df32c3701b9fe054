import Config
import EventLoop
import Synchronization

/// Verifiers read by `auth_query`, shared by every loop of one configuration generation (a
/// reload starts with an empty cache, so every verifier is read again). An answer older than
/// `auth_query_refresh_interval` is not used: the next login reads it again, so a password
/// changed upstream takes effect within one interval. Negative answers (no such role, no
/// password) are cached too, so repeated logins cost one lookup per interval.
final class AuthQueryCache: Sendable {
    struct Key: Hashable, Sendable {
        /// Where the lookup ran: the [databases] entry, the database and the auth user.
        let entry: String
        let dbname: String
        let authUser: String
        let user: String
    }

    private struct Entry {
        let verifier: ClientPasswordVerifier?
        let fetchedAt: MonotonicInstant
    }

    /// Bound on the entries kept (the `*` entry makes database names client input).
    static let capacity = 10_000

    private let entries = Mutex<[Key: Entry]>([:])
    /// Lookups that failed (upstream unreachable, timeout): not retried for
    /// ``failureBackoff``, so unauthenticated clients cannot make every startup an upstream
    /// connection while the upstream struggles.
    private let failures = Mutex<[Key: MonotonicInstant]>([:])
    /// Lookups running now, process-wide (they share the lookup threads with DNS).
    private let inFlight = Atomic<Int>(0)
    static let failureBackoff: Duration = .seconds(1)
    /// At most this many lookups at once; a login that finds them all busy fails as after a
    /// failed lookup (and is logged), instead of queueing behind upstream connections.
    static let maxInFlight = 4
    let refreshInterval: Duration

    init(refreshInterval: Duration) {
        self.refreshInterval = refreshInterval
    }

    /// The cached answer if it is younger than the refresh interval: `.some(nil)` is a cached
    /// "no verifier", `nil` means "look it up".
    func answer(for key: Key, now: MonotonicInstant) -> ClientPasswordVerifier?? {
        entries.withLock { entries -> ClientPasswordVerifier?? in
            guard let entry = entries[key], now < entry.fetchedAt + refreshInterval else { return nil }
            return .some(entry.verifier)
        }
    }

    func store(_ verifier: ClientPasswordVerifier?, for key: Key, fetchedAt: MonotonicInstant) {
        let interval = refreshInterval
        entries.withLock { entries in
            if entries.count >= Self.capacity && entries[key] == nil {
                entries = entries.filter { fetchedAt < $0.value.fetchedAt + interval }
                if entries.count >= Self.capacity { entries.removeAll() }
            }
            entries[key] = Entry(verifier: verifier, fetchedAt: fetchedAt)
        }
    }

    var count: Int { entries.withLock { $0.count } }

    /// A lookup for `key` failed less than ``failureBackoff`` ago.
    func recentlyFailed(_ key: Key, now: MonotonicInstant) -> Bool {
        failures.withLock { failures in
            guard let at = failures[key] else { return false }
            if now < at + Self.failureBackoff { return true }
            failures[key] = nil
            return false
        }
    }

    func storeFailure(for key: Key, at: MonotonicInstant) {
        failures.withLock { failures in
            if failures.count >= Self.capacity { failures.removeAll() }
            failures[key] = at
        }
    }

    /// Takes one of the ``maxInFlight`` places; false when all are taken.
    func beginLookup() -> Bool {
        var current = inFlight.load(ordering: .relaxed)
        while current < Self.maxInFlight {
            let (exchanged, original) = inFlight.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func endLookup() { inFlight.subtract(1, ordering: .relaxed) }
}
