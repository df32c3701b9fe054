import Session
import EventLoop
import Policy

/// Per-loop statement policy state shared by the loop's sessions: one classification cache,
/// so a statement shape seen by any session on the loop is not parsed again, and the loop's
/// side of the classifier threads. Confined to the loop's thread like everything else the
/// loop owns.
///
/// A cache hit is answered at once on the loop; a miss goes to the ``ClassifierPool`` and its
/// answer comes back through the loop's mailbox (``deliver(_:)``), which remembers it in the
/// cache and hands it to whoever asked — unless that session gave up meanwhile (ended, or its
/// time budget ran out), in which case it is dropped.
final class LoopPolicy {
    var classifier: CachingStatementClassifier
    private let pool: ClassifierPool
    private let largeStatementPool: ClassifierPool
    private let mailbox: LoopMailbox
    private var waiting: [UInt64: (ClassificationDone) -> Void] = [:]
    private var nextTicket: UInt64 = 1
    /// Texts longer than this are neither looked up on the loop (even the cheap key is a scan
    /// of the whole text) nor cached (a cache of large texts would hold their memory).
    static let cachedTextLimit = 64 * 1024

    enum Lookup {
        /// Cached; with the catalog applied.
        case hit(ClassificationResult)
        /// On its way to a classifier thread; cancel with ``cancel(_:)``.
        case pending(ticket: UInt64)
    }

    init(cacheCapacity: Int = 4096, pool: ClassifierPool, largeStatementPool: ClassifierPool, mailbox: LoopMailbox) {
        classifier = CachingStatementClassifier(capacity: cacheCapacity)
        self.pool = pool
        self.largeStatementPool = largeStatementPool
        self.mailbox = mailbox
    }

    /// The cached classification of `sql` with `catalog` applied, or a ticket whose answer
    /// `completion` gets later (on this loop, never from inside this call). A cached Query
    /// that keeps statements before a refused one still goes to a thread: finding where its
    /// statements start is a parse. `completion` is made only on a miss: a hit (nearly every
    /// statement) allocates no closure. `costly`: the asker has used its share of the everyday
    /// threads lately (``ClassifierShare``), so its miss goes to the long-statement threads.
    /// `offsetsFor`: a Query under a refusing gate, whose statements' offsets are wanted when
    /// the gate keeps those before a refused one; nil for anything else.
    func classify(sql: String, catalog: CatalogSnapshot, offsetsFor refusing: StatementRefusals?, costly: Bool = false,
                  completion: @autoclosure () -> ((ClassificationDone) -> Void)) -> Lookup {
        let small = sql.utf8.count <= Self.cachedTextLimit
        var known: ClassificationResult?
        if small, let cached = classifier.cachedResult(sql: sql) {
            let result = catalog.applied(to: cached)
            guard let refusing, ReadOnlyGate.keepsStatementsBefore(result, refusing: refusing) else { return .hit(result) }
            known = result
        }
        let ticket = nextTicket
        nextTicket += 1
        let job = ClassifierPool.Job(ticket: ticket, sql: sql, keyed: small, catalog: catalog, known: known,
                                     offsetsFor: refusing, mailbox: mailbox)
        waiting[ticket] = completion()
        // By size, not by cacheability: a 64 kB text can nest deep enough to hold a thread for
        // over a second, an everyday one cannot (ClassifierBudget.everydayTextLimit).
        let everyday = sql.utf8.count <= ClassifierBudget.everydayTextLimit && !costly
        (everyday ? pool : largeStatementPool).submit(job)
        return .pending(ticket: ticket)
    }

    /// The asker no longer wants the answer; a job still queued is dropped.
    func cancel(_ ticket: UInt64) {
        guard waiting.removeValue(forKey: ticket) != nil else { return }
        pool.cancel(ticket: ticket, mailbox: mailbox)
        largeStatementPool.cancel(ticket: ticket, mailbox: mailbox)
    }

    /// An answer from a classifier thread, through the mailbox.
    func deliver(_ done: ClassificationDone) {
        guard let completion = waiting.removeValue(forKey: done.ticket) else { return }
        if let miss = done.miss { classifier.remember(miss) }
        completion(done)
    }
}
