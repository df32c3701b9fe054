import EventLoop

/// How much of the everyday classifier threads one session has used lately: a session whose
/// recent misses were costly has its next ones classified on the long-statement threads, so
/// many sessions looping on costly texts (each under ``ClassifierBudget/everydayTextLimit``,
/// tens of milliseconds apiece) cannot make everyone else's misses queue behind them.
///
/// A debt: each classification adds its thread time times ``multiplier`` and the debt drains
/// in real time; past ``allowanceNanoseconds`` of debt the session's misses are moved aside
/// until it is paid down, so beyond a burst a session gets about 1/``multiplier`` of one
/// thread. Everyday sessions miss rarely and cheaply (well under a millisecond: a hundred in a
/// row stay under the allowance) and never reach it. A pure value; time is handed in.
struct ClassifierShare: Equatable {
    /// Four: beyond its allowance a session may use about a quarter of one thread.
    static let multiplier: Int64 = 4
    /// Debt a session may owe and still use the everyday threads: a burst of ordinary misses
    /// (an ORM preparing its statements, each well under a millisecond) stays below it; one
    /// costly text (tens of milliseconds) goes over.
    static let allowanceNanoseconds: Int64 = 200_000_000

    private var debtNanoseconds: Int64 = 0
    private var asOf: MonotonicInstant?

    /// Whether the session's misses should go to the long-statement threads at `now`.
    func isExhausted(at now: MonotonicInstant) -> Bool {
        debt(at: now) > Self.allowanceNanoseconds
    }

    /// A classification of this session took `elapsed` on a classifier thread.
    mutating func used(_ elapsed: Duration, at now: MonotonicInstant) {
        let added = elapsed.nanosecondsClamped.multipliedReportingOverflow(by: Self.multiplier)
        let owed = debt(at: now).addingReportingOverflow(added.overflow ? .max : max(0, added.partialValue))
        debtNanoseconds = owed.overflow ? .max : owed.partialValue
        asOf = now
    }

    private func debt(at now: MonotonicInstant) -> Int64 {
        guard let asOf, debtNanoseconds > 0 else { return 0 }
        guard asOf < now else { return debtNanoseconds }
        // A gap beyond Int64 (not on a real clock) reads as negative: the debt is paid.
        let drained = now.duration(since: asOf).nanosecondsClamped
        return drained < 0 ? 0 : max(0, debtNanoseconds - drained)
    }
}
