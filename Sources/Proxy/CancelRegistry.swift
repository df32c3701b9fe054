import Config
import Synchronization

/// Maps the cancel keys we hand to clients to the upstream backend they stand for. Shared by all
/// loops: a CancelRequest arrives on a new connection that may land on any loop. Touched at
/// session start, session end and cancel — never per message — and in transaction pooling
/// when a server connection is attached or released (once per transaction), so the client's
/// one key always reaches the backend running its query.
public final class CancelRegistry: Sendable {
    public struct Key: Hashable, Sendable {
        public var processID: Int32
        /// The secret inline: the keys we issue have four bytes (BackendKeyData in protocol
        /// 3.0), and an array of four would cost every session a 48-byte allocation.
        public var secret: UInt32

        public init(processID: Int32, secret: UInt32) {
            self.processID = processID
            self.secret = secret
        }

        /// A key as a CancelRequest carries it; nil for a secret of any other length, which
        /// we never issue (so no session has it).
        public init?(processID: Int32, secretKey: [UInt8]) {
            guard secretKey.count == 4 else { return nil }
            self.init(processID: processID, secret: secretKey.reduce(0) { $0 << 8 | UInt32($1) })
        }

        /// The secret as BackendKeyData sends it (network byte order).
        public var secretBytes: [UInt8] { withUnsafeBytes(of: secret.bigEndian, Array.init) }
    }

    public struct Entry: Sendable {
        public var target: DatabaseTarget
        public var runtime: RuntimeConfig
        public var serverSecretKey: [UInt8]
        /// The backend the key stands for now when it is not the key's own process ID
        /// (transaction pooling: whichever server runs the client's transaction).
        public var backendProcessID: Int32? = nil
        /// Transaction pooling between transactions: no backend runs anything for the client,
        /// so a CancelRequest is ignored (as PostgreSQL ignores one for an idle backend).
        public var detached = false
    }

    /// Where a cancel for a session's server goes, and under which configuration (its TLS
    /// contexts). Shared: transaction pooling's idle clients of one pool hold one between them
    /// (``TransactionPoolRequest``), not a copy of the target each.
    final class Destination: Sendable {
        let target: DatabaseTarget
        let runtime: RuntimeConfig

        init(target: DatabaseTarget, runtime: RuntimeConfig) {
            self.target = target
            self.runtime = runtime
        }
    }

    /// One session's key: what it stands for now. The session holds it and moves it at each
    /// transaction (transaction pooling) under its own lock, so attaching and releasing a
    /// server takes neither the registry's lock nor a lookup; a CancelRequest reads it through
    /// the registry.
    final class Binding: Sendable {
        struct Current {
            /// Moves with the backend: after a reload moved a transaction-pooled client's
            /// entry, its next servers are the new host's.
            var destination: Destination
            var serverSecretKey: [UInt8]
            var backendProcessID: Int32?
            var detached = false
        }

        let key: Key
        fileprivate let current: Mutex<Current>

        fileprivate init(key: Key, destination: Destination, serverSecretKey: [UInt8], detached: Bool) {
            self.key = key
            current = Mutex(Current(destination: destination, serverSecretKey: serverSecretKey, detached: detached))
        }

        /// What a cancel forwarded now would use.
        var entry: Entry {
            let now = current.withLock { $0 }
            return Entry(target: now.destination.target, runtime: now.destination.runtime, serverSecretKey: now.serverSecretKey,
                         backendProcessID: now.backendProcessID, detached: now.detached)
        }
    }

    private struct State {
        var entries: [Key: Binding] = [:]
        /// Cancel requests forwarded and not yet finished, per backend process ID. PostgreSQL
        /// cancels whatever that backend runs when the signal lands (postmaster.c
        /// processCancelRequest), so a server connection with one in flight must not be
        /// handed to another client: the cancel would reach the other client's query.
        var cancelsInFlight: [Int32: Int] = [:]
    }

