import EventLoop

/// The age rule of one database's catalog snapshot: a snapshot whose load started longer ago
/// than `catalog_max_age` no longer judges statements. Pure: every instant is handed in (the
/// loop's clock for sessions, the refresher thread's for loads).
///
/// Why a bound at all: a failed refresh keeps the previous snapshot, and whoever can make
/// every refresh fail — a database owner needs no superuser for `ALTER DATABASE … CONNECTION
/// LIMIT 0` (PostgreSQL docs, ALTER DATABASE) — could otherwise freeze the snapshot, then plant
/// a function the frozen one does not know (`public.lower(integer)`) and have a read-only
/// client run it. With the bound, such a database's read-only statements are refused after
/// `catalog_max_age`, as before its first load (``CatalogSnapshot/Unloaded/stale``).
///
/// A stale episode runs from the first look that finds the snapshot too old to the next
/// successful load; each is reported once when it starts and once when it ends, whoever
/// looks (a session's statement or the refresher after a failed attempt), so a database whose
/// refreshes fail for hours logs two lines, not one per statement.
struct CatalogFreshness: Sendable, Equatable {
    enum Event: Sendable, Equatable {
        /// The snapshot in force is older than the bound, first seen now: `age` since its load
        /// started.
        case wentStale(age: Duration)
        /// A load succeeded after a stale episode that began `staleFor` ago.
        case recovered(staleFor: Duration)
    }

    /// When the load whose snapshot is in force started (nil: none has succeeded). The start,
    /// not the end: the snapshot shows the catalog as it was when its queries ran, and an
    /// object created while a slow load ran is not in it.
    private(set) var loadStartedAt: MonotonicInstant?
    /// When the current stale episode was first seen (nil: not in one).
    private(set) var staleSince: MonotonicInstant?

    /// A load that started at `startedAt` succeeded (reported at `now`); its snapshot is now in
    /// force. It ends a stale episode unless it took so long that it is itself older than
    /// `maxAge` already (then the episode goes on, and is not reported twice).
    mutating func loadSucceeded(startedAt: MonotonicInstant, at now: MonotonicInstant, maxAge: Duration) -> Event? {
        loadStartedAt = startedAt
        guard let since = staleSince, Self.age(at: now, of: startedAt) <= maxAge else { return nil }
        staleSince = nil
        return .recovered(staleFor: Self.age(at: now, of: since))
    }

    /// Whether the snapshot in force may judge statements at `now` (false: it is older than
    /// `maxAge`). True while no load has succeeded: then there is no snapshot to age, and the
    /// store refuses as unloaded. `event` is set the first time in an episode that the answer
    /// is false.
    mutating func checked(at now: MonotonicInstant, maxAge: Duration) -> (usable: Bool, event: Event?) {
        guard let loadStartedAt else { return (true, nil) }
        let age = Self.age(at: now, of: loadStartedAt)
        // `>`: a snapshot exactly `maxAge` old still counts.
        guard age > maxAge else { return (true, nil) }
        if staleSince != nil { return (false, nil) }
        staleSince = now
        return (false, .wentStale(age: age))
    }

    /// The monotonic clock never goes back, but an instant read on one thread may be handed to
    /// a value another thread updated a moment later: an instant before `start` is age zero.
    private static func age(at now: MonotonicInstant, of start: MonotonicInstant) -> Duration {
        now < start ? .zero : now.duration(since: start)
    }
}
