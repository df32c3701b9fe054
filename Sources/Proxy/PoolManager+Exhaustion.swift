import Audit
import Logging
import Wire

/// A pool at `pool_max_size` with clients waiting (the `pool_exhausted` audit event).
struct PoolExhaustion: Sendable, Equatable {
    /// `<database entry>/<server user>`: pools are also kept per loop and per startup
    /// parameters, so one such name may stand for several pools.
    var pool: String
    var maxSize: Int
    /// Clients still waiting for a connection of this pool.
    var waiting: Int

    var details: [AuditDetail] {
        [AuditDetail("POOL", pool), AuditDetail("MAX_SIZE", String(maxSize)), AuditDetail("WAITING", String(waiting))]
    }
}

extension PoolManager {
    static func exhaustion(_ entry: Entry, spec: UpstreamSpec?) -> PoolExhaustion {
        PoolExhaustion(pool: "\(spec?.databaseEntry ?? entry.target.entryName)/\(spec?.serverUser ?? entry.target.user ?? "")",
                       maxSize: entry.state.settings.maxSize, waiting: entry.state.waiterCount)
    }

    /// A checkout was not served at once. When that is because the pool is at pool_max_size
    /// (no connection is being opened that could serve it), a new exhaustion episode starts:
    /// reported once, not per waiter, until no one waits any more (PgBouncer shows the same
    /// state as `cl_waiting` in SHOW POOLS).
    func noteWaiting(_ entry: Entry, spec: UpstreamSpec) {
        // Checked first: while an episode lasts (every checkout of a busy pool) nothing else is read.
        guard !entry.exhausted else { return }
        let state = entry.state
        guard state.connectionCount >= state.settings.maxSize, state.openingCount < state.waiterCount else { return }
        entry.exhausted = true
        let exhaustion = Self.exhaustion(entry, spec: spec)
        logger.warning("pool \(exhaustion.pool) is at pool_max_size (\(exhaustion.maxSize)): clients wait for a server connection")
        audit?.poolExhausted(exhaustion)
    }
}

extension LoopAudit {
    /// A loop event, not a session's: no client to hold back, so under backpressure it goes
    /// beyond the bound (at most one per pool and episode); with `drop` it may be counted.
    func poolExhausted(_ exhaustion: PoolExhaustion) {
        let event = AuditEvent(kind: .poolExhausted, timeMicroseconds: Self.wallClockMicroseconds(), priority: .warning,
                               details: exhaustion.details + [AuditDetail("RESULT", "waiting")],
                               summary: "pool \(exhaustion.pool) exhausted: \(exhaustion.waiting) client(s) waiting, pool_max_size \(exhaustion.maxSize)")
        switch policy {
        case .drop: queue.submitOrDrop(event)
        case .backpressure: queue.submitBeyondBound(event)
        }
    }
}

extension ClientSession {
    /// This session waited pool_wait_timeout for a server connection and is refused: the
    /// record names who was refused.
    func auditPoolWaitTimedOut(_ exhaustion: PoolExhaustion, _ fields: ErrorFields) {
        var details = exhaustion.details + [AuditDetail("RESULT", "timed_out")]
        if let code = fields.sqlState { details.append(AuditDetail("SQLSTATE", code)) }
        if let message = fields.message { details.append(AuditDetail("REASON", message)) }
        emitAudit(.poolExhausted, priority: .warning, details: details,
                  summary: "pool \(exhaustion.pool) exhausted: client refused after pool_wait_timeout")
    }
}