    private let state = Mutex(State())
    /// The sum of ``State/cancelsInFlight``, raised inside the binding's lock by
    /// ``beginCancel(_:)``: a release that finds it zero after moving its binding knows no
    /// cancel can be on its way to the backend it left, without taking the registry's lock.
    private let inFlightTotal = Atomic<Int>(0)

    public init() {}

    /// A new session's key (the caller made sure it is unused: ``contains(_:)``).
    /// `detached`: no server runs anything for the session yet (a transaction-mode login
    /// answered from its pool), so a cancel goes nowhere from the first moment.
    func insert(_ key: Key, destination: Destination, serverSecretKey: [UInt8], detached: Bool = false) -> Binding {
        let binding = Binding(key: key, destination: destination, serverSecretKey: serverSecretKey, detached: detached)
        state.withLock { $0.entries[key] = binding }
        return binding
    }

    func contains(_ key: Key) -> Bool {
        state.withLock { $0.entries[key] != nil }
    }

    /// Transaction pooling: the key now stands for this backend (nil: none, between
    /// transactions), reached through `destination` (nil: the same as before). Returns whether
    /// a cancel request for the backend it stood for is still on its way (then that server
    /// connection must not serve anyone else).
    @discardableResult
    func attach(_ binding: Binding, backend: (processID: Int32, secretKey: [UInt8])?, destination: Destination? = nil) -> Bool {
        let previous = binding.current.withLock { current in
            let previous = current.backendProcessID ?? binding.key.processID
            if let backend {
                current.backendProcessID = backend.processID
                current.serverSecretKey = backend.secretKey
                if let destination, destination !== current.destination { current.destination = destination }
            }
            current.detached = backend == nil
            return previous
        }
        // A cancel that read the binding before it moved raised the total inside that same
        // lock, so it is seen here; one that reads it after finds it detached.
        guard backend == nil, inFlightTotal.load(ordering: .sequentiallyConsistent) > 0 else { return false }
        return cancelIsInFlight(backendProcessID: previous)
    }

    /// The session ends. Returns whether a cancel request for its backend is still on its way.
    @discardableResult
    func remove(_ binding: Binding) -> Bool {
        state.withLock { state in
            guard state.entries[binding.key] === binding else { return false }
            state.entries[binding.key] = nil
            let backend = binding.current.withLock { $0.backendProcessID } ?? binding.key.processID
            return state.cancelsInFlight[backend, default: 0] > 0
        }
    }

    /// A CancelRequest: the entry (nil: unknown key) and, unless it is detached, the backend
    /// to cancel, counted in flight — while the binding cannot move (``attach(_:backend:)``)
    /// and in the lock ``remove(_:)`` reads it in — until ``cancelFinished(backendProcessID:)``.
    func beginCancel(_ key: Key) -> (entry: Entry, backendProcessID: Int32?)? {
        state.withLock { state in
            guard let binding = state.entries[key] else { return nil }
            let current = binding.current.withLock { current in
                if !current.detached { inFlightTotal.add(1, ordering: .sequentiallyConsistent) }
                return current
            }
            let entry = Entry(target: current.destination.target, runtime: current.destination.runtime, serverSecretKey: current.serverSecretKey,
                              backendProcessID: current.backendProcessID, detached: current.detached)
            guard !current.detached else { return (entry, nil) }
            let backend = current.backendProcessID ?? key.processID
            state.cancelsInFlight[backend, default: 0] += 1
            return (entry, backend)
        }
    }

    /// The forwarded cancel request is over (PostgreSQL closed the connection after signalling
    /// the backend, or the forwarding failed or timed out).
    func cancelFinished(backendProcessID: Int32) {
        state.withLock { state in
            guard let count = state.cancelsInFlight[backendProcessID] else { return }
            state.cancelsInFlight[backendProcessID] = count > 1 ? count - 1 : nil
            inFlightTotal.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    func cancelIsInFlight(backendProcessID: Int32) -> Bool {
        guard inFlightTotal.load(ordering: .sequentiallyConsistent) > 0 else { return false }
        return state.withLock { $0.cancelsInFlight[backendProcessID, default: 0] > 0 }
    }
}
