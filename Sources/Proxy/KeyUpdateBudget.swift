import EventLoop

/// How many TLS 1.3 KeyUpdates a peer may send (RFC 8446 4.6.3). Each one that asks for a reply
/// makes OpenSSL write one, a system call, inside the read: a flood of them held the loops in
/// write() for seconds (found in review). Peers update their keys after hundreds of gigabytes at
/// most (RFC 8446 5.5: AES-GCM's limit is about 2^24.5 full records; Java's default is 2^37
/// bytes), or every few minutes for stacks that rotate by time.
///
/// A token bucket: ``burst`` at the start, one more per ``bytesPerUpdate`` received and per
/// ``secondsPerUpdate`` of the connection's age, never more than ``burst`` at once (found in
/// review: without the cap, a connection idle for a week had ten thousand updates to spend in
/// one go). A connection that rotates as it should is never cut, however long it lives; a
/// flood must send a MiB per forced write once its burst is spent.
struct KeyUpdateBudget: Equatable {
    static let burst: UInt64 = 256
    static let bytesPerUpdate: UInt64 = 1 << 20
    static let secondsPerUpdate: Int64 = 60

    private var tokens = Self.burst
    /// KeyUpdates already paid for.
    private var charged: UInt64 = 0
    /// Bytes and whole minutes already turned into tokens.
    private var creditedBytes: UInt64 = 0
    private var creditedMinutes: Int64 = 0

    /// Whether the peer, having sent `updates` KeyUpdates in all, `bytesReceived` bytes of
    /// application data, over `age`, stays within the budget; the new updates are paid for.
    mutating func allows(_ updates: UInt64, bytesReceived: UInt64, age: Duration) -> Bool {
        guard updates > charged else { return true }
        let earnedBytes = (bytesReceived &- creditedBytes) / Self.bytesPerUpdate
        creditedBytes &+= earnedBytes &* Self.bytesPerUpdate
        let minutes = max(0, age.components.seconds) / Self.secondsPerUpdate
        let earnedMinutes = UInt64(max(0, minutes - creditedMinutes))
        creditedMinutes = max(creditedMinutes, minutes)
        tokens = min(Self.burst, tokens &+ min(earnedBytes &+ earnedMinutes, Self.burst))
        let spent = updates - charged
        charged = updates
        guard spent <= tokens else { return false }
        tokens -= spent
        return true
    }
}
