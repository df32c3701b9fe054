import Auth

/// A client's cleartext password (pg_hba.conf `password`) checked against a SCRAM verifier:
/// PBKDF2 with the verifier's iteration count, which PostgreSQL runs in the login's own
/// backend (crypt.c `plaintext_password_verify`) and the proxy runs on the
/// ``KeyDerivationPool``, never on the loop. The login waits with its client's reads paused
/// (login_timeout still applies); the answer comes through the loop's mailbox and is dropped if
/// the session ended meanwhile (its ticket is cancelled in ``finish(reason:flushClient:)``).
extension ClientSession {
    func deriveKeys(_ derivation: SCRAMKeyDerivation, user: String) {
        // The client has nothing to say before it hears the verdict: whatever it sends waits
        // in the socket, not in our memory.
        client.readPaused = true
        startup?.derivationTicket = pool.lookups.derive(derivation, for: "client \(user)") { [weak self] keys in
            guard let self, self.startup?.derivationTicket != nil else { return }
            self.startup?.derivationTicket = nil
            guard !self.finished else { return }
            self.client.readPaused = false
            self.runStartup { $0.keysDerived(keys) }
            // Refused (possibly after auth_failure_delay, which pauses reads itself) or ended.
            guard !self.finished, let machine = self.startup?.machine, !machine.isEstablished else { return }
            if machine.isAwaitingUpstream {
                self.client.readPaused = true
                return
            }
            self.processClientStartupBytes()
        }
    }
}
