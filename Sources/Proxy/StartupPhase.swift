import EventLoop
import Session
import TLS

/// What a session tells the loop that made it: once authenticated (no longer a connection in
/// start-up), once finished.
protocol SessionHost: AnyObject {
    func sessionAuthenticated(_ session: ClientSession, remote: SocketAddress)
    func sessionFinished(_ session: ClientSession)
}

/// A client session's start-up (TLS, authentication, the wait for its first server
/// connection) and what only it needs. Boxed so it can go once the session is established:
/// the start-up machine alone is 448 bytes inline, with the startup packet, the SCRAM
/// exchange and the channel-binding hash behind it — per idle client, memory PgBouncer does
/// not spend (docs/PERFORMANCE.md, "Idle clients").
final class StartupPhase {
    var machine: ClientStartupMachine
    /// The client's address (pg_hba.conf, the audit's connect event, auth_failure_delay); the
    /// log lines keep it as text (``SessionLogger``).
    let remote: SocketAddress
    /// The authenticated login, kept until its first server connection is granted (asked for
    /// again if a reload withdraws the checkout).
    var upstreamRequest: UpstreamRequest?
    /// What the session machine will be made with, decided at authentication.
    var sessionConfiguration: SessionMachine.Configuration?
    /// The client began with TLS itself (PostgreSQL 17's `sslnegotiation=direct`).
    var directTLS = false
    /// The verified client certificate's subject (CN and RFC 2253 DN), for the access layer
    /// and the audit's authentication events.
    var clientCertificate: PeerCertificateSubject?
    var loginTimer: TimerID?
    /// An `auth_query` lookup in flight (ClientSession+AuthQuery.swift).
    var verifierTicket: UInt64?
    /// A password check's key derivation in flight (ClientSession+KeyDerivation.swift).
    var derivationTicket: UInt64?

    init(_ machine: ClientStartupMachine, remote: SocketAddress) {
        self.machine = machine
        self.remote = remote
    }
}

extension ClientSession {
    /// Start-up has handed over: its timer and lookup are done with; the rest is freed.
    func dropStartup() {
        if let loginTimer = startup?.loginTimer { loop.cancelTimer(loginTimer) }
        cancelStartupWork()
        startup = nil
    }

    /// An `auth_query` lookup or a password check's key derivation still running is not
    /// wanted any more: its answer is dropped (and a derivation not yet started never runs).
    func cancelStartupWork() {
        if let verifierTicket = startup?.verifierTicket { pool.lookups.cancel(verifierTicket); startup?.verifierTicket = nil }
        if let derivationTicket = startup?.derivationTicket { pool.lookups.cancel(derivationTicket); startup?.derivationTicket = nil }
    }
}
