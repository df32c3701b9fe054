import EventLoop
import Auth
import Config
import Access
import Synchronization
import Glibc
import CPortcullisShims

/// A blocking call's answer, posted to the asking loop's mailbox.
struct LookupDone: Sendable {
    let ticket: UInt64
    let value: any Sendable
}

/// The answer to a derivation the pool had no room for.
struct KeyDerivationRefused: Sendable {}

/// Threads for calls that can block for seconds — getaddrinfo/getnameinfo (DNS), getpwuid_r
/// (NSS: LDAP, sssd) — so that only the connection that needs the answer waits, never its
/// loop. Started on first use, living as long as the process. Each job is short-lived compared
/// with a session; a lookup that hangs holds one thread until the resolver's own timeout.
final class LookupThreads: @unchecked Sendable {
    static let shared = LookupThreads(threadCount: 8)

    let threadCount: Int
    private let queue = Mutex<(jobs: [@Sendable () -> Void], started: Bool)>(([], false))
    private let available: UnsafeMutablePointer<sem_t>

    init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        available = .allocate(capacity: 1)
        sem_init(available, 0, 0)
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        let start = queue.withLock { state -> Bool in
            state.jobs.append(job)
            defer { state.started = true }
            return !state.started
        }
        if start {
            for index in 0..<threadCount {
                LoopThread.detach(LoopThread.start(name: "portcullis-dns\(index)") { [self] in self.work() })
            }
        }
        sem_post(available)
    }

    private func work() {
        while true {
            waitForSemaphore(available)
            let job = queue.withLock { state -> (@Sendable () -> Void)? in
                state.jobs.isEmpty ? nil : state.jobs.removeFirst()
            }
            job?()
        }
    }
}

/// One loop's side of ``LookupThreads``: whoever asks gets its answer later on this loop
/// (through the mailbox, never from inside its own call), unless it cancelled meanwhile.
/// Confined to the loop's thread.
final class LoopLookups {
    private let mailbox: LoopMailbox
    private let derivations: KeyDerivationPool
    private var waiting: [UInt64: (any Sendable) -> Void] = [:]
    /// Tickets of ``derive(_:for:completion:)`` still waiting (their cancel reaches the pool).
    private var derivationTickets: Set<UInt64> = []
    private var nextTicket: UInt64 = 1

    init(mailbox: LoopMailbox, derivations: KeyDerivationPool = .shared) {
        self.mailbox = mailbox
        self.derivations = derivations
    }

    /// Debug builds only: every host-name resolution on the lookup threads first sleeps this
    /// long (environment variable PORTCULLIS_TEST_RESOLVER_DELAY_MS, read once at start-up),
    /// so tests can show a slow resolver stalls only the connection that waits for it.
    static let testResolverDelay: Duration? = {
        #if DEBUG
        if let text = getenv("PORTCULLIS_TEST_RESOLVER_DELAY_MS").map({ String(cString: $0) }), let ms = Int(text), ms > 0 {
            return .milliseconds(ms)
        }
        #endif
        return nil
    }()

    /// Runs `work` on a lookup thread; `completion` runs on this loop with its result.
    @discardableResult
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T, completion: @escaping (T) -> Void) -> UInt64 {
        let ticket = nextTicket
        nextTicket += 1
        waiting[ticket] = { value in if let value = value as? T { completion(value) } }
        let mailbox = mailbox
        LookupThreads.shared.submit { mailbox.post(LookupDone(ticket: ticket, value: work())) }
        return ticket
    }

    /// Runs a SCRAM key derivation on the ``KeyDerivationPool`` (never on this loop);
    /// `completion` runs on this loop with the keys, or nil when the pool's lane is full (then
    /// after the current batch, never inside this call). `requester` is whom the pool's turns
    /// are fair between (a role, a client user).
    func derive(_ derivation: SCRAMKeyDerivation, for requester: String, completion: @escaping (SCRAMKeys?) -> Void) -> UInt64 {
        let ticket = nextTicket
        nextTicket += 1
        waiting[ticket] = { value in completion(value as? SCRAMKeys) }
        if derivations.submit(derivation, requester: requester, ticket: ticket, mailbox: mailbox) {
            derivationTickets.insert(ticket)
        } else {
            mailbox.post(LookupDone(ticket: ticket, value: KeyDerivationRefused()))
        }
        return ticket
    }

    /// The asker no longer wants the answer.
    func cancel(_ ticket: UInt64) {
        waiting[ticket] = nil
        if derivationTickets.remove(ticket) != nil { derivations.cancel(ticket: ticket, mailbox: mailbox) }
    }

    func deliver(_ done: LookupDone) {
        derivationTickets.remove(done.ticket)
        waiting.removeValue(forKey: done.ticket)?(done.value)
    }

    /// Where to connect for `target`. Socket directories and IP literals (the common case)
    /// are answered at once, inside this call; host names go to a lookup thread and the
    /// returned ticket can cancel the answer.
    func addresses(for target: DatabaseTarget, completion: @escaping ([SocketAddress]) -> Void) -> UInt64? {
        guard target.needsNameResolution else {
            completion(target.socketAddresses())
            return nil
        }
        let delay = Self.testResolverDelay
        return run({ () -> [SocketAddress] in
            if let delay { Self.sleep(delay) }
            return target.socketAddresses()
        }, completion: completion)
    }

    static func sleep(_ duration: Duration) {
        pauseThread(for: duration)
    }
}

