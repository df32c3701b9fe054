import Foundation
import Glibc

/// Everything the corpus tests share: the fixture database, the endpoint statements go through
/// (a proxy that serves the `corpus` database, or PostgreSQL itself in direct mode), and a
/// superuser session that takes fingerprints.
final class CorpusBench {
    let harness: Harness
    let fixture: CorpusFixture
    /// Kept alive for the bench's lifetime; nil in direct mode.
    let proxy: ProxyProcess?
    let endpoint: Endpoint
    private var fingerprintSession: LibPQSession?

    init(harness: Harness) throws {
        self.harness = harness
        fixture = CorpusFixture(cluster: harness.cluster)
        try fixture.createTemplate()
        try fixture.recreateDatabase()
        switch Target.current {
        case .proxy:
            var options = ProxyProcess.Options(upstream: harness.cluster)
            options.extraDatabaseNames = [CorpusFixture.database]
            let started = try ProxyProcess(harness: harness, options: options)
            proxy = started
            endpoint = started.endpoint
        case .direct:
            proxy = nil
            endpoint = Endpoint(port: harness.cluster.port, caFile: harness.caFile, proxyPID: nil)
        }
    }

    private func conninfo(_ endpoint: Endpoint, user: String, dbname: String, extra: String = "") -> String {
        endpoint.conninfo(user: user, dbname: dbname, extra: "password=\(Endpoint.passwords[user] ?? "") \(extra)")
    }

    /// app_ro on the endpoint under test; a statement left waiting on a lock (an advisory lock
    /// kept by a pooled server session, say) fails after 20 s instead of hanging. In direct mode PostgreSQL's own read-only mode stands
    /// in for the proxy (what the proxy adds to the startup packet of a read-only identity).
    func readOnlySession() throws -> LibPQSession {
        let extra = Target.current == .direct
            ? "options='-c statement_timeout=20s -c default_transaction_read_only=on'" : "options='-c statement_timeout=20s'"
        return try LibPQSession(conninfo: conninfo(endpoint, user: "app_ro", dbname: CorpusFixture.database, extra: extra))
    }

    /// app_ro straight to PostgreSQL, read-only by default: the oracle for reads.
    /// PostgreSQL alone, started as the proxy starts a read-only session upstream
    /// (StartupSettingsPolicy.withPinnedSettings): read-only, and in UTF8.
    func directReadOnlySession() throws -> LibPQSession {
        let direct = Endpoint(port: harness.cluster.port, caFile: harness.caFile, proxyPID: nil)
        return try LibPQSession(conninfo: conninfo(direct, user: "app_ro", dbname: CorpusFixture.database,
                                                   extra: "client_encoding=UTF8 options='-c statement_timeout=20s -c default_transaction_read_only=on'"))
    }

    /// app_rw (a read-write identity) on the endpoint under test, database `corpus`.
    func readWriteSession() throws -> LibPQSession {
        try LibPQSession(conninfo: conninfo(endpoint, user: "app_rw", dbname: CorpusFixture.database))
    }

    /// app_rw on the endpoint under test, database `app`.
    func sentinelSession() throws -> LibPQSession {
        try LibPQSession(conninfo: conninfo(endpoint, user: "app_rw", dbname: "app"))
    }

    /// The superuser on the Unix socket, database `corpus`.
    func superuserSession() throws -> LibPQSession {
        try LibPQSession(conninfo: fixture.superuserConninfo())
    }

    func fingerprint() throws -> Fingerprint {
        if fingerprintSession?.isConnected != true {
            let session = try superuserSession()
            // A session left holding a lock must turn into a reported failure, not a hang.
            _ = try session.rows("SET lock_timeout = '5s'; SET statement_timeout = '20s'")
            fingerprintSession = session
        }
        do {
            return try Fingerprint.take(fingerprintSession!)
        } catch {
            fingerprintSession = nil
            throw error
        }
    }

    /// Undoes whatever got through: a fresh clone of the template, then waits until app_ro can
    /// use it through the endpoint again (the proxy's pooled server connections died with it).
    func restore() throws {
        fingerprintSession = nil
        try fixture.recreateDatabase()
        let usable = poll(timeout: 20, every: 0.2) {
            guard let session = try? readOnlySession() else { return false }
            return session.run("SELECT 1", protocol: .simple).last?.rows == [["1"]]
        }
        guard usable else { throw CommandError(description: "corpus database unusable through the endpoint after re-cloning") }
    }
}
