import EventLoop
import Glibc
import Logging
import Wire

/// A listening socket registered with loop 0, which hands accepted connections to the
/// least-loaded loop.
final class Listener: ReadinessHandler {
    static let maxAcceptsPerWakeup = 64

    let fd: Int32
    let label: String
    unowned(unsafe) let owner: LoopWorker
    private var registration: RegistrationID?
    private var paused = false
    /// Out of descriptors the pause repeats up to 10 times a second: a few lines a minute.
    private var pauseLog = RepeatedLogLimiter(burst: 5, interval: .seconds(60))

    init(fd: Int32, label: String, owner: LoopWorker) {
        self.fd = fd
        self.label = label
        self.owner = owner
    }

    func register() throws(Errno) {
        registration = try owner.loop.register(fd: fd, interest: .readable, handler: self)
    }

    func readinessReceived(_ events: ReadinessEvents, id: RegistrationID) {
        for _ in 0..<Self.maxAcceptsPerWakeup {
            do {
                switch try Socket.accept(fd) {
                case .wouldBlock:
                    return
                case .processed(let (client, address)):
                    owner.accepted(fd: client, remote: address)
                }
            } catch Errno.tooManyOpenFiles, Errno.systemFileTableFull, Errno.noBufferSpace, Errno.outOfMemory {
                // The pending connection stays queued and level-triggered epoll would report it
                // again at once: stop listening briefly instead of spinning.
                switch pauseLog.occurred(at: owner.loop.now()) {
                case .log:
                    owner.logger.warning("could not accept new connection: out of file descriptors or memory; pausing \(label) for 100 ms")
                case .suppress:
                    break
                case .summary(let suppressed, let total):
                    owner.logger.warning("could not accept new connections on \(label) \(suppressed) more time(s) since the last report (\(total) since start): out of file descriptors or memory; pausing 100 ms each time")
                }
                pause(for: .milliseconds(100))
                return
            } catch {
                // ECONNABORTED and friends concern one connection only.
                owner.logger.info("accept on \(label) failed: \(error)")
                return
            }
        }
    }

    private func pause(for duration: Duration) {
        guard let registration, !paused else { return }
        paused = true
        owner.loop.setInterest(.none, for: registration)
        owner.loop.scheduleTimer(at: owner.loop.now() + duration) { [weak self] in
            guard let self, let registration = self.registration else { return }
            self.paused = false
            self.owner.loop.setInterest(.readable, for: registration)
        }
    }

    func close() {
        if let registration { owner.loop.deregister(registration) }
        registration = nil
        closeDescriptor(fd)
    }
}

/// Creates listening sockets the way PostgreSQL does (SO_REUSEADDR, IPV6_V6ONLY; a port in use
/// is EADDRINUSE, src/backend/libpq/pqcomm.c StreamServerPort). `reusePort` (`so_reuseport`)
/// lets another process of the same user (Linux enforces that) bind the port too, for a new
/// Portcullis to start while an old one drains; without it, found in review, two instances
/// started by mistake split the connections between two configurations.
enum ListeningSocket {
    static func tcp(host: String, port: UInt16, reusePort: Bool) throws(Errno) -> Int32 {
        guard let address = SocketAddress(host: host, port: port) else { throw Errno(rawValue: EINVAL) }
        let fd = try Socket.stream(family: address.family)
        do throws(Errno) {
            try Socket.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            if reusePort { try Socket.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
            if address.family == AF_INET6 {
                try Socket.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 1)
            }
            try Socket.bind(fd, to: address)
            try Socket.listen(fd, backlog: 511)
            return fd
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// A Unix-domain socket `.s.PGSQL.<port>` in `directory`, with PostgreSQL's
    /// unix_socket_permissions and unix_socket_group semantics.
    static func unix(directory: String, port: UInt16, permissions: UInt32, group: String?) throws(Errno) -> (Int32, String) {
        let path = "\(directory)/.s.PGSQL.\(port)"
        guard let address = SocketAddress(unixPath: path) else { throw Errno(rawValue: ENAMETOOLONG) }
        // A stale socket from a previous run would make bind fail; PostgreSQL guards this with a
        // lock file, we check that nobody answers on it first.
        if (try? syscallValue { access(path, F_OK) }) != nil {
            if isAnswered(address) { throw Errno.addressInUse }
            _ = try? syscallValue { unlink(path) }
        }
        let fd = try Socket.stream(family: AF_UNIX)
        do throws(Errno) {
            try Socket.bind(fd, to: address)
            if let group, !group.isEmpty {
                guard let entry = getgrnam(group) else { throw Errno(rawValue: EINVAL) }
                let gid = entry.pointee.gr_gid
                _ = try syscallValue { chown(path, uid_t.max, gid) }
            }
            _ = try syscallValue { chmod(path, mode_t(permissions)) }
            try Socket.listen(fd, backlog: 511)
            return (fd, path)
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// Whether a server accepts connections on the socket at `address` (a connect that
    /// completes, or whose backlog is full; refused, or no socket, says no).
    private static func isAnswered(_ address: SocketAddress) -> Bool {
        guard let probe = try? Socket.stream(family: AF_UNIX) else { return false }
        defer { closeDescriptor(probe) }
        do throws(Errno) {
            _ = try Socket.connect(probe, to: address)
            return true
        } catch {
            return error == .wouldBlock
        }
    }
}
