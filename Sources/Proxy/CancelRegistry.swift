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
        public var secretKey: [UInt8]
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

    private struct State {
        var entries: [Key: Entry] = [:]
        /// Cancel requests forwarded and not yet finished, per backend process ID. PostgreSQL
        /// cancels whatever that backend runs when the signal lands (postmaster.c
        /// processCancelRequest), so a server connection with one in flight must not be
        /// handed to another client: the cancel would reach the other client's query.
        var cancelsInFlight: [Int32: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    func insert(_ key: Key, _ entry: Entry) {
        state.withLock { $0.entries[key] = entry }
    }

    /// Transaction pooling: the key now stands for this backend (nil: none, between
    /// transactions). Returns whether a cancel request for the backend it stood for is still
    /// on its way (then that server connection must not serve anyone else).
    @discardableResult
    func attach(_ key: Key, backend: (processID: Int32, secretKey: [UInt8])?) -> Bool {
        state.withLock { state in
            guard var entry = state.entries[key] else { return false }
            let previous = entry.backendProcessID ?? key.processID
            if let backend {
                entry.backendProcessID = backend.processID
                entry.serverSecretKey = backend.secretKey
            }
            entry.detached = backend == nil
            state.entries[key] = entry
            return backend == nil && state.cancelsInFlight[previous, default: 0] > 0
        }
    }

    /// The session ends. Returns whether a cancel request for its backend is still on its way.
    @discardableResult
    func remove(_ key: Key) -> Bool {
        state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: key) else { return false }
            return state.cancelsInFlight[entry.backendProcessID ?? key.processID, default: 0] > 0
        }
    }

    func lookup(_ key: Key) -> Entry? {
        state.withLock { $0.entries[key] }
    }

    /// A CancelRequest: the entry (nil: unknown key) and, unless it is detached, the backend
    /// to cancel, counted in flight — in the same lock as ``attach(_:backend:)`` and
    /// ``remove(_:)`` read it — until ``cancelFinished(backendProcessID:)``.
    func beginCancel(_ key: Key) -> (entry: Entry, backendProcessID: Int32?)? {
        state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            guard !entry.detached else { return (entry, nil) }
            let backend = entry.backendProcessID ?? key.processID
            state.cancelsInFlight[backend, default: 0] += 1
            return (entry, backend)
        }
    }

    /// The forwarded cancel request is over (PostgreSQL closed the connection after signalling
    /// the backend, or the forwarding failed or timed out).
    func cancelFinished(backendProcessID: Int32) {
        state.withLock { state in
            let left = state.cancelsInFlight[backendProcessID, default: 0] - 1
            state.cancelsInFlight[backendProcessID] = left > 0 ? left : nil
        }
    }

    func cancelIsInFlight(backendProcessID: Int32) -> Bool {
        state.withLock { $0.cancelsInFlight[backendProcessID, default: 0] > 0 }
    }
}
