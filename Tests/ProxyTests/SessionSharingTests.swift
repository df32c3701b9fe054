import XCTest
import Config
import EventLoop
import Logging
@testable import Proxy
@testable import Session

/// What idle sessions share or keep instead of their own copies (docs/PERFORMANCE.md, "Idle
/// clients"): transaction pooling's checkout request, shared only where everything a checkout
/// carries is the same, and the session's log fields, merged into each line as a per-session
/// `Logger` would have carried them.
final class SessionSharingTests: XCTestCase {
    func testATransactionRequestIsSharedOnlyByClientsOfTheSameSpecServerPasswordAndConfiguration() throws {
        let runtime = try RuntimeConfig.oneDatabase()
        let reloaded = try RuntimeConfig.oneDatabase()
        let target = try XCTUnwrap(runtime.config.database(named: "app"))
        let loop = try EventLoop(index: 0)
        let pool = PoolManager(loop: loop, runtime: runtime, logger: Logger(label: "test"))
        let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app_rw", parameters: [], route: target.route,
                                transactionPooled: true)
        func request(_ spec: UpstreamSpec = spec, _ target: DatabaseTarget = target, password: String = "pw-a",
                     _ configuration: RuntimeConfig? = nil) -> TransactionPoolRequest {
            pool.transactionRequest(spec, target: target, password: Secret(password), runtime: configuration ?? runtime)
        }

        let first = request()
        XCTAssertTrue(first === request(), "a second client of the same pool shares the first one's request")
        XCTAssertEqual(first.password, Secret("pw-a"))
        XCTAssertTrue(first.cancelDestination.runtime === runtime)

        let otherPassword = request(password: "pw-b")
        XCTAssertFalse(otherPassword === first, "another password is another request")
        XCTAssertEqual(otherPassword.password, Secret("pw-b"))

        var moved = target
        moved.host = "192.0.2.7"
        let otherServer = request(spec, moved, password: "pw-b")
        XCTAssertFalse(otherServer === otherPassword, "another server is another request")
        XCTAssertEqual(otherServer.target.host, "192.0.2.7")
        XCTAssertEqual(otherServer.cancelDestination.target.host, "192.0.2.7", "cancels follow the request's own server")

        let otherConfiguration = request(spec, moved, password: "pw-b", reloaded)
        XCTAssertFalse(otherConfiguration === otherServer, "a reloaded configuration makes its own request")
        XCTAssertTrue(otherConfiguration.cancelDestination.runtime === reloaded)

