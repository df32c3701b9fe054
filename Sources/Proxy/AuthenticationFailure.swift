import Synchronization
import EventLoop

/// What is logged about a failed login, as PostgreSQL's FATAL for it plus the DETAIL line it
/// writes to the server log ("Connection matched pg_hba.conf line N: ...", auth.c
/// auth_failed). It holds nothing the client sent as proof: no password, no SCRAM proof.
public struct AuthenticationFailure: Sendable, Equatable {
    public var remoteHost: String
    public var user: String
    public var database: String
    /// The pg_hba.conf method name of the matched rule; nil when no rule matched.
    public var method: String?
    /// "file:line" of the matched pg_hba.conf rule, or local_auth/host_auth; nil when none.
    public var ruleOrigin: String?
    public var sqlState: String
    /// The FATAL message the client gets.
    public var message: String
    /// The client proved who it is, and the login was refused for what it asked for (a
    /// database that does not exist, a start-up setting a read-only identity may not make),
    /// as PostgreSQL refuses them after authentication (postinit.c InitPostgres,
    /// process_startup_options): no auth_failure_delay, and logged as a refused login.
    public var afterAuthentication: Bool

    public init(remoteHost: String, user: String, database: String, method: String?, ruleOrigin: String?,
                sqlState: String, message: String, afterAuthentication: Bool = false) {
        self.remoteHost = remoteHost
        self.user = user
        self.database = database
        self.method = method
        self.ruleOrigin = ruleOrigin
        self.sqlState = sqlState
        self.message = message
        self.afterAuthentication = afterAuthentication
    }

    /// pg_hba.conf spelling (docs 21.1).
    public static func methodName(_ method: ClientAuthRule.Method) -> String {
        switch method {
        case .trust: "trust"
        case .reject: "reject"
        case .scramSHA256: "scram-sha-256"
        case .md5: "md5"
        case .password: "password"
        case .cert: "cert"
        case .peer: "peer"
        }
    }

    /// The log line: the client's FATAL, then where the rule came from, as PostgreSQL's DETAIL.
    public var logMessage: String {
        let matched = ruleOrigin.map { "connection matched \($0)" } ?? "no matching pg_hba.conf entry"
        return "\(afterAuthentication ? "login refused" : "authentication failed"): \(message); \(matched)"
    }

    /// The same facts as separate fields, for log processors.
    public var logFields: [(String, String)] {
        [("client_addr", remoteHost), ("user", user), ("database", database),
         ("auth_method", method ?? "none"), ("hba_line", ruleOrigin ?? "none"), ("sqlstate", sqlState)]
    }
}

/// Per-address backoff after failed logins (`auth_failure_delay`; off by default). The n-th
/// recent failure from an address gets its FATAL after min(cap, 100 ms × 2^(n-1)); a
/// successful login from the address, or `forgetAfter` without failures, starts it over.
/// PostgreSQL's contrib auth_delay waits a fixed time on every failure, sleeping in the
/// backend; here the wait is a timer on the loop, and the connection keeps its place in the
/// start-up limits meanwhile, so waiting connections cannot pile up without bound. Pure.
public struct AuthFailureBackoff: Sendable {
    struct Entry: Sendable {
        var failures: Int
        var last: MonotonicInstant
    }

    public static let firstDelay = Duration.milliseconds(100)
    public let forgetAfter: Duration
    /// Addresses tracked at most; when full, the one with the oldest failure goes.
    public let capacity: Int
    private var entries: [String: Entry] = [:]

    public init(forgetAfter: Duration = .seconds(600), capacity: Int = 10_000) {
        self.forgetAfter = forgetAfter
        self.capacity = max(1, capacity)
    }

    public var trackedAddresses: Int { entries.count }

    /// Records a failure from `address` and returns how long to hold its answer back.
    public mutating func failed(address: String, at now: MonotonicInstant, cap: Duration) -> Duration {
        var entry = entries[address] ?? Entry(failures: 0, last: now)
        if now.duration(since: entry.last) >= forgetAfter { entry.failures = 0 }
        entry.failures += 1
        entry.last = now
        if entries[address] == nil && entries.count >= capacity { evictOldest() }
        entries[address] = entry
        return Self.delay(failures: entry.failures, cap: cap)
    }

    public mutating func succeeded(address: String) {
        entries.removeValue(forKey: address)
    }

    static func delay(failures: Int, cap: Duration) -> Duration {
        guard failures > 0, cap > .zero else { return .zero }
        let doublings = min(failures - 1, 20)
        return min(cap, firstDelay * (1 << doublings))
    }

    private mutating func evictOldest() {
        if let oldest = entries.min(by: { $0.value.last < $1.value.last })?.key { entries.removeValue(forKey: oldest) }
    }
}

/// The process-wide `AuthFailureBackoff`, shared by every loop.
public final class AuthFailureTracker: Sendable {
    private let state = Mutex(AuthFailureBackoff())

    public init() {}

    public func failed(address: String, at now: MonotonicInstant, cap: Duration) -> Duration {
        state.withLock { $0.failed(address: address, at: now, cap: cap) }
    }

    public func succeeded(address: String) {
        state.withLock { $0.succeeded(address: address) }
    }
}
