import EventLoop

/// How many TLS 1.3 KeyUpdates a peer may have sent so far (RFC 8446 4.6.3). Each one that asks
/// for a reply makes OpenSSL write one, a system call, inside the read: a flood of them held the
/// loops in write() for seconds (found in review). Peers update their keys after hundreds of
/// gigabytes at most (RFC 8446 5.5: AES-GCM's limit is about 2^24.5 full records; Java's
/// default is 2^37 bytes), or at most every few minutes for stacks that rotate by time. So a
/// burst of ``burst``, then one more per ``bytesPerUpdate`` received and one per
/// ``secondsPerUpdate`` of the connection's age — a rate, so a long-lived connection that
/// rotates as it should is never cut, while a flood must send a MiB per forced write.
struct KeyUpdateBudget: Equatable {
    static let burst: UInt64 = 256
    static let bytesPerUpdate: UInt64 = 1 << 20
    static let secondsPerUpdate: Int64 = 60

    /// Whether `count` KeyUpdates are within the budget of a connection that has received
    /// `bytesReceived` bytes of application data and been open for `age`.
    static func allows(_ count: UInt64, bytesReceived: UInt64, age: Duration) -> Bool {
        guard count > burst else { return true }
        let minutes = UInt64(max(0, age.components.seconds) / secondsPerUpdate)
        return count <= burst &+ bytesReceived / bytesPerUpdate &+ minutes
    }
}
