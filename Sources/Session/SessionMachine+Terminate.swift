import Wire

/// Terminate as PostgreSQL takes it: the backend reads its client's messages in order and exits
/// when it reads Terminate (postgres.c PostgresMain, `case 'X'`: proc_exit), so everything sent
/// before it runs and is answered first — a `BEGIN; INSERT …; COMMIT` pipelined with Terminate
/// in one write commits, and its replies are sent (found in review: the proxy ended the session
/// at once, cancelled the statement in flight and closed the server connection, so the work was
/// lost and the client got no replies).
///
/// With nothing owed, Terminate releases the server connection at once
/// (``Action/releaseServer(consume:)``). Otherwise it is consumed, nothing after it is read
/// (``isHoldingClientMessages``), and the session waits (``Action/terminate(consume:)``):
///
/// - while every message before it ends in a ReadyForQuery the machine counts (Query,
///   FunctionCall, Sync), until the last of them has come; then it ends as at a Terminate at
///   rest — the server connection goes back (reset or reused, as always) if it is at rest,
///   and is closed otherwise, which rolls back an open transaction as PostgreSQL does at exit;
/// - when the machine cannot tell when the replies end — extended-protocol messages after the
///   last Sync (they are answered only at a Flush, and rolled back at exit), a COPY FROM STDIN
///   waiting for data, or a stream the lifecycle lost track of — the Terminate itself is passed
///   on (``TerminationStep/sendTerminate``): PostgreSQL runs what precedes it and exits, and the
///   session ends when the server closes the connection, which is never reused.
///
/// The client may close its connection meanwhile: replies are then dropped. What was sent
/// before the Terminate gets a few seconds to finish; a statement still running then is
/// cancelled and its server connection closed (the shell, ClientSession+Terminate.swift,
/// `scheduleTerminationDeadline`): PostgreSQL would run it to its end, but a client that left
/// must not hold a pool slot for a long statement's whole run.
extension SessionMachine {
    package enum Termination: Equatable, Sendable {
        /// The replies owed before the Terminate are awaited; it is not passed on.
        case afterReplies
        /// The Terminate went to the server, which ends the connection itself.
        case forwarded
    }

    package enum TerminationStep: Equatable, Sendable {
        /// Replies are still owed (or, forwarded, the server has not closed yet).
        case waiting
        /// Send the server a Terminate now (55.7 Terminate: `X`, length 4); wait for it to close.
        case sendTerminate
        /// Everything before the Terminate is answered: end the session as at a Terminate at rest.
        case complete
    }

    /// Terminate, whole at the front of the client's buffer.
    mutating func terminateReceived(_ frame: MessageFrame) -> Action {
        guard statementInFlight || unsynced || lifecycle.lostTrack else { return .releaseServer(consume: frame.totalLength) }
        termination = .afterReplies
        return .terminate(consume: frame.totalLength)
    }

    /// What the session waiting to end does next: asked after the Terminate was consumed and
    /// after each batch of server bytes.
    package mutating func terminationStep() -> TerminationStep {
        switch termination {
        case nil, .forwarded?:
            return .waiting
        case .afterReplies?:
            if unsynced || lifecycle.lostTrack || lifecycle.awaitsCopyData {
                termination = .forwarded
                serverUnusable = true
                return .sendTerminate
            }
            return statementInFlight || !serverTracker.isAtMessageBoundary ? .waiting : .complete
        }
    }

    /// The Terminate message (55.7), as the shell passes it on.
    package static let terminateMessage: [UInt8] = [UInt8(ascii: "X"), 0, 0, 0, 4]
}
