import Access
import Synchronization

/// Who a connection counts against for `max_startup_connections_per_address`: the IPv4
/// address, or the /64 of an IPv6 address (one host usually owns a whole /64, so counting
/// single IPv6 addresses would be no limit at all). Unix-domain clients have no address and
/// count only towards the total.
public enum StartupAddressKey {
    public static func key(forHost host: String, isUnix: Bool) -> String? {
        guard !isUnix else { return nil }
        guard let address = IPAddress(parsing: host)?.unmappingIPv4 else { return host }
        switch address.family {
        case .v4:
            return address.description
        case .v6:
            let prefix = address.bytes.prefix(8)
            return IPAddress(bytes: Array(prefix) + [UInt8](repeating: 0, count: 8)).map { "\($0)/64" } ?? host
        }
    }
}

/// Counts of connections that have not finished authentication: in total and per client
/// address. Pure; `StartupLimiter` shares one across loops.
///
/// PostgreSQL has only `max_connections` (and `authentication_timeout`): every half-open
/// connection holds a backend slot. A proxy that fronts many databases cannot afford that, so
/// unauthenticated connections get a budget of their own below `max_client_connections`; what
/// is left is kept for clients that have logged in.
public struct StartupAdmission: Sendable, Equatable {
    public enum Refusal: Sendable, Equatable {
        case total(limit: Int)
        case perAddress(limit: Int)
    }

    public private(set) var total = 0
    public private(set) var perAddress: [String: Int] = [:]

    public init() {}

    /// Admits one more unauthenticated connection from `address` (nil: no per-address count),
    /// or says which limit it would exceed. `perAddressLimit` 0 = none.
    public mutating func admit(address: String?, totalLimit: Int, perAddressLimit: Int) -> Refusal? {
        if total >= totalLimit { return .total(limit: totalLimit) }
        if let address, perAddressLimit > 0 {
            let current = perAddress[address, default: 0]
            if current >= perAddressLimit { return .perAddress(limit: perAddressLimit) }
            perAddress[address] = current + 1
        }
        total += 1
        return nil
    }

    /// One admitted connection finished authentication or ended.
    public mutating func release(address: String?) {
        total = max(0, total - 1)
        guard let address, let current = perAddress[address] else { return }
        // Entries go as soon as they reach zero, so the table holds only live addresses.
        if current <= 1 { perAddress.removeValue(forKey: address) } else { perAddress[address] = current - 1 }
    }
}

/// The process-wide `StartupAdmission`, shared by every loop.
public final class StartupLimiter: Sendable {
    private let state = Mutex(StartupAdmission())

    public init() {}

    /// A slot to hold until authentication is done, or the refusal.
    public func admit(address: String?, totalLimit: Int, perAddressLimit: Int) -> Result<StartupSlot, StartupRefused> {
        let refusal = state.withLock { $0.admit(address: address, totalLimit: totalLimit, perAddressLimit: perAddressLimit) }
        if let refusal { return .failure(StartupRefused(refusal: refusal)) }
        return .success(StartupSlot(limiter: self, address: address))
    }

    fileprivate func release(address: String?) {
        state.withLock { $0.release(address: address) }
    }

    public var snapshot: StartupAdmission { state.withLock { $0 } }
}

public struct StartupRefused: Error, Sendable, Equatable {
    public let refusal: StartupAdmission.Refusal
}

/// One unauthenticated connection's place in the limiter. Released once: when the client has
/// authenticated, when the connection ends, or (as a safety net) when the slot is dropped.
/// Sendable, so it travels with a connection handed to another loop.
public final class StartupSlot: Sendable {
    private let limiter: StartupLimiter
    private let address: String?
    private let released = Atomic<Bool>(false)

    fileprivate init(limiter: StartupLimiter, address: String?) {
        self.limiter = limiter
        self.address = address
    }

    public func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        limiter.release(address: address)
    }

    deinit { release() }
}
