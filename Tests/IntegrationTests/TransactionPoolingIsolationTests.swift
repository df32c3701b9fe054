import Foundation
import XCTest

/// `pool_mode = transaction` isolation against a real PostgreSQL 15: client `a` leaves session
/// state behind by a spelling the pin classifier might miss, then client `b` (who set nothing)
/// runs on the backend `a` released (or, when `a` is pinned, another) and must see none of
/// it — neither another role, nor `a`'s temporary objects, nor `a`'s settings — and `a`'s
/// cancel must not reach `b`'s query. Every case was shown to leak before its fix.
final class TransactionPoolingIsolationTests: SharedProxyTestCase {

    static let tag = "txiso_it"

    /// `poolSize` 2 for the leaks: unpinned, `b` gets the connection `a` released last (the pool
    /// hands them out LIFO, and two clients taking turns never need a second); pinned, `b`
    /// gets a second one. 1 when `b` must wait for `a`'s.
    private func startProxy(poolSize: Int = 2, extraSettings: [String] = []) throws -> ProxyProcess {
        try sharedProxy {
            let h = try harness
            var options = try ProxyProcess.Options.transactionPooling(h, directory: "txiso-hba", poolSize: poolSize) { server in
                ["txiso = \(server) dbname=app pool_mode=transaction"]
            }
            options.extraSettings += extraSettings
            try h.cluster.query("""
                DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tx_other') THEN CREATE ROLE tx_other NOLOGIN; END IF; END$$;
                GRANT tx_other TO app_rw;
                CREATE TABLE IF NOT EXISTS txiso_items (id int, owner text);
                GRANT SELECT, INSERT ON txiso_items TO app_rw;
                TRUNCATE txiso_items; INSERT INTO txiso_items VALUES (1, 'real');
                """, dbname: "app")
            return try ProxyProcess(harness: h, options: options)
        }
    }

