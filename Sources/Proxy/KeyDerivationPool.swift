import Auth
import EventLoop
import Synchronization
import Glibc
import CPortcullisShims

/// Threads for SCRAM key derivations (PBKDF2), so that no event loop ever runs one.
///
/// A derivation costs what the stored verifier's iteration count says: a millisecond or two
/// at PostgreSQL's default 4096, seconds at millions, and PostgreSQL
/// accepts any count up to INT_MAX (`scram_iterations`, or a pre-hashed verifier in `ALTER ROLE
/// ... PASSWORD`, which any role may set for itself). PostgreSQL runs it in the login's own
/// backend process (auth-scram.c `scram_SaltedPassword`, crypt.c `plaintext_password_verify`;
/// libpq in the client's process), so a slow one delays nobody else; on a proxy loop it would
/// stall every session of the loop. The proxy derives in two places: as a SCRAM client to the
/// upstream (a login, or a warm spare: pool_min_idle) when ``SCRAMKeyCache`` does not have the
/// keys, and when a client's cleartext password (`password` method) is checked against a
/// SCRAM verifier.
///
/// Two lanes, one thread each, started on first use and living as long as the process:
/// everyday counts (up to ``everydayIterationLimit``) and costly ones. A costly derivation
/// (a role's million-iteration verifier) can only delay other costly ones, never an everyday
/// login. Within a lane the queue takes turns between requesters (the server role, or the
/// client user), so one role's many derivations delay another role's by at most the one
/// running. A running derivation whose askers all gave up (login_timeout, connect_timeout, the
/// client gone) stops within a few thousand iterations (``Crypto/pbkdf2SHA256(password:salt:iterations:while:)``),
/// so a count a role set for itself (PostgreSQL accepts up to INT_MAX: tens of minutes) holds
/// its lane, and a core, only as long as somebody waits for it.
///
/// Identical derivations share one run: a second request for the same inputs (a burst of
/// connects after a password change) waits for the first instead of queueing again. A request
/// whose asker gave up (closed, timed out) is dropped before it starts, or stopped if it runs. Each lane holds at most
/// ``maxQueuedPerLane`` distinct derivations; beyond that the request is refused at once (the
/// login fails) rather than queued without bound.
final class KeyDerivationPool: @unchecked Sendable {
    static let shared = KeyDerivationPool()

    /// 25 times PostgreSQL's default count (4096): well under a second.
    static let everydayIterationLimit = 100_000
    static let maxQueuedPerLane = 1024

    enum Lane: Int, CaseIterable {
        case everyday = 0
        case costly = 1

        init(iterations: Int) {
            self = iterations <= KeyDerivationPool.everydayIterationLimit ? .everyday : .costly
        }
    }

    /// Somebody waiting for a derivation: its loop and its ticket there (``LoopLookups``).
    struct Waiter {
        let ticket: UInt64
        let mailbox: LoopMailbox
    }

    /// Its mutable parts change only under ``state``'s lock.
    private final class Job: @unchecked Sendable {
        let derivation: SCRAMKeyDerivation
        let requester: String
        var waiters: [Waiter]
        var started = false
        /// Set, under the lock, when the last waiter of a started job gave up; read by its thread
        /// between steps of the derivation.
        let stop = Atomic<Bool>(false)

        init(_ derivation: SCRAMKeyDerivation, requester: String, waiter: Waiter) {
            self.derivation = derivation
            self.requester = requester
            waiters = [waiter]
        }
    }

    /// One lane's queue: a FIFO per requester, served in turns.
    struct LaneQueue {
        var byRequester: [String: [[UInt8]]] = [:]
        var turns: [String] = []
        var count = 0

        mutating func append(_ key: [UInt8], requester: String) {
            if byRequester[requester] == nil { turns.append(requester) }
            byRequester[requester, default: []].append(key)
            count += 1
        }

        mutating func remove(_ key: [UInt8], requester: String) {
            guard var keys = byRequester[requester], let index = keys.firstIndex(of: key) else { return }
            keys.remove(at: index)
            count -= 1
            if keys.isEmpty {
                byRequester[requester] = nil
                turns.removeAll { $0 == requester }
            } else {
                byRequester[requester] = keys
            }
        }

        /// The next requester's oldest job; that requester goes to the back of the turns.
        mutating func next() -> [UInt8]? {
            while !turns.isEmpty {
                let requester = turns.removeFirst()
                guard var keys = byRequester[requester], !keys.isEmpty else { continue }
                let key = keys.removeFirst()
                count -= 1
                if keys.isEmpty {
                    byRequester[requester] = nil
                } else {
                    byRequester[requester] = keys
                    turns.append(requester)
                }
                return key
            }
            return nil
        }
    }