        var readOnly = spec
        readOnly.readOnly = true
        let readOnlyRequest = request(readOnly, moved, password: "pw-b", reloaded)
        XCTAssertFalse(readOnlyRequest === otherConfiguration, "another spec never shares a request")
        XCTAssertTrue(readOnlyRequest.spec.readOnly)
    }

    private static func runtime(_ databases: String, identities: String = "rw = mode=read-write",
                                general: String = "") throws -> RuntimeConfig {
        try RuntimeConfig(config: ConfigLoader.parse("""
            [portcullis]
            local_auth_method = trust
            \(general)
            [tls]
            client_tls = disable
            [databases]
            \(databases)
            [identities]
            \(identities)
            """, fileName: "test.ini"), mockSeed: [1], logger: Logger(label: "test"))
    }

    /// A reload that moves an entry to another host: a client that logged in before it asks
    /// for the new host's pool (never one re-created with the old target under a shared spec),
    /// keeping its own user, database and password; when the reload also changed the login
    /// (password, server user, database) or removed the entry, it gets nothing: its
    /// credentials go to no server the configuration no longer gives them to.
    func testAfterAReloadAClientsRequestFollowsItsEntryToTheNewServerAsTheSameLoginOnly() throws {
        let before = try Self.runtime("app = host=192.0.2.1 dbname=app user=app password=pw sslmode=disable")
        let login = try XCTUnwrap(ServerLogin.resolve(before.config, database: "app", user: "rw", passThrough: nil))
        XCTAssertEqual(login.serverUser, "app")
        XCTAssertEqual(login.serverPassword, Secret("pw"))
        let loop = try EventLoop(index: 0)
        let pool = PoolManager(loop: loop, runtime: before, logger: Logger(label: "test"))
        let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: login.serverUser, parameters: [], route: login.target.route,
                                transactionPooled: true,
                                credentials: UpstreamSpec.credentialDigest(target: login.target, password: login.serverPassword))
        let old = pool.transactionRequest(spec, target: login.target, password: login.serverPassword, runtime: before)
        func current(_ request: TransactionPoolRequest) -> TransactionPoolRequest? {
            pool.currentTransactionRequest(request, database: "app", user: "rw")
        }
        XCTAssertTrue(current(old) === old, "no reload: the request stands")

        let moved = try Self.runtime("app = host=192.0.2.2 port=6543 dbname=app user=app password=pw sslmode=disable")
        pool.reloaded(moved)
        let followed = try XCTUnwrap(current(old))
        XCTAssertEqual(followed.target.host, "192.0.2.2")
        XCTAssertEqual(followed.target.port, 6543)
        XCTAssertEqual(followed.spec.route, followed.target.route)
        XCTAssertNotEqual(followed.spec, old.spec, "the old server's pool is never the new one's")
        XCTAssertEqual(followed.spec.serverUser, "app")
        XCTAssertEqual(followed.spec.credentials, old.spec.credentials)
        XCTAssertEqual(followed.password, Secret("pw"))
        XCTAssertEqual(followed.cancelDestination.target.host, "192.0.2.2", "cancels go to the new server")
        XCTAssertTrue(followed.cancelDestination.runtime === moved)
        XCTAssertTrue(current(followed) === followed)
        let newcomer = try XCTUnwrap(ServerLogin.resolve(moved.config, database: "app", user: "rw", passThrough: nil))
        var newSpec = spec
        newSpec.route = newcomer.target.route
        XCTAssertTrue(pool.transactionRequest(newSpec, target: newcomer.target, password: newcomer.serverPassword, runtime: moved) === followed,
                      "a client logging in after the reload shares the moved client's pool")

        for changed in ["app = host=192.0.2.3 dbname=app user=app password=rotated sslmode=disable",
                        "app = host=192.0.2.3 dbname=app user=other password=pw sslmode=disable",
                        "app = host=192.0.2.3 dbname=other user=app password=pw sslmode=disable",
                        "other = host=192.0.2.3 dbname=app user=app password=pw sslmode=disable",
                        "* = host=192.0.2.3 dbname=app user=app password=pw sslmode=disable"] {
            pool.reloaded(try Self.runtime(changed))
            XCTAssertNil(current(followed), "not the same login any more: \(changed)")
        }
        pool.reloaded(try Self.runtime("app = host=192.0.2.3 dbname=app user=app sslmode=disable",
                                       identities: "rw = mode=read-write server_password=pw"))
        XCTAssertEqual(current(followed)?.target.host, "192.0.2.3", "the same password, now the identity's: the same login")
        pool.reloaded(try Self.runtime("app = host=192.0.2.4 dbname=app user=app sslmode=disable",
                                       identities: "rw = mode=read-write server_password=other"))
        XCTAssertNil(current(followed), "the identity's password changed")
        pool.reloaded(try Self.runtime("app = host=192.0.2.4 dbname=app user=app password=pw sslmode=disable",
                                       identities: "rw = mode=read-only"))
        XCTAssertNil(current(followed), "the identity is read-only now: no new read-write server connection")
    }

    /// A configured password the reload dropped does not come back as "pass-through": only
    /// keys from the client's own SCRAM proof stand in for a password the configuration does
    /// not name.
    func testADroppedPasswordIsNotPassedThrough() throws {
        let before = try Self.runtime("app = host=192.0.2.1 dbname=app sslmode=disable",
                                      identities: "rw = mode=read-write server_password=pw")
        let login = try XCTUnwrap(ServerLogin.resolve(before.config, database: "app", user: "rw", passThrough: nil))
        XCTAssertEqual(login.serverUser, "rw")
        XCTAssertEqual(login.serverPassword, Secret("pw"))
        let pool = PoolManager(loop: try EventLoop(index: 0), runtime: before, logger: Logger(label: "test"))
        XCTAssertEqual(pool.currentTarget(of: login, database: "app", user: "rw")?.host, "192.0.2.1")
        pool.reloaded(try Self.runtime("app = host=192.0.2.2 dbname=app sslmode=disable",
                                       identities: "rw = mode=read-write password=auth_query",
                                       general: "auth_user = pgbouncer_auth\nauth_password = x"))
        XCTAssertNil(pool.currentTarget(of: login, database: "app", user: "rw"))
    }

    /// One session configuration per identity and mode: never one of another identity (the
    /// read-only gate names it in refusals), nor a read-write one for a read-only identity.
    func testSessionConfigurationsAreSharedOnlyBySessionsOfTheSameIdentityAndMode() throws {
        let loop = try EventLoop(index: 0)
        let pool = PoolManager(loop: loop, runtime: try RuntimeConfig.oneDatabase(), logger: Logger(label: "test"))
        func make(readOnly identity: String? = nil, pooled: Bool = false, refuses: Bool = false, audit: Bool = false) -> SessionMachine.Configuration {
            pool.sharedSessionConfiguration(SessionMachine.Configuration(
                maxMessageSize: 1 << 20,
                readOnly: identity.map { .init(identity: $0, maxStatementSize: 1 << 16, tokens: { "t" }) },
                followsStatements: audit,
                transactionPooling: pooled ? .init(refusesPinning: refuses, tokens: { "t" }) : nil))
        }
        let readWrite = make()
        XCTAssertTrue(make() === readWrite)
        let agent = make(readOnly: "agent")
        XCTAssertTrue(make(readOnly: "agent") === agent)
        XCTAssertFalse(agent === readWrite, "a read-only identity never gets a read-write configuration")
        XCTAssertFalse(make(readOnly: "other") === agent, "nor another identity's")
        XCTAssertEqual(make(readOnly: "other").readOnly?.identity, "other")
        XCTAssertFalse(make(pooled: true) === readWrite)
        XCTAssertFalse(make(pooled: true, refuses: true) === make(pooled: true))
        XCTAssertFalse(make(audit: true) === readWrite)

        for n in 0..<PoolManager.sessionConfigurationLimit { _ = make(readOnly: "user\(n)") }
        XCTAssertFalse(make() === readWrite, "beyond the bound the table starts again (sessions keep theirs)")
    }

    func testTheSessionLoggerWritesItsFieldsWithEachLineAndTheCallsOwnWin() throws {
        let lines = LineCapture()
        let base = Logger(label: "test", factory: { _ in CapturingHandler(lines: lines) })
        var logger = SessionLogger(base: base, session: 42, client: "192.0.2.1:5000")
        logger.info("before login")
        logger.user = "app_rw"
        logger.database = "app"
        logger.clientCN = "agent-7"
        logger.warning("after login", metadata: ["backend_pid": "123", "client": "overridden"])
        logger.debug("below the level: not built, not written")

        let captured = lines.all
        XCTAssertEqual(captured.count, 2)
        XCTAssertEqual(captured.first?.metadata, ["session": "42", "client": "192.0.2.1:5000"])
        XCTAssertEqual(captured.last?.metadata, ["session": "42", "client": "overridden", "user": "app_rw",
                                                 "database": "app", "client_cn": "agent-7", "backend_pid": "123"])
        XCTAssertEqual(logger.materialized[metadataKey: "user"], "app_rw", "a Logger for work that outlives the session keeps the fields")
    }
}

private final class LineCapture: @unchecked Sendable {
    private var lines: [(message: String, metadata: [String: String])] = []
    private let lock = NSLock()
    func append(_ line: (message: String, metadata: [String: String])) { lock.withLock { lines.append(line) } }
    var all: [(message: String, metadata: [String: String])] { lock.withLock { lines } }
}

private struct CapturingHandler: LogHandler {
    let lines: LineCapture
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, call in call }
        lines.append((event.message.description, merged.mapValues { "\($0)" }))
    }
}