    private func connect(_ proxy: ProxyProcess) throws -> LibPQSession {
        try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: "txiso",
                                                           extra: "password=\(Endpoint.passwords["app_rw"] ?? "") application_name=\(Self.tag)"))
    }

    private func value(_ session: LibPQSession, _ sql: String) throws -> String {
        try XCTUnwrap(try session.rows(sql).first?.first ?? nil, sql)
    }

    /// `a` runs `attack` (errors allowed only where `mayFail`), then `b`, on the one server
    /// connection unless `a` is pinned, must see `expected` for `probe`.
    private func assertNoLeak(_ attack: String..., probe: String, expected: String, mayFail: Bool = false,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let proxy = try startProxy()
        let a = try connect(proxy), b = try connect(proxy)
        let outcomes = attack.flatMap { a.run($0, protocol: .simple) }
        if !mayFail { XCTAssertEqual(outcomes.filter(\.isError), [], "attack ran", file: file, line: line) }
        let seen = b.run(probe, protocol: .simple)
        XCTAssertEqual(seen.last?.rows.first?.first ?? nil, expected, "b saw: \(seen)", file: file, line: line)
        XCTAssertTrue(proxy.isAlive, file: file, line: line)
    }

    func testSetConfigOfRoleDoesNotLeakToTheNextClient() throws {
        try assertNoLeak("SELECT set_config('role', 'tx_other', false)", probe: "SELECT current_user", expected: "app_rw")
    }

    func testSetConfigOfRoleInUpperCaseDoesNotLeak() throws {
        try assertNoLeak("SELECT pg_catalog.set_config('ROLE', 'tx_other', false)", probe: "SELECT current_user", expected: "app_rw")
    }

    /// Found in review (19): the classifier read set_config's arguments through casts, which can
    /// change them — this is_local is false, this name is `role`.
    func testSetConfigWithACastLocalFlagDoesNotLeak() throws {
        try assertNoLeak("SELECT set_config('role', 'tx_other', '1'::numeric(1,-1)::int::boolean)",
                         probe: "SELECT current_user", expected: "app_rw")
    }

    func testSetConfigWithACastNameDoesNotLeak() throws {
        try assertNoLeak("SELECT set_config('rolex'::char(4), 'tx_other', false)", probe: "SELECT current_user", expected: "app_rw")
    }

    /// Found in review (19): UPDATE pg_settings is SET by another name (the view's rule).
    func testUpdateOfPgSettingsDoesNotLeak() throws {
        try assertNoLeak("UPDATE pg_settings SET setting = 'pg_catalog' WHERE name = 'search_path'",
                         probe: "SHOW search_path", expected: "\"$user\", public")
    }

    /// A setting changed inside a function (no statement text shows it) that the server
    /// reports: its ParameterStatus makes the proxy read the settings back (found in review:
    /// a client_encoding set that way garbled the next client's text).
    func testAReportedSettingChangedInsideAFunctionDoesNotLeak() throws {
        try assertNoLeak("CREATE OR REPLACE FUNCTION public.txiso_tz() RETURNS text LANGUAGE sql AS $$SELECT set_config('TimeZone', 'Asia/Tokyo', false)$$",
                         "SELECT txiso_tz()", probe: "SHOW TimeZone", expected: "Etc/UTC")
    }

    /// With pg_temp first on the search path an unqualified CREATE TABLE creates a temporary
    /// table; b's unqualified name would then find a's table before its own.
    func testSearchPathWithPgTempCannotCreateAnUnpinnedTemporaryTable() throws {
        try assertNoLeak("SET search_path = pg_temp, public; CREATE TABLE txiso_items (id int, owner text); INSERT INTO txiso_items VALUES (2, 'forged'); RESET search_path",
                         probe: "SELECT owner FROM txiso_items ORDER BY id", expected: "real")
    }

    func testTemporaryTypeIsPinned() throws {
        try assertNoLeak("CREATE DOMAIN pg_temp.txiso_d AS int CHECK (VALUE > 100)",
                         probe: "SELECT coalesce(to_regtype('pg_temp.txiso_d')::text, 'none')", expected: "none")
    }

    func testTemporaryFunctionIsPinned() throws {
        try assertNoLeak("CREATE FUNCTION pg_temp.txiso_f() RETURNS text LANGUAGE sql AS $$SELECT 'forged'$$",
                         probe: "SELECT coalesce((SELECT proname::text FROM pg_proc WHERE proname = 'txiso_f' AND pronamespace = pg_my_temp_schema()), 'none')",
                         expected: "none")
    }

    func testDoBlockTemporaryTableDoesNotLeak() throws {
        try assertNoLeak("DO $$BEGIN CREATE TEMP TABLE txiso_items (id int, owner text); INSERT INTO txiso_items VALUES (0, 'forged'); END$$",
                         probe: "SELECT owner FROM txiso_items ORDER BY id", expected: "real")
    }

    func testDoBlockSetRoleDoesNotLeak() throws {
        try assertNoLeak("DO $$BEGIN SET ROLE tx_other; END$$", probe: "SELECT current_user", expected: "app_rw")
    }

    func testDoBlockSettingDoesNotLeak() throws {
        try assertNoLeak("DO $$BEGIN PERFORM set_config('search_path', 'pg_catalog', false); END$$",
                         probe: "SHOW search_path", expected: "\"$user\", public")
    }

    /// standard_conforming_strings off: the server reads `'x\''` as a closed string and the
    /// rest as statements; a lexer with it on sees an unterminated string (a syntax error).
    func testStandardConformingStringsOffCannotHideASetRole() throws {
        try assertNoLeak("SET standard_conforming_strings = off", #"SELECT 'x\''; SET ROLE tx_other; --"#,
                         probe: "SELECT current_user", expected: "app_rw", mayFail: true)
    }

    /// client_encoding SJIS: 0x81 0x5C is one character to the server, so `\` no longer
    /// escapes the quote after it; read as UTF-8 the text is one SELECT of one string.
    func testClientEncodingSJISCannotHideASetRole() throws {
        try assertNoLeak("SET client_encoding = 'SJIS'", "SELECT E'\u{101}\\'; SET ROLE tx_other; --'",
                         probe: "SELECT current_user", expected: "app_rw", mayFail: true)
    }

    /// The same text on a server connection that *started* with SJIS (a role default set after
    /// the pool's first connection): a's login is answered from that first connection's values,
    /// so only the attached connection's own start-up values show what it lexes. c holds the
    /// first connection; a's statement opens a second, SJIS one; b, on a pool of three, gets
    /// that second one unless a is pinned to it.
    func testAServerThatStartedWithSJISCannotHideASetRole() throws {
        let h = try harness
        let trick = "SELECT E'\u{101}\\'; SET ROLE tx_other; --'"
        stopSharedProxy()
        // No spare: it would open before the role default changes, and a would get it.
        let proxy = try startProxy(poolSize: 3, extraSettings: ["pool_min_idle = 0"])
        let c = try wireClient(proxy)
        XCTAssertEqual(Self.types(try exchange(c, WireClient.query("BEGIN; SELECT 1"))), "CTDCZ")
        _ = try h.cluster.query("ALTER ROLE app_rw IN DATABASE app SET client_encoding = 'SJIS'", dbname: "app")
        defer { _ = try? h.cluster.query("ALTER ROLE app_rw IN DATABASE app RESET client_encoding", dbname: "app") }
        // PostgreSQL alone: a new backend starts in SJIS and runs the hidden SET ROLE.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.query(trick) + WireClient.query("SELECT current_user")))
        XCTAssertTrue(Self.texts(try direct.collect(readyForQuery: 2, timeout: 20)).contains("tx_other"))

        let a = try wireClient(proxy)
        _ = try exchange(a, WireClient.query(trick))
        let b = try wireClient(proxy)
        let seen = try exchange(b, WireClient.query("SELECT current_user"))
        XCTAssertTrue(Self.texts(seen).contains("app_rw"), Self.texts(seen))
        XCTAssertFalse(Self.texts(seen).contains("tx_other"), Self.texts(seen))
        XCTAssertEqual(Self.types(try exchange(c, WireClient.query("COMMIT"))), "CZ")
        XCTAssertTrue(proxy.isAlive)
    }

    /// a's CancelRequest is looked up while a's query runs, but reaches PostgreSQL over a new
    /// connection some milliseconds later: by then a's server may run b's query, which the
    /// cancel must not reach.
    func testACancelRequestNeverReachesTheNextClientsQuery() throws {
        let proxy = try startProxy(poolSize: 1)
        nonisolated(unsafe) let a = try connect(proxy)
        nonisolated(unsafe) let b = try connect(proxy)
        let canceller = try XCTUnwrap(a.canceller())
        var bCancelled = 0, aCancelled = 0
        for attempt in 0..<20 {
            // a holds the one server; b's query waits for it. (A cancel that reached a's own
            // statement left its transaction block aborted.)
            XCTAssertEqual(a.run("ROLLBACK; BEGIN", protocol: .simple).filter(\.isError), [])
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var bOutcome: [PQOutcome] = []
            DispatchQueue.global().async {
                bOutcome = b.run("SELECT pg_sleep(1)", protocol: .simple)
                done.signal()
            }
            Thread.sleep(forTimeInterval: 0.2)
            // a ends its transaction after a short statement and cancels while it runs.
            let group = DispatchGroup()
            nonisolated(unsafe) var aOutcome: [PQOutcome] = []
            DispatchQueue.global().async(group: group) {
                aOutcome = a.run("SELECT pg_sleep(\(Double(attempt % 5) * 0.002)); COMMIT", protocol: .simple)
            }
            Thread.sleep(forTimeInterval: 0.001)
            _ = canceller.cancel()
            group.wait()
            done.wait()
            if bOutcome.contains(where: { $0.sqlState == "57014" }) { bCancelled += 1 }
            if aOutcome.contains(where: { $0.sqlState == "57014" }) { aCancelled += 1 }
        }
        XCTAssertEqual(bCancelled, 0, "a's cancel reached b's query (a's own: \(aCancelled))")
        XCTAssertTrue(proxy.isAlive)
    }

    /// The unnamed statement does not move with its client (documented), and must not be
    /// another client's either: PostgreSQL answers a Bind of an unnamed statement the session
    /// never parsed with 26000.
    func testTheUnnamedStatementOfAnotherClientIsNotBound() throws {
        let proxy = try startProxy()
        let a = try WireClient(port: proxy.port, user: "app_rw", database: "txiso", parameters: [("application_name", Self.tag)])
        let b = try WireClient(port: proxy.port, user: "app_rw", database: "txiso", parameters: [("application_name", Self.tag)])
        XCTAssertTrue(a.socket.send(WireClient.parse("SELECT 'secret of a'") + WireClient.sync))
        XCTAssertEqual(try a.collect(readyForQuery: 1, timeout: 20).map(\.type), Array("1Z".utf8))
        XCTAssertTrue(b.socket.send(WireClient.bind() + WireClient.execute() + WireClient.sync))
        let seen = try b.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(seen.map(\.type), Array("EZ".utf8), "b ran a's statement: \(seen.map { String(decoding: $0.payload, as: UTF8.self) })")
        XCTAssertEqual(seen.first?.fields["C"], "26000")
        // a's own Bind of it in a later transaction (on whichever server) still answers as before.
    }

    // MARK: Session mode with server_reset = discard

    /// One server connection reused by DISCARD ALL: what the first client left must not reach
    /// the second.
    func testDiscardReuseLeavesNothingOfThePreviousClient() throws {
        let h = try harness
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["workers = 1", "server_reset = discard", "pool_max_size = 1"]
        _ = try startProxy()
        stopSharedProxy()
        try h.cluster.query("GRANT tx_other TO app_rw", dbname: "app")
        let started = try sharedProxy { try ProxyProcess(harness: h, options: options) }
        func session() throws -> LibPQSession {
            try LibPQSession(conninfo: started.endpoint.conninfo(user: "app_rw", dbname: "app",
                                                                 extra: "password=\(Endpoint.passwords["app_rw"] ?? "")"))
        }
        do {
            let a = try session()
            XCTAssertEqual(a.run("SET myapp.tenant = '42'; SET ROLE tx_other; SELECT pg_backend_pid()", protocol: .simple).filter(\.isError), [])
        }
        Thread.sleep(forTimeInterval: 0.5)
        let b = try session()
        // (PostgreSQL keeps the placeholder, reset to '', as within one session after RESET ALL.)
        let seen = try b.rows("SELECT coalesce(nullif(current_setting('myapp.tenant', true), ''), 'none') || '|' || current_user")
        XCTAssertEqual(seen.first?.first ?? nil, "none|app_rw")
    }

    /// dblink_connect opens a named connection that lives in the backend until the session
    /// ends: the next client could run queries on it, as whoever the first client logged in as.
    func testADblinkConnectionDoesNotLeak() throws {
        let h = try harness
        try h.cluster.query("CREATE EXTENSION IF NOT EXISTS dblink", dbname: "app")
        let conn = "host=127.0.0.1 port=\(h.cluster.port) dbname=app user=app_ro password=app_ro_pw sslmode=require"
        try assertNoLeak("SELECT dblink_connect('txiso_c', '\(conn)')",
                         probe: "SELECT coalesce((SELECT string_agg(n, ',') FROM unnest(dblink_get_connections()) n), 'none')",
                         expected: "none")
    }

    /// The settings capture runs in the client's own session, with its search_path: an
    /// unqualified `=` in it would be whatever operator the client put first, and a capture
    /// answering "no settings" would hand the next client a server with the first one's.
    func testTheSettingsCaptureCannotBeMisledByTheClientsOperators() throws {
        let h = try harness
        try h.cluster.query("""
            CREATE SCHEMA IF NOT EXISTS txiso_ops; GRANT USAGE ON SCHEMA txiso_ops TO app_rw;
            CREATE OR REPLACE FUNCTION txiso_ops.never(text, text) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT false';
            DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_operator WHERE oprname = '=' AND oprnamespace = 'txiso_ops'::regnamespace)
            THEN CREATE OPERATOR txiso_ops.= (leftarg = text, rightarg = text, function = txiso_ops.never); END IF; END$$;
            """, dbname: "app")
        try assertNoLeak("SET search_path = txiso_ops, pg_catalog, public",
                         probe: "SHOW search_path", expected: "\"$user\", public")
    }

    /// Session mode with server_reset = discard: a client that cancels and leaves at once must
    /// not have its cancel land on the next client's query on the reused backend.
    func testACancelInFlightKeepsADiscardedServerFromTheNextClient() throws {
        let h = try harness
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["workers = 1", "server_reset = discard", "pool_max_size = 1", "pool_wait_timeout = 30s"]
        let started = try sharedProxy { try ProxyProcess(harness: h, options: options) }
        let conninfo = started.endpoint.conninfo(user: "app_rw", dbname: "app", extra: "password=\(Endpoint.passwords["app_rw"] ?? "")")
        @Sendable func session() throws -> LibPQSession { try LibPQSession(conninfo: conninfo) }
        var bCancelled = 0
        for attempt in 0..<15 {
            nonisolated(unsafe) var a: LibPQSession? = try session()
            let canceller = try XCTUnwrap(a?.canceller())
            // b connects while a holds the one server connection, and waits for it.
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var bOutcome: [PQOutcome] = []
            DispatchQueue.global().async {
                do {
                    let b = try session()
                    bOutcome = b.run("SELECT pg_sleep(1)", protocol: .simple)
                } catch {
                    bOutcome = [PQOutcome(status: "CONNECT", sqlState: "08000", message: "\(error)", rows: [])]
                }
                done.signal()
            }
            Thread.sleep(forTimeInterval: 0.2)
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                _ = a?.run("SELECT pg_sleep(\(Double(attempt % 5) * 0.002))", protocol: .simple)
            }
            Thread.sleep(forTimeInterval: 0.001)
            _ = canceller.cancel()
            group.wait()
            a = nil  // PQfinish: a leaves at once
            done.wait()
            XCTAssertNotEqual(bOutcome.first?.sqlState, "08000", "\(bOutcome)")
            if bOutcome.contains(where: { $0.sqlState == "57014" }) { bCancelled += 1 }
        }
        XCTAssertEqual(bCancelled, 0, "a's cancel reached b's query on the reused backend")
    }

    /// Fast-path FunctionCall (55.2.6) names its function by OID, with no text to classify:
    /// `set_config('role', …, false)` or `pg_advisory_lock` called that way leave state behind.
    func testAFastPathFunctionCallLeavesNothingForTheNextClient() throws {
        let proxy = try startProxy()
        let oid = try XCTUnwrap(UInt32(try harness.cluster.query("SELECT 'pg_catalog.set_config(text,text,boolean)'::regprocedure::oid")))
        let a = try WireClient(port: proxy.port, user: "app_rw", database: "txiso", parameters: [("application_name", Self.tag)])
        var payload = WireClient.int32(oid) + [0, 1, 0, 0] + [0, 3]
        for argument in ["role", "tx_other", "false"] { payload += WireClient.int32(UInt32(argument.utf8.count)) + Array(argument.utf8) }
        payload += [0, 0]
        XCTAssertTrue(a.socket.send(WireClient.frame("F", payload)))
        let reply = try a.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(reply.map(\.type), Array("VZ".utf8), "\(reply.map { String(decoding: $0.payload, as: UTF8.self) })")
        let b = try connect(proxy)
        XCTAssertEqual(try value(b, "SELECT current_user"), "app_rw")
        // The large-object functions, which do not pin, are those OIDs in PostgreSQL 15.
        XCTAssertEqual(try harness.cluster.query("""
            SELECT string_agg(oid::text, ',' ORDER BY oid) FROM pg_proc WHERE proname IN ('lo_open', 'lo_close', 'loread',
              'lowrite', 'lo_lseek', 'lo_lseek64', 'lo_creat', 'lo_create', 'lo_tell', 'lo_tell64', 'lo_unlink', 'lo_truncate',
              'lo_truncate64') AND pronamespace = 'pg_catalog'::regnamespace
            """), "715,952,953,954,955,956,957,958,964,1004,3170,3171,3172")
    }

    /// A role default search_path naming pg_temp (a role may ALTER ROLE itself) makes an
    /// unqualified CREATE TABLE temporary on every server connection opened afterwards, where
    /// no statement of the session shows it.
    func testARoleDefaultSearchPathCannotCreateAnUnpinnedTemporaryTable() throws {
        let h = try harness
        defer { _ = try? h.cluster.query("ALTER ROLE app_rw RESET search_path") }
        do {
            let setup = try connect(try startProxy())
            XCTAssertEqual(setup.run("ALTER ROLE app_rw SET search_path = pg_temp, public", protocol: .simple).filter(\.isError), [])
        }
        // A new proxy: its server connections start with the role's new default.
        stopSharedProxy()
        try assertNoLeak("CREATE TABLE txiso_items (id int, owner text); INSERT INTO txiso_items VALUES (3, 'forged')",
                         probe: "SELECT owner FROM txiso_items ORDER BY id", expected: "real")
    }

    /// Hardening: a read-write identity with a read-only identity's server user, sending the
    /// very startup parameters the proxy gives read-only sessions, still never shares their
    /// server connections (a pool of one: sharing would make the read-only client wait).
    func testAReadWriteIdentityNeverSharesAReadOnlyPool() throws {
        let h = try harness
        var options = try ProxyProcess.Options.transactionPooling(h, directory: "txiso-rwro", poolSize: 1, waitTimeout: "3s") { server in
            ["txiso = \(server) dbname=app pool_mode=transaction"]
        }
        options.extraIdentities = ["txiso_rw_as_ro = mode=read-write server_user=app_ro server_password='app_ro_pw'"]
        let started = try sharedProxy { try ProxyProcess(harness: h, options: options) }
        let mimicked = [("application_name", Self.tag), ("standard_conforming_strings", "on"), ("default_transaction_read_only", "on")]
        let writer = try WireClient(port: started.port, user: "txiso_rw_as_ro", database: "txiso", parameters: mimicked)
        XCTAssertTrue(writer.socket.send(WireClient.query("BEGIN")))
        XCTAssertEqual(try writer.collect(readyForQuery: 1, timeout: 20).map(\.type), Array("CZ".utf8))
        let reader = try WireClient(port: started.port, user: "app_ro", database: "txiso", parameters: [("application_name", Self.tag)])
        XCTAssertTrue(reader.socket.send(WireClient.query("SELECT 1")))
        let answer = try reader.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(answer.map(\.type), Array("TDCZ".utf8), "\(answer.map { $0.fields })")
    }
}

