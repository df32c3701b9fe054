import Synchronization

/// The statement text all sessions of the process keep, in all: what a read-only session's
/// gate keeps to judge Binds again (``PreparedTexts``) and what transaction pooling keeps to
/// prepare a client's statements on another server. Each session has its own bounds (16 MiB
/// each); this bounds their sum, `max_kept_statement_memory` (found in review: a thousand
/// read-only clients in transaction pooling could each keep 32 MB, 32 GB in all, and the
/// process would be killed for it with every session on it). Beyond it a read-only session's
/// new prepared statement is refused (53200, as PostgreSQL fails an allocation), and
/// transaction pooling pins the client to its server instead of keeping the text.
///
/// Shared by all loops; a session reports its own total when it keeps more and when it ends
/// (``KeptTextShare``), so the sum may run ahead of what is kept (texts closed since), never
/// behind it. Not counted here: what a pooled server connection keeps with it once its client
/// is gone (bounded per connection instead, 16 MiB), a client's unnamed statement in
/// transaction pooling, and the gate's portal texts (each bounded per session).
package final class KeptTextBudget: Sendable {
    private let total = Atomic<Int>(0)
    private let limitBytes: Atomic<Int>

    package init(limit: Int) {
        limitBytes = Atomic(limit)
    }

    /// Bytes reported kept by all sessions.
    package var bytes: Int { total.load(ordering: .relaxed) }

    /// A reload's new `max_kept_statement_memory`, for what is kept from now on.
    package func setLimit(_ limit: Int) { limitBytes.store(limit, ordering: .relaxed) }

    func adjust(by delta: Int) {
        if delta != 0 { total.add(delta, ordering: .relaxed) }
    }

    func allows(_ more: Int) -> Bool {
        total.load(ordering: .relaxed) + more <= limitBytes.load(ordering: .relaxed)
    }
}

/// One session's part of a ``KeptTextBudget``: what it last reported.
package struct KeptTextShare {
    let budget: KeptTextBudget?
    private(set) var reported = 0

    init(_ budget: KeptTextBudget?) {
        self.budget = budget
    }

    /// The session keeps `bytes` now.
    mutating func report(_ bytes: Int) {
        guard let budget, bytes != reported else { return }
        budget.adjust(by: bytes - reported)
        reported = bytes
    }

    /// Whether the session, keeping `bytes` now, may keep `more`.
    mutating func allows(_ more: Int, keeping bytes: Int) -> Bool {
        report(bytes)
        return budget?.allows(more) ?? true
    }
}
