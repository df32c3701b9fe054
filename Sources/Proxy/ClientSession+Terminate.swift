import EventLoop
import Session
import Wire

/// Terminate with replies owed (SessionMachine+Terminate.swift): the shell's part — the rest of
/// the client's bytes are dropped and it is no longer read (``ClientSession/perform(_:server:)``),
/// the session goes on reading the server until the machine says it is over, and a client that
/// leaves meanwhile does not end it (``ClientSession/legClosed(_:reason:)``).
extension ClientSession {
    /// How long a server is given to close after a Terminate passed on to it.
    static let forwardedTerminateGrace: Duration = .seconds(5)

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
            // ignore_till_sync): the server may never close. What it still runs is unsynced
            // work that ends with the session anyway, so after a short grace the proxy closes it.
            _ = loop.scheduleTimer(at: loop.now() + Self.forwardedTerminateGrace) { [weak self] in
                guard let self, !self.finished else { return }
                self.finish(reason: "the server did not end the session after Terminate", flushClient: false)
            }
        case .complete:
            finish(reason: nil, flushClient: true)
        }
    }
}
