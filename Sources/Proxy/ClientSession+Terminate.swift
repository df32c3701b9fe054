import Session
import Wire

/// Terminate with replies owed (SessionMachine+Terminate.swift): the shell's part — the rest of
/// the client's bytes are dropped and it is no longer read (``ClientSession/perform(_:server:)``),
/// the session goes on reading the server until the machine says it is over, and a client that
/// leaves meanwhile does not end it (``ClientSession/legClosed(_:reason:)``).
extension ClientSession {
    /// The client sent Terminate while replies were owed (SessionMachine+Terminate.swift):
    /// pass it on, or end the session, when the machine says so.
    func continueTermination() {
        guard !finished, let step = session?.inPlace({ $0.terminationStep() }) else { return }
        switch step {
        case .waiting:
            break
        case .sendTerminate:
            server?.send(ByteBuffer(bytes: SessionMachine.terminateMessage))
        case .complete:
            finish(reason: nil, flushClient: true)
        }
    }
}
