import Admin
import Config
import EventLoop

/// `password=auth_query` identities: the verifier comes from the upstream (AuthQueryLookup,
/// libpq) on a lookup thread, never on the loop; the answer comes back through the loop's
/// mailbox (LoopLookups). The login waits, counted against login_timeout; its loop does not.
extension ClientSession {
    func lookUpVerifier(user: String, database: String) {
        // The client has nothing to say before its authentication request, which waits for the
        // verifier: what it sends meanwhile waits in the socket, not in our memory (found in
        // review: reads went on for up to auth_query_timeout). ``verifierArrived(_:)`` resumes.
        client.readPaused = true
        let config = runtime.config
        guard let target = config.database(named: database), let source = config.authQuerySource(for: target) else {
            // No entry: the login fails as it would after the mock exchange (PostgreSQL also
            // answers "password authentication failed" before it looks at the database).
            if config.database(named: database) != nil {
                logger.warning("no auth_user (or service_user) for database \"\(database)\": cannot read the verifier of \"\(user)\"")
            }
            deliverVerifierLater(nil)
            return
        }
        let key = AuthQueryCache.Key(entry: target.entryName, dbname: source.dbname, authUser: source.user, user: user)
        let cache = runtime.authQueryCache
        if let cached = cache.answer(for: key, now: loop.now()) {
            deliverVerifierLater(cached)
            return
        }
        // A lookup that failed a moment ago, or every lookup place taken: this login fails as
        // after a failed lookup rather than opening yet another upstream connection.
        if cache.recentlyFailed(key, now: loop.now()) {
            deliverVerifierLater(nil)
            return
        }
        guard cache.beginLookup() else {
            logger.warning("auth_query for user \"\(user)\" not run: \(AuthQueryCache.maxInFlight) lookups already in progress")
            deliverVerifierLater(nil)
            return
        }
        startup?.verifierTicket = pool.lookups.run({ () -> Result<ClientPasswordVerifier?, AdminError> in
            let started = MonotonicInstant.now()
            defer { cache.endLookup() }
            do throws(AdminError) {
                let verifier = try AuthQueryLookup.lookup(target: target, source: source, user: user)
                cache.store(verifier, for: key, fetchedAt: started)
                return .success(verifier)
            } catch {
                cache.storeFailure(for: key, at: started)
                return .failure(error)
            }
        }, completion: { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let verifier):
                self.verifierArrived(verifier)
            case .failure(let error):
                // Not cached as an answer: a login after the short back-off tries again. The
                // login itself fails as with a wrong password, so it says nothing about the role.
                self.logger.error("auth_query for user \"\(user)\" failed: \(error.description)")
                self.verifierArrived(nil)
            }
        })
    }

    private func deliverVerifierLater(_ verifier: ClientPasswordVerifier?) {
        loop.execute(afterCurrentBatch: { [weak self] in self?.verifierArrived(verifier) })
    }
}
