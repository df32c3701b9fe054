import EventLoop
import Synchronization
import Config
import TLS
import Auth
import Glibc
import Logging
import Admin
import AuditSink
import CPortcullisShims

public struct ProxyStartupError: Error, CustomStringConvertible {
    public var description: String
}

/// The process: listeners, one event loop per worker thread, signals and reload.
public final class ProxyServer {
    private let configPath: String
    private let logger: Logger

    public init(configPath: String, logger: Logger) {
        self.configPath = configPath
        self.logger = logger
    }

    /// Loads and validates the configuration and builds its TLS contexts.
    /// `previous`: the runtime in force, whose role membership is kept when it cannot be
    /// read again.
    public static func loadRuntime(path: String, logger: Logger, mockSeed: [UInt8], previous: RuntimeConfig? = nil) throws -> RuntimeConfig {
        let plain = try loadConfiguration(path: path)
        let access = try AccessFiles.load(plain, logger: logger, previous: previous?.accessFiles)
        do {
            return try RuntimeConfig(config: plain, mockSeed: mockSeed, logger: logger, accessFiles: access)
        } catch {
            throw ProxyStartupError(description: "\(path): \(error.message)")
        }
    }

    /// Loads and validates the configuration, with `enc:` values decrypted in memory.
    public static func loadConfiguration(path: String) throws -> PortcullisConfig {
        let config: PortcullisConfig
        do {
            config = try ConfigLoader.load(path: path)
            try ConfigLoader.checkSecretsNotExposed(path: path, config: config)
        } catch {
            throw ProxyStartupError(description: error.description)
        }
        do {
            return try ConfigSecrets.decrypted(config)
        } catch {
            throw ProxyStartupError(description: "\(path): \(error.description)")
        }
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    public func run() throws {
        // Before anything touches OpenSSL: no atexit cleanup while a background libpq thread
        // (role check, membership) may still be inside libcrypto.
        _ = pc_openssl_init_without_atexit()
        // Stable across restarts (and kept across reloads): see MockSeed.
        let (mockSeed, seedSource) = MockSeed.derive(try Self.loadConfiguration(path: configPath))
        let runtime = try Self.loadRuntime(path: configPath, logger: logger, mockSeed: mockSeed)
        // PostgreSQL starts without maps when pg_ident.conf cannot be loaded (postmaster.c:
        // "we can start up without the IDENT file"); so does Portcullis, saying why.
        for file in runtime.accessFiles.refusedFiles {
            logger.error("could not load \(file.kind.rawValue) \"\(file.path)\"; starting without its maps:\n\(file.errors.joined(separator: "\n"))")
        }
        if seedSource == .random {
            logger.warning("neither secret_key_file nor a TLS key is configured: mock SCRAM salts for unknown users change at every restart, which lets a client tell unknown users from known ones")
        }
        let general = runtime.config.general
        // Signals must be blocked before any thread starts so that only the signalfd sees them.
        let signalFD: Int32
        do { signalFD = try SignalSource.blockProcessSignals() } catch {
            throw ProxyStartupError(description: "could not set up signal handling: \(error)")
        }
        let workers = general.workers > 0 ? general.workers : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

        // Bind everything before starting, so that a port in use is a start-up error.
        // Loop 0 accepts and hands each connection to the least-loaded loop, which owns it from
        // then on (the hand-off is per connection, never per message).
        // Socket activation (portcullis.socket): systemd bound the sockets; ours are not bound.
        let activated = ServiceNotifier.listenFDs()
        for fd in activated where sd_is_socket(fd, Int32(AF_UNSPEC), Int32(SOCK_STREAM.rawValue), 1) <= 0 {
            throw ProxyStartupError(description: "socket activation: descriptor \(fd) passed by systemd is not a listening stream socket (ListenStream= in portcullis.socket)")
        }
        var tcpSockets: [(Int32, String)] = activated.map { ($0, "socket passed by systemd (fd \($0))") }
        for host in general.listenAddresses where activated.isEmpty {
            do {
                let fd = try ListeningSocket.tcp(host: host, port: general.listenPort, reusePort: general.soReusePort)
                tcpSockets.append((fd, "\(host):\(general.listenPort)"))
            } catch {
                throw ProxyStartupError(description: "could not bind to address \"\(host)\", port \(general.listenPort): \(error)")
            }
        }
        var unixSockets: [(Int32, String)] = []
        for directory in general.unixSocketDirectories where activated.isEmpty {
            do {
                let (fd, path) = try ListeningSocket.unix(directory: directory, port: general.listenPort,
                                                          permissions: general.unixSocketPermissions, group: general.unixSocketGroup)
                unixSockets.append((fd, path))
            } catch {
                throw ProxyStartupError(description: "could not create Unix-domain socket in directory \"\(directory)\": \(error)")
            }
        }
        // The internal backup endpoint is ours even under socket activation.
        let internalSocket = try Self.bindInternalSocket(runtime.config)
        if let (fd, path) = internalSocket {
            unixSockets.append((fd, path))
            logger.info("listening on internal backup socket \"\(path)\" (0600, only the backup identity \"\(runtime.config.backup?.identity ?? "")\" is admitted)")
        }
        if !activated.isEmpty { logger.info("using \(activated.count) listening socket(s) passed by systemd; listen_addresses, listen_port and unix_socket_directories are not used") }
        for host in general.listenAddresses where activated.isEmpty { logger.info("listening on \(host.contains(":") ? "IPv6" : "IPv4") address \"\(host)\", port \(general.listenPort)") }
        for (_, path) in unixSockets { logger.info("listening on Unix socket \"\(path)\"") }
        let reporter = ReloadReporter(pidFile: general.pidFile, logger: logger)
        try reporter.start()

        let shared = ProxyShared(internalSocketPath: internalSocket?.1)
        shared.keptTexts.setLimit(general.maxKeptStatementMemory)
        let counter = ConnectionCounter()
        let mailboxes = MailboxDirectory(count: workers)
        let loads = LoopLoads(count: workers)
        let path = configPath
        let baseLogger = logger
        let reloader = Reloader(current: runtime)
        let catalogRefresher: CatalogRefresher
        do {
            catalogRefresher = try CatalogRefresher(store: shared.catalogs, logger: logger) { reloader.current.config }
        } catch {
            throw ProxyStartupError(description: "could not start the catalog refresher: \(error)")
        }
        shared.catalogs.setRefreshHandler { catalogRefresher.refreshSoon() }
        catalogRefresher.start()
        let auditStream = try AuditStream.start(runtime.config.general.audit, loops: workers, mailboxes: mailboxes, logger: logger)
        // schedule.<database> backups, on their own thread (never a loop's).
        let backupScheduler = Self.startBackupScheduler(configPath: path, config: runtime.config, logger: logger, audit: auditStream)
        var threads: [pthread_t] = []
        let sockets = tcpSockets
        let unixListeners = unixSockets
        for worker in 0..<workers {
            let mine = worker == 0 ? sockets + unixListeners : []
            threads.append(LoopThread.start(name: "portcullis-\(worker)") {
                let loop: EventLoop
                do { loop = try EventLoop(index: worker) } catch { fatalError("could not create event loop: \(error)") }
                mailboxes.set(worker, loop.mailbox)
                let context = LoopWorker(loop: loop, runtime: runtime, shared: shared, counter: counter, loads: loads, mailboxes: mailboxes)
                context.audit = auditStream?.loopAudit(worker)
                context.startSweeper()
                for (fd, label) in mine {
                    do { try context.addListener(fd: fd, label: label) } catch { fatalError("could not register listener: \(error)") }
                }
                var signals: SignalWatcher?
                if worker == 0 {
                    signals = SignalWatcher(fd: signalFD) { signo in
                        switch signo {
                        case SIGHUP:
                            baseLogger.info("received SIGHUP, reloading configuration files")
                            auditStream?.writer.requestReopen()
                            // Loading may wait on the upstream (role membership for +group), so
                            // it runs off the loop; the loops get the new runtime whole, or
                            // keep the old one when anything in it has errors.
                            reloader.request {
                                // Before the files are read: see ReloadStatus.
                                let startedAt = ReloadStatus.now()
                                ServiceNotifier.reloading()
                                defer { ServiceNotifier.ready() }
                                do {
                                    let fresh = try ProxyServer.loadRuntime(path: path, logger: baseLogger, mockSeed: mockSeed,
                                                                            previous: reloader.current)
                                    let current = reloader.current
                                    if fresh.config.backup?.internalSocketDirectory != current.config.backup?.internalSocketDirectory {
                                        baseLogger.warning("internal_socket_directory cannot be changed without restarting; the socket bound at start stays, admitting the backup identity only")
                                    }
                                    if fresh.config.general.listenAddresses != current.config.general.listenAddresses
                                        || fresh.config.general.listenPort != current.config.general.listenPort
                                        || fresh.config.general.soReusePort != current.config.general.soReusePort {
                                        baseLogger.warning("listen_addresses, listen_port and so_reuseport cannot be changed without restarting")
                                    }
                                    reloader.current = fresh
                                    shared.keptTexts.setLimit(fresh.config.general.maxKeptStatementMemory)
                                    backupScheduler.update(fresh.config)
                                    let applied = ReloadBarrier(loops: workers)
                                    mailboxes.broadcast(LoopControl.reload(fresh, applied: applied))
                                    catalogRefresher.refreshSoon()
                                    // Reported once every loop has it in force (portcullis reload waits for this).
                                    let refusedFiles = fresh.accessFiles.refusedFiles
                                    for file in refusedFiles {
                                        baseLogger.error("\(file.summary):\n\(file.errors.joined(separator: "\n"))")
                                    }
                                    if applied.wait(timeout: .seconds(30)) {
                                        if refusedFiles.isEmpty {
                                            baseLogger.info("configuration reloaded")
                                            auditStream?.reloaded(ok: true, path: path)
                                            reporter.report(startedAt: startedAt, outcome: .applied)
                                        } else {
                                            let errors = refusedFiles.flatMap { [$0.summary] + $0.errors }
                                            baseLogger.warning("configuration reloaded except \(refusedFiles.map(\.kind.rawValue).joined(separator: " and "))")
                                            auditStream?.reloaded(ok: true, path: path, errors: errors.joined(separator: "\n"), partial: true)
                                            reporter.report(startedAt: startedAt, outcome: .partial, errors: errors)
                                        }
                                    } else {
                                        baseLogger.error("configuration reloaded, but not every event loop confirmed it within 30 s")
                                        reporter.report(startedAt: startedAt, outcome: .unconfirmed)
                                    }
                                } catch {
                                    auditStream?.reloaded(ok: false, path: path, errors: "\(error)")
                                    baseLogger.error("configuration file \"\(path)\" contains errors; unaffected changes were not applied:\n\(error)")
                                    reporter.report(startedAt: startedAt, outcome: .refused, errors: ["\(error)"])
                                }
                            }
                        default:
                            ServiceNotifier.stopping()
                            baseLogger.info("received \(signo == SIGINT ? "SIGINT" : "SIGTERM"), shutting down")
                            mailboxes.broadcast(LoopControl.beginShutdown(drainTimeout: runtime.config.general.shutdownDrainTimeout))
                        }
                    }
                    do { try signals?.register(on: loop) } catch { fatalError("could not watch signals: \(error)") }
                }
                loop.run()
                signals?.unregister(from: loop)
                _ = context
            })
        }
        ServiceNotifier.ready()
        let monitor = ServiceMonitor.start(loops: workers, mailboxes: mailboxes, counter: counter)
        Self.warnAboutOverprivilegedRoles(runtime.config, logger: logger)
        for thread in threads { LoopThread.join(thread) }
        monitor?.stop()
        backupScheduler.stop()
        // Every loop has drained: what their sessions queued is written before exit.
        if let unwritten = auditStream?.writer.stop(), unwritten > 0 {
            logger.error("audit: \(unwritten) event(s) not written: a sink did not take them within \(AuditWriter.stopTimeout) of shutdown")
        }
        for (_, path) in unixSockets { _ = try? syscallValue { unlink(path) } }
        closeDescriptor(signalFD)
        reporter.finish()
        logger.info("shut down")
    }
}

extension ProxyServer {
    /// At start-up, in the background: the upstream role of every read-only identity should be
    /// able to read only (portcullis check-role does the same on demand). Warnings, not errors:
    /// the proxy's own checks are the first wall either way.
    static func warnAboutOverprivilegedRoles(_ config: PortcullisConfig, logger: Logger) {
        let identities = config.identities.values.filter { $0.mode == .readOnly }
        let targets = config.databases.values.filter { $0.name != "*" }
        guard !identities.isEmpty, !targets.isEmpty else { return }
        let checks = identities.flatMap { identity in targets.map { RoleCheck.plan(identity: identity, target: $0, config: config) } }
        let thread = LoopThread.start(name: "portcullis-roles") {
            for check in checks {
                do {
                    let findings = try check.findings()
                    if !findings.isEmpty {
                        logger.warning("upstream role \"\(check.role)\" of read-only identity \"\(check.identity)\" can do more than read on database \"\(check.target.name)\"\(check.via): \(findings.map(\.description).joined(separator: "; ")) (see portcullis check-role)")
                    }
                } catch {
                    logger.warning("could not check the upstream role of read-only identity \"\(check.identity)\" on database \"\(check.target.name)\"\(check.via): \(error)")
                }
            }
        }
        LoopThread.detach(thread)
    }
}

/// Runs reloads one at a time on a background thread; a SIGHUP during a reload runs another
/// one after it, so the last signal's files always win.
final class Reloader: Sendable {
    private struct State {
        var running = false
        var requestedAgain = false
        var current: RuntimeConfig
    }