    private struct State {
        /// Queued or running, by ``SCRAMKeyDerivation/sharingKey``.
        var jobs: [[UInt8]: Job] = [:]
        var lanes = [LaneQueue(), LaneQueue()]
        var started = false
    }

    private let state = Mutex<State>(State())
    /// Counts queued jobs per lane; each lane's thread sleeps on its own.
    private let available: [UnsafeMutablePointer<sem_t>]

    init() {
        available = Lane.allCases.map { _ in
            let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
            sem_init(semaphore, 0, 0)
            return semaphore
        }
    }

    /// Queues `derivation` (or joins the same one already queued or running); its keys are
    /// posted to `mailbox` as a ``LookupDone`` with `ticket`. False: the lane is full.
    func submit(_ derivation: SCRAMKeyDerivation, requester: String, ticket: UInt64, mailbox: LoopMailbox) -> Bool {
        let lane = Lane(iterations: derivation.iterations)
        let key = derivation.sharingKey
        let waiter = Waiter(ticket: ticket, mailbox: mailbox)
        enum Outcome { case joined, queued(startThreads: Bool), refused }
        let outcome = state.withLock { state -> Outcome in
            // A job told to stop is not joined: the new asker gets a run of its own.
            if let job = state.jobs[key], !job.stop.load(ordering: .relaxed) {
                job.waiters.append(waiter)
                return .joined
            }
            guard state.lanes[lane.rawValue].count < Self.maxQueuedPerLane else { return .refused }
            state.jobs[key] = Job(derivation, requester: requester, waiter: waiter)
            state.lanes[lane.rawValue].append(key, requester: requester)
            defer { state.started = true }
            return .queued(startThreads: !state.started)
        }
        switch outcome {
        case .joined:
            return true
        case .refused:
            return false
        case .queued(let startThreads):
            if startThreads {
                for lane in Lane.allCases {
                    LoopThread.detach(LoopThread.start(name: "portcullis-kdf\(lane.rawValue)") { [self] in self.work(lane) })
                }
            }
            // One count per queued job (a cancelled one leaves a count: its thread wakes, finds
            // nothing and sleeps again).
            sem_post(available[lane.rawValue])
            return true
        }
    }

    /// The asker no longer wants the keys: a job nobody waits for any more is dropped if it
    /// has not started, and told to stop if it runs (nothing is cached then).
    func cancel(ticket: UInt64, mailbox: LoopMailbox) {
        state.withLock { state in
            for (key, job) in state.jobs {
                guard let index = job.waiters.firstIndex(where: { $0.ticket == ticket && $0.mailbox === mailbox }) else { continue }
                job.waiters.remove(at: index)
                if job.waiters.isEmpty && !job.started {
                    state.jobs[key] = nil
                    state.lanes[Lane(iterations: job.derivation.iterations).rawValue].remove(key, requester: job.requester)
                } else if job.waiters.isEmpty {
                    job.stop.store(true, ordering: .relaxed)
                }
                return
            }
        }
    }

    /// Distinct derivations queued (not yet started) in `lane`: for tests.
    func queued(_ lane: Lane) -> Int {
        state.withLock { $0.lanes[lane.rawValue].count }
    }

    private func work(_ lane: Lane) {
        while true {
            waitForSemaphore(available[lane.rawValue])
            let job = state.withLock { state -> Job? in
                guard let key = state.lanes[lane.rawValue].next(), let job = state.jobs[key] else { return nil }
                job.started = true
                return job
            }
            guard let job else { continue }
            guard let keys = job.derivation.derive(while: { !job.stop.load(ordering: .relaxed) }) else {
                // Stopped: nobody waited when it was told to, and a later asker got a job of
                // its own (``submit``), so there is nobody to answer.
                state.withLock { state in
                    if state.jobs[job.derivation.sharingKey] === job { state.jobs[job.derivation.sharingKey] = nil }
                }
                continue
            }
            let waiters = state.withLock { state -> [Waiter] in
                if state.jobs[job.derivation.sharingKey] === job { state.jobs[job.derivation.sharingKey] = nil }
                return job.waiters
            }
            for waiter in waiters { waiter.mailbox.post(LookupDone(ticket: waiter.ticket, value: keys)) }
        }
    }
}
