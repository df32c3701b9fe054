import EventLoop
import Logging

/// Keeps a repeated log line from flooding the log: the first `burst` occurrences are logged,
/// later ones are only counted, and the count is reported once per `interval` (at the next
/// occurrence) and when the owner ends. Pure: time is passed in. The full record of every
/// occurrence belongs to the audit stream, not to the log.
///
/// A client that sends statements for hours produces at most `burst` lines plus one summary
/// per `interval` plus one at the end, however fast it sends.
public struct RepeatedLogLimiter: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        /// Log this occurrence as usual.
        case log
        /// Counted, not logged.
        case suppress
        /// Log one summary line: `suppressed` occurrences were not logged since the last
        /// summary (this one included); `total` since the start.
        case summary(suppressed: Int, total: Int)
    }

    public let burst: Int
    public let interval: Duration
    public private(set) var total = 0
    /// Occurrences not logged and not yet reported in a summary.
    public private(set) var suppressed = 0
    private var lastReport: MonotonicInstant?

    public init(burst: Int = 10, interval: Duration = .seconds(60)) {
        self.burst = max(0, burst)
        self.interval = interval
    }

    public mutating func occurred(at now: MonotonicInstant) -> Decision {
        total += 1
        if total <= burst {
            lastReport = now
            return .log
        }
        suppressed += 1
        if let lastReport, now.duration(since: lastReport) < interval { return .suppress }
        return takeSummary(at: now)
    }

    /// The owner ends (the session closes): a last summary when anything went unreported.
    public mutating func finish(at now: MonotonicInstant) -> Decision? {
        guard suppressed > 0 else { return nil }
        return takeSummary(at: now)
    }

    private mutating func takeSummary(at now: MonotonicInstant) -> Decision {
        let decision = Decision.summary(suppressed: suppressed, total: total)
        suppressed = 0
        lastReport = now
        return decision
    }
}

/// A session's limiter for refused statements, out of line (``ClientSession/refusalLog``).
final class RefusalLog {
    var limiter = RepeatedLogLimiter.refusedStatements
}

extension RepeatedLogLimiter {
    /// "statement refused for read-only identity": 10 lines per session, then one summary a
    /// minute and one at the end of the session.
    static let refusedStatements = RepeatedLogLimiter(burst: 10, interval: .seconds(60))

    /// One refused statement of a read-only session.
    mutating func log(to logger: SessionLogger, at now: MonotonicInstant) {
        switch occurred(at: now) {
        case .log:
            logger.notice("statement refused for read-only identity")
        case .suppress:
            break
        case .summary(let suppressed, let total):
            logger.notice("\(suppressed) more statement(s) refused for read-only identity (\(total) in this session so far)")
        }
    }

    /// At the end of the session: the count of refusals not logged yet.
    mutating func logSummary(to logger: SessionLogger, at now: MonotonicInstant) {
        if case .summary(let suppressed, let total) = finish(at: now) {
            logger.notice("\(suppressed) more statement(s) refused for read-only identity (\(total) in this session)")
        }
    }
}