    private let state: Mutex<State>

    init(current: RuntimeConfig) {
        state = Mutex(State(current: current))
    }

    var current: RuntimeConfig {
        get { state.withLock { $0.current } }
        set { state.withLock { $0.current = newValue } }
    }

    func request(_ work: @escaping @Sendable () -> Void) {
        let start = state.withLock { state -> Bool in
            if state.running {
                state.requestedAgain = true
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        let thread = LoopThread.start(name: "portcullis-reload") { [self] in
            repeat {
                work()
            } while state.withLock { state -> Bool in
                if state.requestedAgain {
                    state.requestedAgain = false
                    return true
                }
                state.running = false
                return false
            }
        }
        LoopThread.detach(thread)
    }
}

/// Mailboxes of all loops, filled in as each loop starts. A broadcast reaches loops that start
/// later too (a shutdown before every loop runs).
final class MailboxDirectory: Sendable {
    private struct State {
        var boxes: [LoopMailbox?]
        var early: [any Sendable] = []
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(boxes: Array(repeating: nil, count: count)))
    }

    func set(_ index: Int, _ box: LoopMailbox) {
        let pending = state.withLock { state in
            state.boxes[index] = box
            let early = state.early
            // Once every loop has its box, nothing is kept for later ones.
            if !state.boxes.contains(where: { $0 == nil }) { state.early = [] }
            return early
        }
        for message in pending { box.post(message) }
    }

    func box(_ index: Int) -> LoopMailbox? {
        state.withLock { $0.boxes[index] }
    }

    func broadcast(_ message: any Sendable) {
        let current = state.withLock { state in
            // Kept only for loops not started yet: kept for good, every reload's runtime (TLS
            // contexts and all) stayed alive, about 70 kB per SIGHUP (found in review).
            if state.boxes.contains(where: { $0 == nil }) { state.early.append(message) }
            return state.boxes.compactMap { $0 }
        }
        for box in current { box.post(message) }
    }
}

/// Delivers signals read from the signalfd on loop 0.
final class SignalWatcher: ReadinessHandler {
    let fd: Int32
    let handler: (Int32) -> Void
    private var registration: RegistrationID?

    init(fd: Int32, handler: @escaping (Int32) -> Void) {
        self.fd = fd
        self.handler = handler
    }

    func register(on loop: EventLoop) throws(Errno) {
        registration = try loop.register(fd: fd, interest: .readable, handler: self)
    }

    func unregister(from loop: EventLoop) {
        if let registration { loop.deregister(registration) }
    }

    func readinessReceived(_ events: ReadinessEvents, id: RegistrationID) {
        for signo in SignalSource.readPending(fd) { handler(signo) }
    }
}