extension DatabaseTarget {
    /// A host name (not a socket directory, not an IP literal, no `hostaddr`): resolving it may block.
    var needsNameResolution: Bool {
        if host.hasPrefix("/") { return false }
        return SocketAddress(host: hostaddr ?? host, port: port) == nil
    }
}

/// What a session needs from blocking calls before its start-up machine runs: the peer's
/// operating-system user (getpwuid_r, for pg_hba.conf `peer`) and the client's host name
/// (getnameinfo then getaddrinfo, for pg_hba.conf host-name addresses). Computed on a lookup
/// thread, only when the rules in force can use them.
struct SessionPrestart: Sendable {
    var peerUser: String?
    /// The rules with the client's host-name lookups already answered; nil: the runtime's rules.
    var access: (any ClientAccessRules)?

    init(peerUser: String? = nil, access: (any ClientAccessRules)? = nil) {
        self.peerUser = peerUser
        self.access = access
    }

    /// Which lookups a connection needs under `rules`; nil when none (no thread involved).
    static func needed(rules: any ClientAccessRules, remote: SocketAddress) -> (peer: Bool, hostName: Bool)? {
        guard let hba = rules as? HbaAccessRules else { return nil }
        let peer = remote.isUnix && hba.usesPeer
        // Only when a host-name line can be reached from this address (PostgreSQL resolves
        // only then, too).
        let hostName = !remote.isUnix && hba.usesHostNames
            && IPAddress(parsing: remote.host).map { hba.hba.mayConsultHostNames(client: $0.unmappingIPv4, localInterfaces: hba.interfaces) } ?? false
        return peer || hostName ? (peer, hostName) : nil
    }

    /// Runs on a lookup thread.
    static func perform(fd: Int32, remote: SocketAddress, rules: any ClientAccessRules, peer: Bool, hostName: Bool) -> SessionPrestart {
        var result = SessionPrestart()
        if peer { result.peerUser = ClientSession.peerUserName(fd) }
        if hostName, let hba = rules as? HbaAccessRules, let client = IPAddress(parsing: remote.host).map(\.unmappingIPv4) {
            let delay = LoopLookups.testResolverDelay
            if let delay { LoopLookups.sleep(delay) }
            let system = HostnameResolver.system
            let name = system.reverseLookup(client)
            let addresses = name.flatMap { system.forwardLookup($0) }
            result.access = hba.resolving(ResolvedClientHost(client: client, name: name, addresses: addresses))
        }
        return result
    }
}

/// The client's host name and that name's addresses, looked up once per connection as
/// PostgreSQL does (hba.c check_hostname: getnameinfo(NI_NAMEREQD), then getaddrinfo of the
/// result must give back the client address).
struct ResolvedClientHost: Sendable {
    let client: IPAddress
    let name: String?
    let addresses: [IPAddress]?

    var resolver: HostnameResolver {
        let client = client, name = name, addresses = addresses
        return HostnameResolver(reverseLookup: { $0 == client ? name : nil },
                                forwardLookup: { $0 == name ? addresses : nil })
    }
}