// MARK: - Statements the server keeps where the proxy's tracking says it has none

extension TransactionPoolingIsolationTests {
    private func wireClient(_ proxy: ProxyProcess) throws -> WireClient {
        try WireClient(port: proxy.port, user: "app_rw", database: "txiso", parameters: [("application_name", Self.tag)])
    }

    /// Sends `bytes` and reads what comes back up to the next ReadyForQuery.
    private func exchange(_ client: WireClient, _ bytes: [UInt8]) throws -> [WireClient.Message] {
        XCTAssertTrue(client.socket.send(bytes))
        return try client.collect(readyForQuery: 1, timeout: 20)
    }

    private static func types(_ messages: [WireClient.Message]) -> String {
        String(decoding: messages.map(\.type), as: UTF8.self)
    }

    private static func texts(_ messages: [WireClient.Message]) -> String {
        messages.map { String(decoding: $0.payload, as: UTF8.self) }.joined(separator: " | ")
    }

    /// DEALLOCATE ALL drops the named prepared statements only (prepare.c
    /// DropAllPreparedStatements walks the prepared_queries hash): the unnamed one
    /// (postgres.c unnamed_stmt_psrc) stays. Run as a named statement — a Query would destroy
    /// the unnamed statement itself — it must not make the proxy forget what the server holds.
    func testDeallocateAllDoesNotMakeAnotherClientsUnnamedStatementBindable() throws {
        let h = try harness
        // PostgreSQL alone: the unnamed statement outlives DEALLOCATE ALL.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.parse("SELECT 'kept'") + WireClient.sync
            + WireClient.parse("DEALLOCATE ALL", name: "txiso_d") + WireClient.bind(statement: "txiso_d") + WireClient.execute()
            + WireClient.sync + WireClient.bind() + WireClient.execute() + WireClient.sync))
        let alone = try direct.collect(readyForQuery: 3, timeout: 20)
        XCTAssertEqual(Self.types(alone), "1Z12CZ2DCZ", Self.texts(alone))
        XCTAssertTrue(Self.texts(alone).contains("kept"))

        let proxy = try startProxy()
        let a = try wireClient(proxy), b = try wireClient(proxy)
        XCTAssertTrue(a.socket.send(WireClient.parse("SELECT 'secret of a'") + WireClient.sync))
        XCTAssertEqual(Self.types(try a.collect(readyForQuery: 1, timeout: 20)), "1Z")
        // b, on the server a released: DEALLOCATE ALL in one transaction, a Bind of the unnamed
        // statement it never parsed in the next.
        XCTAssertTrue(b.socket.send(WireClient.parse("DEALLOCATE ALL", name: "txiso_d") + WireClient.bind(statement: "txiso_d")
            + WireClient.execute() + WireClient.sync))
        let deallocated = try b.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(Self.types(deallocated), "12CZ", Self.texts(deallocated))
        XCTAssertTrue(b.socket.send(WireClient.bind() + WireClient.execute() + WireClient.sync))
        let seen = try b.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(Self.types(seen), "EZ", "b ran a's statement: \(Self.texts(seen))")
        XCTAssertEqual(seen.first?.fields["C"], "26000")
        XCTAssertTrue(proxy.isAlive)
    }

    /// Hypothesis from review, refuted: in copy-in mode a Close the proxy slips in before a Bind
    /// would be dropped as the copy's end and the Bind would run another client's statement.
    /// PostgreSQL 14+ reads only the type byte of a message that is not CopyData, CopyDone,
    /// CopyFail, Flush or Sync before its 08P01 error (copyfromparse.c CopyGetData), so the
    /// error finds a message half read and ends the backend: "terminating connection because
    /// protocol synchronization was lost" (postgres.c PostgresMain). Kept so a change there,
    /// or in the proxy, shows.
    func testACopyInEndsTheBackendRatherThanDropAMessage() throws {
        let h = try harness
        _ = try startProxy()  // txiso_items
        // PostgreSQL alone: the Close after a COPY FROM STDIN ends the session.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.parse("SELECT 'kept'", name: "txiso_s") + WireClient.sync))
        XCTAssertEqual(Self.types(try direct.collect(readyForQuery: 1, timeout: 20)), "1Z")
        XCTAssertTrue(direct.socket.send(WireClient.query("COPY txiso_items FROM STDIN") + WireClient.close(statement: "txiso_s")
            + WireClient.bind(statement: "txiso_s") + WireClient.execute() + WireClient.sync))
        let alone = try direct.collect(readyForQuery: 2, timeout: 20)
        XCTAssertEqual(Self.types(alone), "GEE", Self.texts(alone))
        XCTAssertEqual(alone.last?.fields["S"], "FATAL")
        XCTAssertEqual(alone.last?.fields["C"], "08P01")

        // Through the proxy, after both kinds of COPY: b never runs a's statements, and the
        // next client is served.
        let proxy = try startProxy()
        for copy in [WireClient.query("COPY txiso_items FROM STDIN") + WireClient.bind(statement: "txiso_s"),
                     WireClient.parse("COPY txiso_items FROM STDIN", name: "txiso_c") + WireClient.bind(statement: "txiso_c")
                        + WireClient.execute() + WireClient.bind()] {
            let a = try wireClient(proxy), b = try wireClient(proxy)
            XCTAssertTrue(a.socket.send(WireClient.parse("SELECT 'secret of a'", name: "txiso_s") + WireClient.parse("SELECT 'secret of a'")
                + WireClient.sync))
            XCTAssertEqual(Self.types(try a.collect(readyForQuery: 1, timeout: 20)), "11Z")
            XCTAssertTrue(b.socket.send(copy + WireClient.execute() + WireClient.sync))
            let seen = try b.collect(readyForQuery: 2, timeout: 20)
            XCTAssertFalse(Self.texts(seen).contains("secret of a"), "b ran a's statement: \(Self.texts(seen))")
            XCTAssertEqual(seen.last?.fields["S"], "FATAL", Self.texts(seen))
            let c = try wireClient(proxy)
            XCTAssertTrue(c.socket.send(WireClient.query("SELECT 1")))
            XCTAssertEqual(Self.types(try c.collect(readyForQuery: 1, timeout: 20)), "TDCZ")
        }
        XCTAssertTrue(proxy.isAlive)
        XCTAssertEqual(try h.cluster.query("SELECT count(*) FROM txiso_items", dbname: "app"), "1")
    }

    /// Pins are read from a statement's text when it is parsed, but a prepared statement runs
    /// again at each Bind/Execute: DISCARD TEMP keeps prepared statements (docs DISCARD), so a
    /// session unpinned by it could run its prepared `CREATE TEMP TABLE` again and leave the
    /// table on a server connection the next client gets, in front of that client's own table.
    func testAPreparedTemporaryTableRunAfterDiscardTempDoesNotLeak() throws {
        let h = try harness
        _ = try startProxy()  // txiso_items
        let create = "CREATE TEMP TABLE txiso_items AS SELECT 0 AS id, 'forged'::text AS owner"
        // PostgreSQL alone: after DISCARD TEMP the statement is still there and makes the table again.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.parse(create, name: "txiso_t") + WireClient.sync + WireClient.query("DISCARD TEMP")
            + WireClient.bind(statement: "txiso_t") + WireClient.execute() + WireClient.sync
            + WireClient.query("SELECT owner FROM txiso_items ORDER BY id")))
        let alone = try direct.collect(readyForQuery: 4, timeout: 20)
        XCTAssertEqual(Self.types(alone), "1ZCZ2CZTDCZ", Self.texts(alone))
        XCTAssertTrue(Self.texts(alone).contains("forged"), Self.texts(alone))

        let proxy = try startProxy()
        let a = try wireClient(proxy)
        XCTAssertEqual(Self.types(try exchange(a, WireClient.parse(create, name: "txiso_t") + WireClient.sync)), "1Z")
        XCTAssertEqual(Self.types(try exchange(a, WireClient.query("DISCARD TEMP"))), "CZ")
        let created = try exchange(a, WireClient.bind(statement: "txiso_t") + WireClient.execute() + WireClient.sync)
        XCTAssertEqual(Self.types(created), "2CZ", Self.texts(created))
        let b = try connect(proxy)
        XCTAssertEqual(try value(b, "SELECT owner FROM txiso_items ORDER BY id"), "real")
        XCTAssertTrue(proxy.isAlive)
    }

    /// DISCARD ALL drops the named statements but not the unnamed one (prepare.c
    /// DropAllPreparedStatements): run from a named statement it releases the role pin of an
    /// unnamed `SET ROLE`, which a later Bind runs again — on the same server, or parsed again
    /// by the proxy on another.
    func testAnUnnamedSetRoleRunAfterDiscardAllDoesNotLeak() throws {
        let h = try harness
        let proxy = try startProxy()
        // PostgreSQL alone: after DISCARD ALL the unnamed statement is still there and runs.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.parse("SET ROLE tx_other") + WireClient.sync
            + WireClient.parse("DISCARD ALL", name: "txiso_d") + WireClient.bind(statement: "txiso_d") + WireClient.execute() + WireClient.sync
            + WireClient.bind() + WireClient.execute() + WireClient.sync + WireClient.query("SELECT current_user")))
        let alone = try direct.collect(readyForQuery: 4, timeout: 20)
        XCTAssertEqual(Self.types(alone), "1Z12CZ2CZTDCZ", Self.texts(alone))
        XCTAssertTrue(Self.texts(alone).contains("tx_other"), Self.texts(alone))

        let a = try wireClient(proxy)
        XCTAssertTrue(a.socket.send(WireClient.parse("SET ROLE tx_other") + WireClient.sync))
        XCTAssertEqual(Self.types(try a.collect(readyForQuery: 1, timeout: 20)), "1Z")
        XCTAssertTrue(a.socket.send(WireClient.parse("DISCARD ALL", name: "txiso_d") + WireClient.bind(statement: "txiso_d")
            + WireClient.execute() + WireClient.sync))
        XCTAssertEqual(Self.types(try a.collect(readyForQuery: 1, timeout: 20)), "12CZ")
        XCTAssertTrue(a.socket.send(WireClient.bind() + WireClient.execute() + WireClient.sync))
        let ran = try a.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(Self.types(ran), "2CZ", Self.texts(ran))
        let b = try connect(proxy)
        XCTAssertEqual(try value(b, "SELECT current_user"), "app_rw")
        XCTAssertTrue(proxy.isAlive)
    }

    /// A statement prepared in one transaction and bound again in a later one does again what
    /// its text does: a `set_config(…, false)` there changes the session's settings as much as
    /// the first time (drivers with statement caches, asyncpg's, send only Bind/Execute/Sync
    /// for it), so the settings are read back before the server goes to the next client.
    func testASettingChangedByAPreparedStatementBoundAgainDoesNotLeak() throws {
        let h = try harness
        let setTimeout = "SELECT set_config('statement_timeout', '1234', false)"
        // PostgreSQL alone: bound again after a RESET, the statement sets it again.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.parse(setTimeout, name: "txiso_st") + WireClient.sync
            + WireClient.query("RESET statement_timeout") + WireClient.bind(statement: "txiso_st") + WireClient.execute()
            + WireClient.sync + WireClient.query("SHOW statement_timeout")))
        let alone = try direct.collect(readyForQuery: 4, timeout: 20)
        XCTAssertTrue(Self.texts(alone).contains("1234ms"), Self.texts(alone))

        let proxy = try startProxy()
        let a = try wireClient(proxy)
        XCTAssertEqual(Self.types(try exchange(a, WireClient.parse(setTimeout, name: "txiso_st") + WireClient.bind(statement: "txiso_st")
            + WireClient.execute() + WireClient.sync)), "12DCZ")
        XCTAssertEqual(Self.types(try exchange(a, WireClient.query("RESET statement_timeout"))), "CZ")
        let again = try exchange(a, WireClient.bind(statement: "txiso_st") + WireClient.execute() + WireClient.sync)
        XCTAssertEqual(Self.types(again), "2DCZ", Self.texts(again))
        let b = try connect(proxy)
        XCTAssertEqual(try value(b, "SHOW statement_timeout"), "0")
        // And the setting is a's own: it follows a to its next server.
        XCTAssertTrue(Self.texts(try exchange(a, WireClient.query("SHOW statement_timeout"))).contains("1234ms"))
        XCTAssertTrue(proxy.isAlive)
    }

    /// DISCARD TEMP runs inside a transaction block, and rolled back with it the temporary
    /// tables it dropped are there again: a release seen in a transaction that did not commit
    /// must not unpin, or a's table shadows b's.
    func testADiscardTempRolledBackKeepsTheClientPinned() throws {
        let h = try harness
        _ = try startProxy()  // txiso_items
        // PostgreSQL alone: the temporary table survives BEGIN; DISCARD TEMP; ROLLBACK.
        let direct = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(direct.socket.send(WireClient.query("CREATE TEMP TABLE txiso_items AS SELECT 1 AS id, 'attacker'::text AS owner")
            + WireClient.query("BEGIN; DISCARD TEMP; ROLLBACK") + WireClient.query("SELECT owner FROM txiso_items")))
        XCTAssertTrue(Self.texts(try direct.collect(readyForQuery: 3, timeout: 20)).contains("attacker"))

        for undo in ["BEGIN; DISCARD TEMP; ROLLBACK", "BEGIN; SAVEPOINT s; DISCARD TEMP; ROLLBACK TO s; COMMIT",
                     "DISCARD TEMP; SELECT 1/0"] {
            try assertNoLeak("CREATE TEMP TABLE txiso_items AS SELECT 1 AS id, 'attacker'::text AS owner", undo,
                             probe: "SELECT owner FROM txiso_items ORDER BY id", expected: "real", mayFail: true)
            stopSharedProxy()
        }
        // A procedure that rolls back (PostgreSQL 11+) in a pipeline's implicit transaction brings
        // the table back with no ROLLBACK tag and no error: its CALL drops the release too.
        _ = try h.cluster.query("CREATE OR REPLACE PROCEDURE public.txiso_rollback() LANGUAGE plpgsql AS $$BEGIN ROLLBACK; END$$;"
            + " GRANT EXECUTE ON PROCEDURE public.txiso_rollback() TO app_rw", dbname: "app")
        let pipeline = WireClient.parse("DISCARD TEMP") + WireClient.bind() + WireClient.execute()
            + WireClient.parse("CALL public.txiso_rollback()") + WireClient.bind() + WireClient.execute() + WireClient.sync
        let directAgain = try WireClient(cluster: h.cluster, user: "app_rw")
        XCTAssertTrue(directAgain.socket.send(WireClient.query("CREATE TEMP TABLE txiso_items AS SELECT 1 AS id, 'attacker'::text AS owner")
            + pipeline + WireClient.query("SELECT owner FROM txiso_items")))
        let called = try directAgain.collect(readyForQuery: 3, timeout: 20)
        XCTAssertTrue(Self.texts(called).contains("attacker"), "PostgreSQL alone: the table is back: \(Self.texts(called))")
        let caller = try wireClient(try startProxy())
        XCTAssertEqual(Self.types(try exchange(caller, WireClient.query("CREATE TEMP TABLE txiso_items AS SELECT 1 AS id, 'attacker'::text AS owner"))),
                       "CZ")
        let ran = try exchange(caller, pipeline)
        XCTAssertEqual(Self.types(ran), "12C12CZ", Self.texts(ran))
        XCTAssertEqual(try value(try connect(try startProxy()), "SELECT owner FROM txiso_items ORDER BY id"), "real")
        stopSharedProxy()

        // Committed, it releases: on a pool of one, b gets the server a no longer holds (pinned,
        // b would wait out pool_wait_timeout) and sees no temporary table there.
        let proxy = try startProxy(poolSize: 1)
        let a = try connect(proxy)
        XCTAssertEqual(a.run("CREATE TEMP TABLE txiso_items AS SELECT 1 AS id, 'attacker'::text AS owner", protocol: .simple)
            .filter(\.isError), [])
        XCTAssertEqual(a.run("BEGIN; DISCARD TEMP; COMMIT", protocol: .simple).filter(\.isError), [])
        let b = try connect(proxy)
        XCTAssertEqual(try value(b, "SELECT owner FROM txiso_items ORDER BY id"), "real")
    }
}
