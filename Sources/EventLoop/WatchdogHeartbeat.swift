/// The decision behind systemd's watchdog (sd_watchdog_enabled(3), `WatchdogSec=`): WATCHDOG=1
/// is sent only while every event loop answers. Each round a probe goes to every loop's
/// mailbox; a loop acknowledges the round from its own thread. At the next tick the round is
/// complete only if every loop acknowledged it: then ping and start the next round. Otherwise
/// no ping and no new round — a stalled loop keeps its probe queued, and systemd restarts the
/// service once WatchdogSec passes without a ping. Pure: the caller owns threads and clocks.
public struct WatchdogHeartbeat: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Every loop answered: send WATCHDOG=1, then post probes for `round` to every loop.
        case ping(nextRound: UInt64)
        /// Some loops have not answered the current round yet: no ping (they are listed).
        case withhold(silentLoops: [Int])
    }

    public let loops: Int
    public private(set) var round: UInt64 = 1
    private var answered: [Bool]

    public init(loops: Int) {
        self.loops = loops
        answered = Array(repeating: false, count: loops)
    }

    /// Loop `loop` ran the probe of `round`. Answers to earlier rounds are ignored.
    public mutating func acknowledged(loop: Int, round: UInt64) {
        guard round == self.round, answered.indices.contains(loop) else { return }
        answered[loop] = true
    }

    /// Called every half watchdog interval.
    public mutating func tick() -> Action {
        let silent = answered.indices.filter { !answered[$0] }
        guard silent.isEmpty else { return .withhold(silentLoops: silent) }
        round += 1
        answered = Array(repeating: false, count: loops)
        return .ping(nextRound: round)
    }
}
