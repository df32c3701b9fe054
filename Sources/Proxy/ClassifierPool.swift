import Session
import EventLoop
import Policy
import Synchronization
import Glibc
import CPortcullisShims

/// A classification finished on a classifier thread, posted to the asking loop's mailbox.
struct ClassificationDone: Sendable {
    let ticket: UInt64
    /// With the job's catalog snapshot applied.
    let result: ClassificationResult
    /// For the loop's cache, when the text was classified here (not known already).
    let miss: CachingStatementClassifier.Miss?
    /// Where a Query's statements start, when the gate keeps those before a refused one.
    let statementOffsets: [Int]?
    /// Time the classifier thread spent on it (for the log, and the benchmarks).
    let elapsed: Duration
}

/// The classifier threads: statement texts the loops' caches do not know are parsed and
/// judged here, never on a loop, so a large or pathological statement stalls only the session
/// that sent it (which waits for its answer) and never the loop's other sessions.
///
/// Two pools run: one for everyday texts (up to ``ClassifierBudget/everydayTextLimit``, 8 kB),
/// one for longer ones, so large or deep statements (a second or more each, well within
/// `readonly_max_statement_size`) can only delay other long statements, never the everyday
/// misses of everyone else.
///
/// A few threads with a large stack (``ClassifierBudget/threadStackSize``), started on first
/// use and living as long as the process. The queue is unbounded in count but bounded in
/// practice: a session has at most one statement in classification at a time. A thread
/// cannot be interrupted inside the C parser, so a statement over its time budget is refused
/// by the session's own timer and the result, when it comes, is discarded by ticket.
final class ClassifierPool: @unchecked Sendable {
    struct Job: Sendable {
        let ticket: UInt64
        let sql: String
        /// Compute cache keys (texts small enough to cache).
        let keyed: Bool
        let catalog: CatalogSnapshot
        /// A cached classification (catalog applied): only the statement offsets are wanted.
        let known: ClassificationResult?
        /// A Query under a refusing gate (``LoopPolicy/classify(sql:catalog:offsetsFor:costly:completion:)``).
        let offsetsFor: StatementRefusals?
        let mailbox: LoopMailbox
    }

    /// What a job asks for, run on whichever thread: a classifier thread, or the caller in tests.
    static func perform(_ job: Job) -> (result: ClassificationResult, miss: CachingStatementClassifier.Miss?, offsets: [Int]?) {
        var miss: CachingStatementClassifier.Miss?
        let result: ClassificationResult
        if let known = job.known {
            result = known
        } else {
            let classified = CachingStatementClassifier.classifyMiss(sql: job.sql, keyed: job.keyed)
            miss = classified
            result = job.catalog.applied(to: classified.result)
        }
        let offsets = job.offsetsFor.map { ReadOnlyGate.keepsStatementsBefore(result, refusing: $0) } == true
            ? StatementSplitter.statementOffsets(job.sql) : nil
        return (result, miss, offsets)
    }

    let threadCount: Int
    /// Thread name prefix (names are cut at 15 bytes).
    let name: String
    /// After a text this large the threads give freed memory back to the system (malloc_trim):
    /// its parse tree was many times its size.
    static let trimThreshold = 8 * 1024
    /// Texts shorter than this cannot nest deep enough to use much stack (``NestingBound``'s
    /// ceiling: 8 120 bytes stay under the limit of even a small thread).
    static let deepTextThreshold = ClassifierBudget.everydayTextLimit
    private let queue = Mutex<(jobs: [Job?], head: Int, started: Bool)>(([], 0, false))
    /// Counts queued jobs; the threads sleep on it. (Synchronization has no condition variable.)
    private let available: UnsafeMutablePointer<sem_t>

    init(name: String, threadCount: Int = ClassifierPool.defaultThreadCount) {
        self.name = name
        self.threadCount = max(1, threadCount)
        available = .allocate(capacity: 1)
        sem_init(available, 0, 0)
    }

    /// Two per CPU up to four: classification is CPU work, and a slow statement should not
    /// hold back everyone else's misses.
    static var defaultThreadCount: Int {
        min(4, max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }

    func submit(_ job: Job) {
        let startThreads = queue.withLock { state -> Bool in
            state.jobs.append(job)
            defer { state.started = true }
            return !state.started
        }
        if startThreads {
            for index in 0..<threadCount {
                LoopThread.detach(LoopThread.start(name: "portcullis-\(name)\(index)", stackSize: ClassifierBudget.threadStackSize) {
                    [self] in self.work()
                })
            }
        }
        sem_post(available)
    }

    /// Drops a job that has not started (its asker gave up: timed out, or gone), so an abandoned
    /// statement does not take a thread later. A job already running cannot be stopped.
    /// Tickets are per loop: the mailbox tells the loops apart.
    func cancel(ticket: UInt64, mailbox: LoopMailbox) {
        queue.withLock { state in
            for index in state.head..<state.jobs.count where state.jobs[index]?.ticket == ticket && state.jobs[index]?.mailbox === mailbox {
                state.jobs[index] = nil
                return
            }
        }
    }

    private func next() -> Job {
        while true {
            waitForSemaphore(available)
            let job = queue.withLock { state -> Job? in
                guard state.head < state.jobs.count else { return nil }
                // Taken out, so the queue does not keep a large text alive.
                let job = state.jobs[state.head].take()
                state.head += 1
                if state.head > 64 && state.head * 2 > state.jobs.count {
                    state.jobs.removeFirst(state.head)
                    state.head = 0
                }
                return job
            }
            if let job { return job }
        }
    }

    private func work() {
        while true {
            let size = runOne()
            if size >= Self.trimThreshold {
                // The parse tree and protobuf buffers of a large text were many times its size;
                // glibc keeps freed memory in this thread's arena unless asked to return it.
                _ = pc_malloc_trim()
            }
            if size >= Self.deepTextThreshold {
                // A deep statement may have touched most of the 64 MiB stack (62 MB at the nesting
                // limit); those pages would stay resident until given back.
                pc_release_unused_stack(256 << 10)
            }
        }
    }

    /// Classifies one job and posts the answer; the text's size in bytes.
    private func runOne() -> Int {
        let job = next()
        let started = MonotonicInstant.now()
        let (result, miss, offsets) = Self.perform(job)
        job.mailbox.post(ClassificationDone(ticket: job.ticket, result: result, miss: miss, statementOffsets: offsets,
                                            elapsed: MonotonicInstant.now().duration(since: started)))
        return job.sql.utf8.count
    }
}
