import EventLoop
import Logging
import Wire

extension ClientSession {
    /// A failed login: logged with everything an administrator needs (client address, user,
    /// database, method, the matched pg_hba.conf line) and nothing the client offered as
    /// proof; then the FATAL is sent and the connection closed, after the address's backoff
    /// delay when auth_failure_delay is set. The delay is a loop timer: nothing sleeps.
    func refuseAuthentication(_ bytes: ByteBuffer, _ failure: AuthenticationFailure) {
        var metadata: Logger.Metadata = [:]
        for (key, value) in failure.logFields { metadata[key] = "\(value)" }
        logger.warning("\(failure.logMessage)", metadata: metadata)
        auditAuthenticationFailed(failure)
        let delay: Duration
        if !failure.afterAuthentication, let cap = runtime.config.general.authFailureDelay,
           let remote = startup?.remote, let address = StartupAddressKey.key(forHost: remote.host, isUnix: remote.isUnix) {
            delay = shared.authFailures.failed(address: address, at: loop.now(), cap: cap)
        } else {
            delay = .zero
        }
        guard delay > .zero else {
            client.send(bytes)
            finish(reason: nil, flushClient: true)
            return
        }
        // Nothing more is read from this client; login_timeout still bounds the wait.
        client.readPaused = true
        loop.scheduleTimer(at: loop.now() + delay) { [weak self] in
            guard let self, !self.client.isClosed else { return }
            self.client.send(bytes)
            self.finish(reason: nil, flushClient: true)
        }
    }
}
