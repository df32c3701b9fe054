import Foundation
import Glibc
import Synchronization
import XCTest

/// `pool_mode = transaction` against a real PostgreSQL 15: clients share a pool of two server
/// connections transaction by transaction; state that cannot move with a client pins it to its
/// server (or, with `transaction_pin = refuse`, is refused with 0A000); a client's cancel key
/// reaches whichever backend runs its query; read-only identities stay read-only.
///
/// The proxy serves `app` in session mode (the default) and two more entries on the same
/// database in transaction mode: `txn` (pins) and `txref` (refuses).
final class TransactionPoolingTests: SharedProxyTestCase {

    /// `extraSettings`: more `[portcullis]` lines for this test's proxy.
    private func startProxy(extraSettings: [String] = []) throws -> ProxyProcess {
        try sharedProxy {
            let h = try harness
            var options = try ProxyProcess.Options.transactionPooling(h, directory: "txpool-hba", poolSize: 2) { server in
                ["txn = \(server) dbname=app pool_mode=transaction",
                 "txref = \(server) dbname=app pool_mode=transaction transaction_pin=refuse"]
            }
            options.extraSettings += extraSettings
            try h.cluster.query("""
                CREATE TABLE IF NOT EXISTS tx_items (id serial PRIMARY KEY, client int, n int);
                GRANT SELECT, INSERT ON tx_items TO app_rw; GRANT SELECT ON tx_items TO app_ro;
                GRANT USAGE ON SEQUENCE tx_items_id_seq TO app_rw;
                """, dbname: "app")
            return try ProxyProcess(harness: h, options: options)
        }
    }

    private func connect(_ proxy: ProxyProcess, user: String = "app_rw", dbname: String = "txn") throws -> LibPQSession {
        try LibPQSession(conninfo: proxy.endpoint.conninfo(user: user, dbname: dbname,
                                                           extra: "password=\(Endpoint.passwords[user] ?? "") application_name=\(Self.tag)"))
    }

    private func value(_ session: LibPQSession, _ sql: String) throws -> String {
        try XCTUnwrap(try session.rows(sql).first?.first ?? nil, sql)
    }

    /// The application_name these tests' clients give (their server connections carry it:
    /// it is part of the startup packet the pool's connections are made with).
    static let tag = "txpool_it"

