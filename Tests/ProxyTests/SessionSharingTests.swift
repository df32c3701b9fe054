import XCTest
import Config
import EventLoop
import Logging
@testable import Proxy

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

    /// A reload that moves an entry to another host: a client that logged in before it asks
    /// for the new host's pool (never one re-created with the old target under a shared spec),
    /// keeping its own user, database and password; a removed entry leaves it nothing.
    func testAfterAReloadAClientsRequestFollowsItsEntryToTheNewServer() throws {
        let before = try RuntimeConfig.oneDatabase(host: "192.0.2.1")
        let moved = try RuntimeConfig.oneDatabase(port: 6543, host: "192.0.2.2")
        let target = try XCTUnwrap(before.config.database(named: "app"))
        let loop = try EventLoop(index: 0)
        let pool = PoolManager(loop: loop, runtime: before, logger: Logger(label: "test"))
        let spec = UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "app_rw", parameters: [], route: target.route,
                                transactionPooled: true)
        let old = pool.transactionRequest(spec, target: target, password: Secret("pw"), runtime: before)
        XCTAssertTrue(pool.currentTransactionRequest(old) === old, "no reload: the request stands")

        pool.reloaded(moved)
        let current = try XCTUnwrap(pool.currentTransactionRequest(old))
        XCTAssertEqual(current.target.host, "192.0.2.2")
        XCTAssertEqual(current.target.port, 6543)
        XCTAssertEqual(current.spec.route, current.target.route)
        XCTAssertNotEqual(current.spec, old.spec, "the old server's pool is never the new one's")
        XCTAssertEqual(current.spec.serverUser, "app_rw")
        XCTAssertEqual(current.spec.credentials, old.spec.credentials)
        XCTAssertEqual(current.password, Secret("pw"))
        XCTAssertEqual(current.cancelDestination.target.host, "192.0.2.2", "cancels go to the new server")
        XCTAssertTrue(current.cancelDestination.runtime === moved)
        XCTAssertTrue(pool.currentTransactionRequest(current) === current)

        let newcomer = try XCTUnwrap(moved.config.database(named: "app"))
        var newSpec = spec
        newSpec.route = newcomer.route
        XCTAssertTrue(pool.transactionRequest(newSpec, target: current.target, password: Secret("pw"), runtime: moved) === current,
                      "a client logging in after the reload shares the moved client's pool")

        let emptied = try RuntimeConfig(config: ConfigLoader.parse("""
            [portcullis]
            local_auth_method = trust
            [tls]
            client_tls = disable
            [databases]
            other = host=192.0.2.3 dbname=other user=app sslmode=disable
            [identities]
            rw = mode=read-write
            """, fileName: "test.ini"), mockSeed: [1], logger: Logger(label: "test"))
        pool.reloaded(emptied)
        XCTAssertNil(pool.currentTransactionRequest(current), "the entry is gone: no server for the client's next transaction")
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
