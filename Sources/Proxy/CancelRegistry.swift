import Glibc
import Config

/// Maps the cancel keys we hand to clients to the upstream backend they stand for. Shared by all
/// loops: a CancelRequest arrives on a new connection that may land on any loop. Touched at
/// session start, session end and cancel only — never per message.
public final class CancelRegistry: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public var processID: Int32
        public var secretKey: [UInt8]
    }

    public struct Entry: Sendable {
        public var target: DatabaseTarget
        public var runtime: RuntimeConfig
        public var serverSecretKey: [UInt8]
    }

    private var lock = pthread_mutex_t()
    private var entries: [Key: Entry] = [:]

    public init() { pthread_mutex_init(&lock, nil) }
    deinit { pthread_mutex_destroy(&lock) }

    func insert(_ key: Key, _ entry: Entry) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        entries[key] = entry
    }

    func remove(_ key: Key) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        entries[key] = nil
    }

    func lookup(_ key: Key) -> Entry? {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        return entries[key]
    }
}