    /// Backends of the role on database app opened for these tests' clients (the shared
    /// endpoint of other test classes may keep pooled connections of its own).
    private func serverBackends(_ role: String) throws -> Int {
        Int(try harness.cluster.query(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '\(role)' AND datname = 'app' AND application_name = '\(Self.tag)'")) ?? -1
    }

    /// At most `limit` such backends, once those of proxies stopped by earlier tests are gone
    /// (a pool that opened more keeps them open while its clients stay connected).
    private func assertServerBackends(atMost limit: Int, _ role: String = "app_rw",
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        let held = try poll(timeout: 15) { try self.serverBackends(role) <= limit }
        let count = try serverBackends(role)
        XCTAssertTrue(held, "more than \(limit) server connections: \(count)", file: file, line: line)
    }

    // MARK: Sharing

    func testManyClientsDoTransactionsOnTwoServerConnections() throws {
        let proxy = try startProxy()
        let clients = 8, rounds = 15
        // All eight connected at once: in session mode they would need eight servers.
        nonisolated(unsafe) let sessions = try (0..<clients).map { _ in try connect(proxy) }
        let pids = Mutex<Set<String>>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { index in
            let session = sessions[index]
            for round in 0..<rounds {
                let outcomes = session.run("""
                    BEGIN; INSERT INTO tx_items (client, n) VALUES (\(index), \(round));
                    SELECT pg_backend_pid()::text, count(*)::text FROM tx_items WHERE client = \(index); COMMIT
                    """, protocol: .simple)
                if outcomes.contains(where: \.isError) || outcomes.count != 4 {
                    failures.withLock { $0.append("client \(index) round \(round): \(outcomes)") }
                    continue
                }
                let row = outcomes[2].rows.first
                if row?.last != "\(round + 1)" { failures.withLock { $0.append("client \(index) round \(round): saw \(String(describing: row))") } }
                if let pid = row?.first ?? nil { pids.withLock { _ = $0.insert(pid) } }
                // The extended protocol too, outside a transaction block.
                let extended = session.run("SELECT \(round) + 1", protocol: .extended)
                if extended.first?.rows.first?.first != "\(round + 1)" {
                    failures.withLock { $0.append("client \(index) extended round \(round): \(extended)") }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        let seen = pids.withLock { $0 }
        XCTAssertLessThanOrEqual(seen.count, 2, "at most two server connections: \(seen)")
        XCTAssertGreaterThanOrEqual(seen.count, 1)
        try assertServerBackends(atMost: 2)
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM tx_items WHERE client < \(clients)", dbname: "app"),
                       "\(clients * rounds)")
        for session in sessions { XCTAssertTrue(session.isConnected) }
        XCTAssertTrue(proxy.isAlive, "proxy died:\n\(proxy.stderrText.suffix(3000))")
        try harness.cluster.query("DELETE FROM tx_items", dbname: "app")
    }

    func testIdleClientsHoldNoServerConnection() throws {
        let proxy = try startProxy()
        // Forty logged-in clients, none in a transaction: the pool's two connections suffice.
        let clients = try (0..<40).map { _ in try connect(proxy) }
        try assertServerBackends(atMost: 2)
        for (index, client) in clients.enumerated() {
            XCTAssertEqual(try value(client, "SELECT \(index)"), "\(index)")
        }
        try assertServerBackends(atMost: 2)
    }

    /// A login is answered from a server session the pool already has, as PgBouncer answers
    /// it: with both server connections inside other clients' transactions, a new client still
    /// logs in (it used to wait for one of them for as long as pool_wait_timeout), sees one of
    /// the pool's backend PIDs and the server's own settings, and its first statement waits for
    /// a server like any other.
    func testALoginDoesNotWaitForAServerConnection() throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        XCTAssertTrue(a.run("BEGIN; SELECT 1", protocol: .simple).allSatisfy { !$0.isError })
        XCTAssertTrue(b.run("BEGIN; SELECT 1", protocol: .simple).allSatisfy { !$0.isError })
        let held = [try value(a, "SELECT pg_backend_pid()::text"), try value(b, "SELECT pg_backend_pid()::text")]
        XCTAssertEqual(Set(held).count, 2, "a and b hold both server connections")

        let c = try LibPQSession(conninfo: proxy.endpoint.conninfo(
            dbname: "txn", extra: "password=\(Endpoint.passwords["app_rw"] ?? "") application_name=\(Self.tag)"))
        XCTAssertTrue(c.isConnected)
        XCTAssertTrue(held.contains("\(c.announcedBackendPID)"), "BackendKeyData names one of the pool's backends: \(c.announcedBackendPID)")
        try assertServerBackends(atMost: 2)

        XCTAssertTrue(a.run("COMMIT", protocol: .simple).allSatisfy { !$0.isError })
        XCTAssertEqual(try value(c, "SELECT current_setting('application_name')"), Self.tag)
        XCTAssertTrue(b.run("COMMIT", protocol: .simple).allSatisfy { !$0.isError })
        try assertServerBackends(atMost: 2)
    }

    /// The extended protocol's Sync carries no statement: a read-only identity's, or any under
    /// `transaction_pin = refuse`, pins nothing. Three clients taking turns on two server
    /// connections would otherwise hold both after the first two statements, and the third
    /// would wait out pool_wait_timeout.
    func testExtendedProtocolStatementsPinNothingUnderAGate() throws {
        let proxy = try startProxy()
        for (user, dbname) in [("app_ro", "txn"), ("app_rw", "txref")] {
            let clients = try (0..<3).map { _ in try connect(proxy, user: user, dbname: dbname) }
            for (index, client) in clients.enumerated() {
                let outcomes = client.run("SELECT \(index) + 1", protocol: .extended)
                XCTAssertEqual(outcomes.first?.rows.first?.first ?? nil, "\(index + 1)", "\(user)@\(dbname) client \(index): \(outcomes)")
            }
            try assertServerBackends(atMost: 2, user)
        }
    }

    func testTheBackendChangesBetweenTransactions() throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        // a holds one server inside its transaction, so b's statement runs on the other.
        XCTAssertTrue(a.run("BEGIN", protocol: .simple).allSatisfy { !$0.isError })
        let aPid = try value(a, "SELECT pg_backend_pid()::text")
        let bFirst = try value(b, "SELECT pg_backend_pid()::text")
        XCTAssertNotEqual(aPid, bFirst)
        XCTAssertTrue(a.run("COMMIT", protocol: .simple).allSatisfy { !$0.isError })
        // Released last, a's server is the first one handed out again (LIFO).
        XCTAssertEqual(try value(b, "SELECT pg_backend_pid()::text"), aPid, "b's next transaction runs on a's former server")
        XCTAssertEqual(try value(b, "SHOW application_name"), try value(a, "SHOW application_name"))
    }

    func testPgbenchWritesInEveryProtocolOnTwoServerConnections() throws {
        let proxy = try startProxy()
        let env = ["PGPASSWORD": "app_rw_pw"]
        let initialise = try runPgbench(conninfo: proxy.endpoint.conninfo(dbname: "app"), arguments: ["-i", "-q", "-s", "1"], env: env)
        assertSucceeded(initialise, "pgbench -i")
        for mode in ["simple", "extended", "prepared"] {
            // The TPC-B-like script: BEGIN, three UPDATEs, a SELECT, an INSERT, END. One thread
            // per client: pgbench prepares with the synchronous PQprepare, and a thread blocked
            // there (waiting for a server) would stall its other clients mid-transaction, whose
            // servers it waits for (as behind any transaction pooler).
            let run = try runPgbench(conninfo: proxy.endpoint.conninfo(dbname: "txn", extra: "application_name=\(Self.tag)"),
                                     arguments: ["-n", "-M", mode, "-c", "8", "-j", "8", "-t", "50"], env: env)
            assertSucceeded(run, "pgbench -M \(mode)")
            XCTAssertTrue(run.stdout.contains("number of transactions actually processed: 400/400"), "\(mode): \(run)")
            XCTAssertTrue(run.stdout.contains("number of failed transactions: 0 "), "\(mode): \(run)")
        }
        try assertServerBackends(atMost: 2)
        XCTAssertFalse(proxy.stderrText.contains("pinned to its server connection"), "pgbench never pins:\n\(proxy.stderrText.suffix(2000))")
    }

    // MARK: Pinning

    func testATemporaryTablePinsTheClientToItsServer() throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        XCTAssertEqual(a.run("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1), (2)", protocol: .simple).filter(\.isError), [])
        let pinned = try value(a, "SELECT pg_backend_pid()::text")
        // Other clients keep going on the other server while a is pinned.
        for _ in 0..<5 {
            XCTAssertNotEqual(try value(b, "SELECT pg_backend_pid()::text"), pinned)
        }
        // a sees its temporary table in every later transaction, on the same backend.
        for round in 0..<5 {
            XCTAssertEqual(try value(a, "SELECT count(*)::text FROM scratch"), "2", "round \(round)")
            XCTAssertEqual(try value(a, "SELECT pg_backend_pid()::text"), pinned)
        }
        XCTAssertTrue(poll(timeout: 10) { proxy.stderrText.contains("pinned to its server connection") && proxy.stderrText.contains("temporary object") },
                      "the pin is logged:\n\(proxy.stderrText.suffix(2000))")
        // DISCARD ALL removes it: the session is free to move again.
        XCTAssertEqual(a.run("DISCARD ALL", protocol: .simple).filter(\.isError), [])
        XCTAssertTrue(poll(timeout: 10) { proxy.stderrText.contains("no longer pinned") })
    }

    func testSessionStateOfEveryKindPins() throws {
        let proxy = try startProxy()
        // `(4245::bigint).pg_advisory_lock` is the call pg_advisory_lock(4245) (attribute
        // notation; found in review: it left the lock on a pooled connection).
        for statement in ["LISTEN tx_channel", "SELECT pg_advisory_lock(4242)", "SELECT (4245::bigint).pg_advisory_lock",
                          "SET myapp.tenant = 'acme'",
                          "SELECT set_config('myapp.tenant', 'acme', false)", "PREPARE tx_plan AS SELECT 1",
                          "BEGIN; DECLARE tx_cursor CURSOR WITH HOLD FOR SELECT 1; COMMIT", "SET ROLE app_rw"] {
            let a = try connect(proxy), b = try connect(proxy)
            XCTAssertEqual(a.run(statement, protocol: .simple).filter(\.isError), [], statement)
            let pinned = try value(a, "SELECT pg_backend_pid()::text")
            for _ in 0..<3 { XCTAssertNotEqual(try value(b, "SELECT pg_backend_pid()::text"), pinned, statement) }
            XCTAssertEqual(try value(a, "SELECT pg_backend_pid()::text"), pinned, statement)
        }
    }

    func testRefusePolicyRefusesWhatWouldPin() throws {
        let proxy = try startProxy()
        let a = try connect(proxy, dbname: "txref")
        for statement in ["CREATE TEMP TABLE refused_scratch (x int)", "LISTEN tx_channel", "SELECT pg_advisory_lock(4243)",
                          "PREPARE tx_plan AS SELECT 1", "LOAD 'plpgsql'", "SET SESSION AUTHORIZATION app_rw"] {
            for queryProtocol in QueryProtocol.allCases {
                let outcomes = a.run(statement, protocol: queryProtocol)
                XCTAssertEqual(outcomes.first?.sqlState, "0A000", "\(statement) (\(queryProtocol)): \(outcomes)")
                XCTAssertTrue(outcomes.first?.message?.contains("transaction pooling") ?? false, "\(outcomes)")
            }
        }
        // Inside a transaction block the refusal aborts it, as any error would.
        let block = a.run("BEGIN; CREATE TEMP TABLE refused_scratch (x int)", protocol: .simple)
        XCTAssertEqual(block.last?.sqlState, "0A000")
        XCTAssertEqual(a.transactionStatus, "inerror")
        XCTAssertEqual(a.run("ROLLBACK", protocol: .simple).filter(\.isError), [])
        // Nothing was created, and the session goes on (transaction-scoped locks are fine).
        XCTAssertEqual(try value(a, "SELECT count(*)::text FROM pg_class WHERE relname = 'refused_scratch'"), "0")
        XCTAssertEqual(a.run("BEGIN; SELECT pg_advisory_xact_lock(4244); COMMIT", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, "SELECT 'still here'"), "still here")
    }

    // MARK: Settings

    func testSessionSettingsFollowTheClientAcrossBackends() throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        let defaultWorkMem = try value(b, "SHOW work_mem")
        XCTAssertEqual(a.run("SET work_mem = '12MB'; SET application_name = 'tx_a'", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(a.run("SELECT set_config('search_path', 'public, pg_catalog', false)", protocol: .extended).filter(\.isError), [])
        // A rolled-back SET is gone, as in PostgreSQL.
        XCTAssertEqual(a.run("BEGIN; SET work_mem = '20MB'; ROLLBACK", protocol: .simple).filter(\.isError), [])
        var aPids: Set<String> = []
        for round in 0..<6 {
            let holds = round % 2 == 0
            if holds { XCTAssertEqual(b.run("BEGIN", protocol: .simple).filter(\.isError), []) }
            let row = try XCTUnwrap(try a.rows("SELECT pg_backend_pid()::text, current_setting('work_mem'), current_setting('application_name'), current_setting('search_path')").first)
            if let pid = row[0] { aPids.insert(pid) }
            XCTAssertEqual(Array(row.dropFirst()), ["12MB", "tx_a", "public, pg_catalog"], "round \(round)")
            if holds { XCTAssertEqual(b.run("COMMIT", protocol: .simple).filter(\.isError), []) }
            // b never set anything: it sees the defaults on whichever server a left.
            XCTAssertEqual(try value(b, "SHOW work_mem"), defaultWorkMem, "round \(round)")
            XCTAssertEqual(try value(b, "SHOW search_path"), "\"$user\", public")
        }
        XCTAssertEqual(aPids.count, 2, "settings do not pin: a ran on both servers \(aPids)")
        // Each client's ParameterStatus view is its own.
        XCTAssertEqual(a.parameterStatus("application_name"), "tx_a")
        XCTAssertEqual(b.parameterStatus("application_name"), Self.tag)
        // RESET and RESET ALL follow too.
        XCTAssertEqual(a.run("RESET work_mem", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(b.run("BEGIN", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, "SHOW work_mem"), defaultWorkMem)
        XCTAssertEqual(try value(a, "SHOW application_name"), "tx_a")
        XCTAssertEqual(b.run("COMMIT", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(a.run("RESET ALL", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, "SHOW application_name"), Self.tag, "back to its start-up value")
        // Values that quoting could trip over arrive unchanged, whatever the client encoding.
        XCTAssertEqual(a.run(#"SET search_path = "we'ird$pc$ schéma\", public; SET client_encoding = 'LATIN1'"#, protocol: .simple).filter(\.isError), [])
        let expected = try value(a, "SELECT convert_to(current_setting('search_path'), 'UTF8')::text")
        XCTAssertEqual(b.run("BEGIN", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, "SELECT convert_to(current_setting('search_path'), 'UTF8')::text"), expected)
        XCTAssertEqual(try value(a, "SHOW client_encoding"), "LATIN1")
        XCTAssertEqual(b.run("COMMIT", protocol: .simple).filter(\.isError), [])
        XCTAssertFalse(proxy.stderrText.contains("pinned to its server connection"), proxy.stderrText.suffix(2000).description)
    }

    // MARK: Named prepared statements

    func testNamedPreparedStatementsFollowTheClientAcrossBackends() throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        // The same name, different statements: each client must only ever run its own.
        XCTAssertEqual(a.prepare("s1", "SELECT pg_backend_pid()::text, ($1::int + 1)::text").filter(\.isError), [])
        XCTAssertEqual(b.prepare("s1", "SELECT 'b:' || $1::text, pg_backend_pid()::text").filter(\.isError), [])
        var aPids: Set<String> = []
        for round in 0..<8 {
            // On even rounds b holds a server inside a transaction, so a runs on the other one.
            let holds = round % 2 == 0
            if holds { XCTAssertEqual(b.run("BEGIN", protocol: .simple).filter(\.isError), []) }
            let mine = a.execute(prepared: "s1", values: ["\(round)"])
            XCTAssertEqual(mine.count, 1, "\(mine)")
            XCTAssertEqual(mine.first?.rows.first?.last, "\(round + 1)", "round \(round): \(mine)")
            if let pid = mine.first?.rows.first?.first ?? nil { aPids.insert(pid) }
            let theirs = b.execute(prepared: "s1", values: ["\(round)"])
            XCTAssertEqual(theirs.first?.rows.first?.first, "b:\(round)", "round \(round): \(theirs)")
            XCTAssertEqual(a.describe(prepared: "s1").filter(\.isError), [])
            if holds { XCTAssertEqual(b.run("COMMIT", protocol: .simple).filter(\.isError), []) }
        }
        XCTAssertEqual(aPids.count, 2, "a's statement ran on both server connections: \(aPids)")
        XCTAssertFalse(proxy.stderrText.contains("named prepared statement"), "named statements do not pin")
        // A name the client never prepared is unknown to it even where another client has it.
        let c = try connect(proxy)
        XCTAssertEqual(c.execute(prepared: "s1", values: ["1"]).first?.sqlState, "26000")
        // Preparing a name twice fails as in PostgreSQL, on any server.
        XCTAssertEqual(a.prepare("s1", "SELECT 1").first?.sqlState, "42P05")
        // DEALLOCATE ALL forgets them.
        XCTAssertEqual(a.run("DEALLOCATE ALL", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(a.execute(prepared: "s1", values: ["1"]).first?.sqlState, "26000")
    }

    func testClosingANamedStatementOverTheWireForgetsIt() throws {
        let proxy = try startProxy()
        let client = try WireClient(port: proxy.port, user: "app_rw", database: "txn", parameters: [("application_name", Self.tag)])
        XCTAssertTrue(client.socket.send(WireClient.parse("SELECT 7", name: "w1") + WireClient.sync))
        XCTAssertEqual(try client.collect(readyForQuery: 1, timeout: 20).map(\.type), Array("1Z".utf8))
        XCTAssertTrue(client.socket.send(WireClient.bind(statement: "w1") + WireClient.execute() + WireClient.sync))
        XCTAssertEqual(try client.collect(readyForQuery: 1, timeout: 20).map(\.type), Array("2DCZ".utf8))
        XCTAssertTrue(client.socket.send(WireClient.frame("C", [UInt8(ascii: "S")] + Array("w1".utf8) + [0]) + WireClient.sync))
        XCTAssertEqual(try client.collect(readyForQuery: 1, timeout: 20).map(\.type), Array("3Z".utf8))
        XCTAssertTrue(client.socket.send(WireClient.bind(statement: "w1") + WireClient.execute() + WireClient.sync))
        let after = try client.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(after.map(\.type), Array("EZ".utf8))
        XCTAssertEqual(after.first?.fields["C"], "26000")
    }

    /// Pipelined named statements, one that fails, messages the server skips after an error,
    /// Close: transaction mode (moved to another server between batches) must answer exactly
    /// as session mode, which passes PostgreSQL's bytes through unchanged.
    func testPipelinedNamedStatementsAnswerAsInSessionMode() throws {
        // No warm spare: idle server connections are handed out last released first, so the
        // other client's BEGIN takes exactly the server this client used last. With a spare
        // that became ready after that release, the BEGIN took the spare and the client stayed
        // on its server (seen once in CI: "the client ran on" one backend).
        let proxy = try startProxy(extraSettings: ["pool_min_idle = 0"])
        func close(_ name: String) -> [UInt8] { WireClient.frame("C", [UInt8(ascii: "S")] + Array(name.utf8) + [0]) }
        let batches: [([UInt8], Int)] = [
            (WireClient.parse("SELECT 1", name: "s1") + WireClient.parse("SELEC 2", name: "s2") + WireClient.bind(statement: "s1")
                + WireClient.execute() + WireClient.sync + WireClient.parse("SELECT 3", name: "s3") + WireClient.sync, 2),
            (WireClient.bind(statement: "s1") + WireClient.execute() + WireClient.bind(statement: "s2") + WireClient.execute()
                + WireClient.sync + WireClient.bind(statement: "s3") + WireClient.execute() + WireClient.sync, 2),
            (close("s1") + WireClient.sync + WireClient.bind(statement: "s1") + WireClient.execute() + WireClient.sync
                + WireClient.parse("SELECT 4", name: "s1") + WireClient.bind(statement: "s1") + WireClient.execute() + WireClient.sync, 3),
        ]
        var answers: [String: [String]] = [:]
        for database in ["app", "txn"] {
            let client = try WireClient(port: proxy.port, user: "app_rw", database: database,
                                        parameters: [("application_name", Self.tag)])
            let other = try connect(proxy, dbname: database)
            var seen: [String] = []
            var pids: Set<String> = []
            for (index, (bytes, batches)) in batches.enumerated() {
                // Between batches another client takes the server this one used last.
                if index > 0 { XCTAssertEqual(other.run("BEGIN", protocol: .simple).filter(\.isError), []) }
                // Each batch ends with a query for the backend it ran on.
                XCTAssertTrue(client.socket.send(bytes + WireClient.query("SELECT pg_backend_pid()::text")))
                let messages = try client.collect(readyForQuery: batches + 1, timeout: 20)
                if let row = messages.last(where: { $0.type == UInt8(ascii: "D") }), row.payload.count > 6 {
                    pids.insert(String(decoding: row.payload[6...], as: UTF8.self))
                }
                seen.append(messages.map { message in
                    message.type == UInt8(ascii: "E") ? "E\(message.fields["C"] ?? "")" : String(UnicodeScalar(message.type))
                }.joined(separator: " "))
                if index > 0 { XCTAssertEqual(other.run("COMMIT", protocol: .simple).filter(\.isError), []) }
            }
            answers[database] = seen
            XCTAssertEqual(pids.count, database == "txn" ? 2 : 1, "\(database): the client ran on \(pids)")
        }
        XCTAssertEqual(answers["txn"], answers["app"])
        XCTAssertEqual(answers["app"]?.first, "1 E42601 Z 1 Z T D C Z", "PostgreSQL skips to Sync after the failed Parse")
    }

    // MARK: Cancel

    func testACancelRequestReachesTheBackendRunningTheQuery() throws {
        let proxy = try startProxy()
        nonisolated(unsafe) let a = try connect(proxy)
        let announced = a.announcedBackendPID
        // b holds the server a was announced with (LIFO: the last released), so a's query
        // runs on the other one.
        let b = try connect(proxy)
        XCTAssertTrue(b.run("BEGIN", protocol: .simple).allSatisfy { !$0.isError })
        let bPid = try value(b, "SELECT pg_backend_pid()::text")
        let canceller = try XCTUnwrap(a.canceller())
        let marker = marker("txcancel")
        let started = Date()
        let group = DispatchGroup()
        nonisolated(unsafe) var outcome: [PQOutcome] = []
        DispatchQueue.global().async(group: group) {
            outcome = a.run("SELECT pg_sleep(30) /* \(marker) */", protocol: .simple)
        }
        XCTAssertTrue(try poll(timeout: 20) { try self.backends(matching: marker, state: "active") == 1 })
        let running = try harness.cluster.query(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%\(marker)%' AND pid <> pg_backend_pid()")
        XCTAssertNotEqual(running, bPid)
        XCTAssertTrue(canceller.cancel())
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(outcome.first?.sqlState, "57014", "cancelled: \(outcome); announced \(announced), ran on \(running)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        XCTAssertTrue(b.run("COMMIT", protocol: .simple).allSatisfy { !$0.isError })
    }

    // MARK: Read-only

    func testReadOnlyIdentitiesStayReadOnly() throws {
        let proxy = try startProxy()
        let ro = try connect(proxy, user: "app_ro")
        for queryProtocol in QueryProtocol.allCases {
            XCTAssertEqual(ro.run("INSERT INTO tx_items (client, n) VALUES (-1, -1)", protocol: queryProtocol).first?.sqlState, "25006")
            XCTAssertEqual(ro.run("SELECT count(*) FROM tx_items", protocol: queryProtocol).first?.isError, false)
            XCTAssertEqual(ro.run("SET default_transaction_read_only = off", protocol: queryProtocol).first?.sqlState, "25006")
        }
        XCTAssertEqual(try value(ro, "SHOW transaction_read_only"), "on")
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM tx_items WHERE client = -1", dbname: "app"), "0")
        // Refusal keeps its 25006 in refuse mode too, and a pin refusal its 0A000.
        let refusing = try connect(proxy, user: "app_ro", dbname: "txref")
        XCTAssertEqual(refusing.run("DELETE FROM tx_items", protocol: .simple).first?.sqlState, "25006")
        XCTAssertEqual(refusing.run("CREATE TEMP TABLE t (x int)", protocol: .simple).first?.sqlState, "25006")
        XCTAssertEqual(refusing.run("SELECT 1", protocol: .simple).first?.rows, [["1"]])
    }

    // MARK: Session mode

    func testAReloadToSessionModeNeverHandsOnATransactionPooledConnection() throws {
        let proxy = try startProxy()
        let a = try connect(proxy)
        XCTAssertEqual(a.run("SET work_mem = '13MB'", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(a.prepare("s1", "SELECT 41 + 1").filter(\.isError), [])
        let text = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        let edited = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("txn =") ? line.replacingOccurrences(of: "pool_mode=transaction", with: "pool_mode=session") : String(line)
        }.joined(separator: "\n")
        XCTAssertNotEqual(edited, text)
        try writePrivateConfig(edited, to: proxy.configPath)
        assertSucceeded(try runCommand(ProxyProcess.binaryPath(repoRoot: try harness.repoRoot),
                                       ["reload", "--config", proxy.configPath, "--timeout", "30"], timeout: 60), "portcullis reload")
        // A new client is in session mode, on a fresh server session.
        let b = try connect(proxy)
        let pid = try value(b, "SELECT pg_backend_pid()::text")
        XCTAssertEqual("\(b.announcedBackendPID)", pid)
        XCTAssertEqual(try value(b, "SHOW work_mem"), "4MB")
        XCTAssertEqual(b.execute(prepared: "s1", values: []).first?.sqlState, "26000")
        XCTAssertEqual(try value(b, "SELECT pg_backend_pid()::text"), pid)
        // The client already there keeps its transaction pooling, its settings and statements.
        XCTAssertEqual(try value(a, "SHOW work_mem"), "13MB")
        XCTAssertEqual(a.execute(prepared: "s1", values: []).first?.rows, [["42"]])
    }

    // MARK: Reload

    /// Rewrites the `[databases]` line starting with `entry =` and has the running proxy
    /// reload it.
    private func reloadEntry(_ proxy: ProxyProcess, _ entry: String, _ edit: (String) -> String) throws {
        let text = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        let edited = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("\(entry) =") ? edit(String(line)) : String(line)
        }.joined(separator: "\n")
        XCTAssertNotEqual(edited, text)
        try writePrivateConfig(edited, to: proxy.configPath)
        assertSucceeded(try runCommand(ProxyProcess.binaryPath(repoRoot: try harness.repoRoot),
                                       ["reload", "--config", proxy.configPath, "--timeout", "30"], timeout: 60), "portcullis reload")
    }

    /// PgBouncer's failover recipe: write the new host into the entry and reload. A client
    /// that logged in before runs its next transactions on the new server, and no server
    /// connection of the old route serves anyone again — not even one the old client's pool
    /// would have re-opened for it under the old target. The same PostgreSQL reached over ::1
    /// stands in for the new host: `inet_client_addr()` tells which route a server connection
    /// took. An entry removed by a reload ends its clients at their next statement (57P01).
    func testAReloadThatMovesTheEntryMovesItsClientsNextTransactions() throws {
        let proxy = try startProxy()
        let route = "SELECT host(inet_client_addr())"
        let a = try connect(proxy)
        XCTAssertEqual(try value(a, route), "127.0.0.1")
        XCTAssertEqual(a.run("SET work_mem = '13MB'", protocol: .simple).filter(\.isError), [])
        try reloadEntry(proxy, "txn") { $0.replacingOccurrences(of: "host=127.0.0.1", with: "host=127.0.0.1 hostaddr=::1") }

        XCTAssertEqual(try value(a, route), "::1", "the client already there follows its entry")
        let b = try connect(proxy)
        for _ in 0..<3 {
            XCTAssertEqual(try value(b, route), "::1", "a new client never gets a connection of the old route")
            XCTAssertEqual(try value(a, route), "::1")
        }
        XCTAssertEqual(try value(a, "SHOW work_mem"), "13MB", "its settings came along")
        XCTAssertEqual(try value(b, "SHOW work_mem"), "4MB")

        // A client waiting for a server when the entry moves back asks again, under the new
        // configuration, rather than being ended: a and b hold both server connections of the
        // pool (pool_max_size = 2) in open transactions, c's login waits (a login in
        // transaction mode takes a server connection, for its real ParameterStatus).
        XCTAssertEqual(a.run("BEGIN", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(b.run("BEGIN", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, route), "::1")
        XCTAssertEqual(try value(b, route), "::1")
        let waitLine = "is at pool_max_size (2): clients wait for a server connection"
        let waitsBefore = proxy.stderrText.components(separatedBy: waitLine).count
        let group = DispatchGroup()
        nonisolated(unsafe) var waited: [PQOutcome] = []
        nonisolated(unsafe) var loginError: Error?
        let conninfo = proxy.endpoint.conninfo(user: "app_rw", dbname: "txn",
                                               extra: "password=\(Endpoint.passwords["app_rw"] ?? "") application_name=\(Self.tag)")
        DispatchQueue.global().async(group: group) {
            do { waited = try LibPQSession(conninfo: conninfo).run(route, protocol: .simple) } catch { loginError = error }
        }
        XCTAssertTrue(poll(timeout: 20) { proxy.stderrText.components(separatedBy: waitLine).count > waitsBefore }, "c waits")
        try reloadEntry(proxy, "txn") { $0.replacingOccurrences(of: " hostaddr=::1", with: "") }
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        XCTAssertNil(loginError)
        XCTAssertEqual(waited.first?.rows, [["127.0.0.1"]], "the waiting client went to the new route: \(waited)")
        XCTAssertEqual(a.run("COMMIT", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(b.run("COMMIT", protocol: .simple).filter(\.isError), [])
        XCTAssertEqual(try value(a, route), "127.0.0.1")
        XCTAssertEqual(try value(b, route), "127.0.0.1")

        try reloadEntry(proxy, "txn") { _ in "" }
        let ended = a.run("SELECT 1", protocol: .simple)
        XCTAssertEqual(ended.first?.sqlState, "57P01", "\(ended)")
        XCTAssertTrue(ended.first?.message?.contains("a reload removed or changed the [databases] entry or the identity of this login to database \"txn\"") ?? false,
                      "\(ended)")
    }

    func testSessionModeStaysTheDefault() throws {
        let proxy = try startProxy()
        let a = try connect(proxy, dbname: "app")
        let pid = try value(a, "SELECT pg_backend_pid()::text")
        XCTAssertEqual("\(a.announcedBackendPID)", pid, "session mode announces the real backend PID")
        for _ in 0..<3 { XCTAssertEqual(try value(a, "SELECT pg_backend_pid()::text"), pid) }
    }
}
