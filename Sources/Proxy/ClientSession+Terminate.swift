import EventLoop
import Session
import Wire

/// Terminate with replies owed (SessionMachine+Terminate.swift): the shell's part — the rest of
/// the client's bytes are dropped and it is no longer read (``ClientSession/perform(_:server:)``),
/// the session goes on reading the server until the machine says it is over, and a client that
/// leaves meanwhile does not end it (``ClientSession/legClosed(_:reason:)``).
extension ClientSession {
    /// How long a server is given to close after a Terminate passed on to it, and the statements
    /// sent before a Terminate to finish.
    static let forwardedTerminateGrace: Duration = .seconds(5)

    /// A client that sent Terminate is leaving (libpq's PQfinish closes at once): what it sent
    /// just before (a COMMIT) gets ``forwardedTerminateGrace`` to finish, as PostgreSQL would
    /// run it; a longer statement does not keep its server connection (a pool slot) for its
    /// whole run — it is cancelled and the connection closed, as when a client vanishes
    /// (PostgreSQL itself would run it to its end: docs/ARCHITECTURE.md). The client's reads
    /// are paused, so its close is not seen: the deadline does not wait for it.
    func scheduleTerminationDeadline() {
        _ = loop.scheduleTimer(at: loop.now() + Self.forwardedTerminateGrace) { [weak self] in
            guard let self, !self.finished else { return }
            self.finish(reason: "statements owed at Terminate still running after \(Self.forwardedTerminateGrace): cancelled",
                        flushClient: false)
        }
    }

    /// The client sent Terminate while replies were owed (SessionMachine+Terminate.swift):
    /// pass it on, or end the session, when the machine says so.
    func continueTermination() {
        guard !finished, let step = session?.inPlace({ $0.terminationStep() }) else { return }
        switch step {
        case .waiting:
            break
        case .sendTerminate:
            server?.send(ByteBuffer(bytes: SessionMachine.terminateMessage))
            // PostgreSQL skips a Terminate while it skips to Sync after an error (postgres.c,
            // ignore_till_sync): the server may never close; the deadline set at Terminate
            // (``scheduleTerminationDeadline()``) closes it.
        case .complete:
            finish(reason: nil, flushClient: true)
        }
    }
}
