import Synchronization

/// A flag per message type byte, as four inline words: a table lookup at each message
/// boundary without an array per tracker. Two trackers per session each held three 256-entry
/// `[Bool]` arrays (about 1.5 KiB of heap per client, measured with heaptrack on 1,000 idle
/// clients); this is 32 bytes, and one set of tables serves every tracker of the same kind
/// (``MessageTypeTables``).
struct MessageTypeTable: Sendable, Equatable {
    private var w0: UInt64 = 0
    private var w1: UInt64 = 0
    private var w2: UInt64 = 0
    private var w3: UInt64 = 0

    init(_ isIncluded: (UInt8) -> Bool) {
        for type in UInt8.min...UInt8.max where isIncluded(type) {
            let bit = UInt64(1) << UInt64(type & 63)
            switch type >> 6 {
            case 0: w0 |= bit
            case 1: w1 |= bit
            case 2: w2 |= bit
            default: w3 |= bit
            }
        }
    }

    @inline(__always)
    subscript(type: UInt8) -> Bool {
        let word: UInt64
        switch type >> 6 {
        case 0: word = w0
        case 1: word = w1
        case 2: word = w2
        default: word = w3
        }
        return word & (UInt64(1) << UInt64(type & 63)) != 0
    }
}

/// A tracker's three tables, shared by every tracker made with the same type sets: they are
/// fixed for the life of a session and there are only a few combinations (the session's mode:
/// read-only, transaction pooling, audit), while two trackers per session holding their own
/// inline cost about 180 bytes per idle client (docs/PERFORMANCE.md, "Idle clients").
final class MessageTypeTables: Sendable {
    /// The types held whole (asked at every message boundary).
    let inspected: MessageTypeTable
    /// When set, any other type fails at once, from its first byte.
    let valid: MessageTypeTable?
    /// Types whose complete messages, one after another, go out as one `.forward`. For the
    /// server's CopyData and DataRow: nothing looks at them one by one, and a COPY OUT of a
    /// table (pg_dump) or a large result is millions of ~100-byte messages, each of which
    /// otherwise costs a step of the session machine and a send.
    let runs: MessageTypeTable

    private init(inspecting types: Set<UInt8>, validTypes: Set<UInt8>?, runs: Set<UInt8>) {
        inspected = MessageTypeTable { types.contains($0) }
        valid = validTypes.map { valid in MessageTypeTable { valid.contains($0) } }
        self.runs = MessageTypeTable { validTypes == nil && runs.contains($0) && !types.contains($0) }
    }

    private struct Key: Hashable {
        let inspecting: Set<UInt8>
        let validTypes: Set<UInt8>?
        let runs: Set<UInt8>
    }

    /// Looked up once per tracker made (at session start), never per message.
    private static let cache = Mutex<[Key: MessageTypeTables]>([:])
    /// More combinations than the session modes can make: past it tables are not cached.
    private static let cacheLimit = 64

    static func shared(inspecting types: Set<UInt8>, validTypes: Set<UInt8>?, runs: Set<UInt8>) -> MessageTypeTables {
        let key = Key(inspecting: types, validTypes: validTypes, runs: runs)
        return cache.withLock { cache in
            if let known = cache[key] { return known }
            let made = MessageTypeTables(inspecting: types, validTypes: validTypes, runs: runs)
            if cache.count < cacheLimit { cache[key] = made }
            return made
        }
    }
}
