import Foundation
import Glibc
import XCTest

/// The audit stream end to end: a proxy with `audit = on` writing to a real journald and a
/// JSON lines file; records are read back (journalctl -o json, the file) and checked field by
/// field after the proxy was stopped with SIGTERM (which flushes the writer).
final class AuditStreamTests: IntegrationTestCase {
    private func startJournald() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let result = try runCommand("\(root)/scripts/start-journald.sh", [], environment: [:], timeout: 30)
        if result.status != 0 { throw XCTSkip("no journald: \(result.stderr)") }
    }

    private func auditProxy(_ settings: [String], clientTLS: String = "require") throws -> (ProxyProcess, String) {
        let harness = try harness
        let dir = try harness.makeDir("audit")
        let file = "\(dir)/audit.json"
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.clientTLS = clientTLS
        options.extraSettings = ["audit = on"] + settings.map { $0.replacingOccurrences(of: "@FILE@", with: file) }
        return (try ProxyProcess(harness: harness, options: options), file)
    }

    private func psql(_ proxy: ProxyProcess, _ sql: String, user: String = "app_rw") throws -> CommandResult {
        try runPsql(conninfo: proxy.endpoint.conninfo(user: user), sql: sql, env: proxy.endpoint.env(user: user))
    }

    private func jsonRecords(_ path: String) throws -> [[String: Any]] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try XCTUnwrap(object as? [String: Any], "not an object: \(line)")
        }
    }

    private func journalRecords(pid: Int32) throws -> [[String: Any]] {
        let result = try runCommand("/usr/bin/journalctl", ["-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=portcullis", "_PID=\(pid)"],
                                    environment: [:], timeout: 30)
        return result.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    private func statements(_ records: [[String: Any]], key: (String) -> String, containing text: String) -> [[String: Any]] {
        records.filter { ($0[key("audit_event")] as? String) == "statement" && "\($0[key("message")] ?? "")".contains(text) }
    }

    func testStatementsAndConnectionEventsReachJournaldAndTheJSONFile() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        try startJournald()
        let (proxy, file) = try auditProxy(["audit_sinks = journald, json:@FILE@"])
        let table = marker("audit")
        let secret = "supersecret_\(table)"
        // A write, a read and DDL by the read-write identity, in one multi-statement Query.
        assertSucceeded(try psql(proxy, "CREATE TABLE \(table) (a int); INSERT INTO \(table) VALUES (1), (2); SELECT * FROM \(table)"),
                        "multi-statement query")
        // A failing statement, and a role with a password (fails or not: never logged in clear).
        XCTAssertNotEqual(try psql(proxy, "SELECT 1/0 AS \(table)_div").status, 0)
        _ = try psql(proxy, "CREATE ROLE \(table)_role PASSWORD '\(secret)'")
        _ = try harness.cluster.superuserPsql("DROP ROLE IF EXISTS \(table)_role", dbname: "app")
        _ = try psql(proxy, "SELECT set_config('portcullis.secret_password', '\(secret)', false)")
        // The read-only identity: a read, and a write the gate refuses.
        assertSucceeded(try psql(proxy, "SELECT count(*) AS \(table)_byro FROM \(table)", user: "app_ro"), "read by app_ro")
        XCTAssertNotEqual(try psql(proxy, "DELETE FROM \(table) WHERE a = 1", user: "app_ro").status, 0)
        // The extended protocol (pgbench -M extended: Parse/Bind/Describe/Execute/Sync).
        let scriptDir = try harness.makeDir("audit-pgbench")
        try "SELECT count(*) AS \(table)_ext FROM \(table) WHERE a > 0;\n".write(toFile: "\(scriptDir)/q.sql", atomically: true, encoding: .utf8)
        assertSucceeded(try runPgbench(conninfo: proxy.endpoint.conninfo(), arguments: ["-n", "-M", "extended", "-t", "2", "-f", "\(scriptDir)/q.sql"],
                                       env: proxy.endpoint.env()), "pgbench -M extended")
        _ = try harness.cluster.superuserPsql("DROP TABLE IF EXISTS \(table)", dbname: "app")
        let pid = try XCTUnwrap(proxy.endpoint.proxyPID)
        proxy.stop()  // SIGTERM: loops drain, the writer flushes

        let json = try jsonRecords(file)
        var journal: [[String: Any]] = []
        XCTAssertTrue(poll(timeout: 10) {
            journal = (try? journalRecords(pid: pid)) ?? []
            return journal.count >= json.count && !json.isEmpty
        }, "journald has \(journal.count) records, the file \(json.count)")
        let rawFile = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        XCTAssertFalse(rawFile.contains(secret), "a password reached the JSON file")
        XCTAssertFalse(journal.contains { "\($0)".contains(secret) }, "a password reached journald")

        for (records, key) in [(json, { (name: String) in name }), (journal, { (name: String) in name.uppercased() })] {
            let sink = records.first?[key("message")] != nil && key("x") == "X" ? "journald" : "json"
            func field(_ record: [String: Any], _ name: String) -> String? { record[key(name)].map { "\($0)" } }

            let insert = statements(records, key: key, containing: "INSERT INTO \(table)")
            XCTAssertEqual(insert.count, 1, sink)
            if let record = insert.first {
                XCTAssertTrue(field(record, "message")?.hasPrefix("AUDIT: SESSION,") == true, sink)
                XCTAssertEqual(field(record, "audit_class"), "WRITE", sink)
                XCTAssertEqual(field(record, "audit_command"), "INSERT", sink)
                XCTAssertEqual(field(record, "outcome"), "ok", sink)
                XCTAssertEqual(field(record, "rows"), "2", sink)
                XCTAssertEqual(field(record, "db_user"), "app_rw", sink)
                XCTAssertEqual(field(record, "db_name"), "app", sink)
                XCTAssertEqual(field(record, "client_addr"), "127.0.0.1", sink)
                XCTAssertEqual(field(record, "audit_substatement_id"), "2", sink)
                XCTAssertEqual(field(record, "audit_statement"), "INSERT INTO \(table) VALUES (1), (2)", sink)
                XCTAssertEqual(field(record, "transaction_status"), "I", sink)
                XCTAssertNotNil(field(record, "backend_pid"), sink)
            }
            let create = statements(records, key: key, containing: "CREATE TABLE \(table)")
            XCTAssertEqual(create.first.flatMap { field($0, "audit_class") }, "DDL", sink)
            XCTAssertEqual(create.first.flatMap { field($0, "audit_substatement_id") }, "1", sink)
            XCTAssertEqual(create.first.flatMap { field($0, "audit_statement_id") },
                           insert.first.flatMap { field($0, "audit_statement_id") }, "one statement id per Query string (\(sink))")
            let select = statements(records, key: key, containing: "SELECT * FROM \(table)")
            XCTAssertEqual(select.first.flatMap { field($0, "audit_class") }, "READ", sink)
            XCTAssertEqual(select.first.flatMap { field($0, "rows") }, "2", sink)

            let division = statements(records, key: key, containing: "\(table)_div")
            XCTAssertEqual(division.first.flatMap { field($0, "outcome") }, "failed", sink)
            XCTAssertEqual(division.first.flatMap { field($0, "sqlstate") }, "22012", sink)

            let role = statements(records, key: key, containing: "\(table)_role")
            XCTAssertEqual(role.first.flatMap { field($0, "audit_class") }, "ROLE", sink)
            XCTAssertTrue(role.first.flatMap { field($0, "message") }?.contains("<redacted>") == true, "\(role) (\(sink))")

            let readOnly = statements(records, key: key, containing: "\(table)_byro")
            XCTAssertEqual(readOnly.first.flatMap { field($0, "db_user") }, "app_ro", sink)
            XCTAssertEqual(readOnly.first.flatMap { field($0, "outcome") }, "ok", sink)
            let refused = statements(records, key: key, containing: "DELETE FROM \(table)")
            XCTAssertEqual(refused.count, 1, sink)
            XCTAssertEqual(refused.first.flatMap { field($0, "outcome") }, "refused", sink)
            XCTAssertEqual(refused.first.flatMap { field($0, "sqlstate") }, "25006", sink)
            XCTAssertEqual(refused.first.flatMap { field($0, "audit_class") }, "WRITE", sink)
            XCTAssertEqual(refused.first.flatMap { field($0, "db_user") }, "app_ro", sink)

            let extended = statements(records, key: key, containing: "\(table)_ext")
            XCTAssertEqual(extended.count, 2, "pgbench ran the extended-protocol query twice (\(sink))")
            XCTAssertEqual(extended.first.flatMap { field($0, "audit_class") }, "READ", sink)
            XCTAssertEqual(extended.first.flatMap { field($0, "rows") }, "1", sink)

            // Connection events: each psql/pgbench session connects, authenticates, disconnects.
            let kinds = records.compactMap { field($0, "audit_event") }
            for kind in ["connect", "authenticated", "disconnect"] {
                XCTAssertGreaterThanOrEqual(kinds.filter { $0 == kind }.count, 8, "\(kind) (\(sink))")
            }
            let authenticated = records.first { field($0, "audit_event") == "authenticated" && field($0, "db_user") == "app_ro" }
            XCTAssertEqual(authenticated.flatMap { field($0, "auth_method") }, "scram-sha-256", sink)
            XCTAssertEqual(authenticated.flatMap { field($0, "server_user") }, "app_ro", sink)
            XCTAssertNotNil(authenticated.flatMap { field($0, "hba_line") }, sink)
            XCTAssertNotNil(authenticated.flatMap { field($0, "tls_version") }, sink)
            let disconnect = records.first { field($0, "audit_event") == "disconnect" && field($0, "db_user") == "app_ro" }
            XCTAssertNotNil(disconnect.flatMap { field($0, "bytes_in") }, sink)
            XCTAssertNotNil(disconnect.flatMap { field($0, "duration_us") }, sink)
            XCTAssertEqual(disconnect.flatMap { field($0, "statements") }, "1", sink)
        }
    }

    /// An Execute with a row limit that stops early (PortalSuspended) is recorded, once, even
    /// when the client never fetches the rest: a write with RETURNING has already run whole.
    func testARowLimitedPortalIsRecordedEvenWhenNeverFetchedToTheEnd() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let table = marker("portal")
        let dir = try harness.makeDir("audit-portal")
        try "host all all 127.0.0.1/32 trust\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@", "hba_file = \(dir)/pg_hba.conf"], clientTLS: "allow")
        _ = try harness.cluster.superuserPsql("CREATE TABLE \(table) (a int); GRANT ALL ON \(table) TO app_rw", dbname: "app")
        let client = try WireClient(port: proxy.port, user: "app_rw")
        XCTAssertTrue(client.socket.send(WireClient.query("BEGIN")
            + WireClient.parse("INSERT INTO \(table) SELECT g FROM generate_series(1, 1000) g RETURNING a")
            + WireClient.bind() + WireClient.execute(maxRows: 1) + WireClient.sync + WireClient.query("COMMIT")
            + WireClient.parse("SELECT g AS \(table)_read FROM generate_series(1, 100) g")
            + WireClient.bind() + WireClient.execute(maxRows: 99) + WireClient.sync))
        let replies = try client.collect(readyForQuery: 4, timeout: 20)
        XCTAssertEqual(replies.filter { $0.type == UInt8(ascii: "s") }.count, 2, "both Executes were suspended")
        XCTAssertEqual(try harness.cluster.query("SELECT count(*) FROM \(table)", dbname: "app"), "1000",
                       "the write ran whole and was committed")
        XCTAssertTrue(client.socket.send(WireClient.frame("X", [])))
        _ = try harness.cluster.superuserPsql("DROP TABLE IF EXISTS \(table)", dbname: "app")
        proxy.stop()

        let records = try jsonRecords(file)
        let insert = statements(records, key: { $0 }, containing: "INSERT INTO \(table)")
        XCTAssertEqual(insert.count, 1, "\(records)")
        XCTAssertEqual(insert.first?["audit_class"] as? String, "WRITE")
        XCTAssertEqual(insert.first?["audit_command"] as? String, "INSERT")
        XCTAssertEqual(insert.first?["outcome"] as? String, "ok")
        let read = statements(records, key: { $0 }, containing: "\(table)_read")
        XCTAssertEqual(read.count, 1, "\(records)")
        XCTAssertEqual(read.first?["audit_class"] as? String, "READ")
        let disconnect = records.last { $0["audit_event"] as? String == "disconnect" && $0["db_user"] as? String == "app_rw" }
        XCTAssertEqual(disconnect?["statements"] as? Int, 4, "BEGIN, INSERT, COMMIT, SELECT")
    }

    func testAuthenticationFailureIsRecordedWithoutThePassword() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@"])
        let wrong = "wrongpw_\(marker("pw"))"
        let result = try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_ro"), sql: "SELECT 1", env: ["PGPASSWORD": wrong])
        XCTAssertNotEqual(result.status, 0)
        proxy.stop()
        let records = try jsonRecords(file)
        let failure = records.first { ($0["audit_event"] as? String) == "authentication_failed" }
        XCTAssertEqual(failure?["db_user"] as? String, "app_ro")
        XCTAssertEqual(failure?["auth_method"] as? String, "scram-sha-256")
        XCTAssertEqual(failure?["sqlstate"] as? String, "28P01")
        XCTAssertFalse(((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains(wrong))
    }

    /// Logins refused after the client proved who it is — a database that does not exist, a
    /// read-only identity asking for a way out in `options` — are refused logins in the stream
    /// too, with what was refused and why.
    func testLoginsRefusedAfterAuthenticationAreRecorded() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@"])
        let escape = try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_ro", extra: "options='-c default_transaction_read_only=off'"),
                                 sql: "SELECT 1", env: proxy.endpoint.env(user: "app_ro"))
        XCTAssertNotEqual(escape.status, 0)
        XCTAssertTrue(escape.stderr.contains("is a read-only identity"), escape.stderr)
        let missing = try runPsql(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: "no_such_db_audit"),
                                  sql: "SELECT 1", env: proxy.endpoint.env(user: "app_rw"))
        XCTAssertTrue(missing.stderr.contains("database \"no_such_db_audit\" does not exist"), missing.stderr)
        proxy.stop()
        let failures = try jsonRecords(file).filter { ($0["audit_event"] as? String) == "authentication_failed" }
        let readOnly = failures.first { $0["db_user"] as? String == "app_ro" }
        XCTAssertEqual(readOnly?["sqlstate"] as? String, "42501", "\(failures)")
        XCTAssertEqual(readOnly?["auth_method"] as? String, "scram-sha-256")
        XCTAssertTrue((readOnly?["message"] as? String)?.hasPrefix("login refused: ") == true, "\(failures)")
        let database = failures.first { $0["db_name"] as? String == "no_such_db_audit" }
        XCTAssertEqual(database?["sqlstate"] as? String, "3D000", "\(failures)")
        XCTAssertEqual(database?["db_user"] as? String, "app_rw")
    }

    func testStatementTextModesNormalizedAndNone() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let literal = marker("literal")
        for mode in ["normalized", "none"] {
            let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@", "audit_statement_text = \(mode)",
                                                "audit_classes = read, role"])
            assertSucceeded(try psql(proxy, "SELECT '\(literal)' AS a, 42 AS b"), "select (\(mode))")
            _ = try psql(proxy, "ALTER ROLE nobody_audit_test PASSWORD 'pw_\(literal)'")
            assertSucceeded(try psql(proxy, "SET application_name = 'x'"), "a MISC_SET statement, not logged")
            proxy.stop()
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            XCTAssertFalse(text.contains(literal), "\(mode): a literal reached the stream:\n\(text)")
            let records = try jsonRecords(file).filter { ($0["audit_event"] as? String) == "statement" }
            XCTAssertEqual(records.compactMap { $0["audit_class"] as? String }.sorted(), ["READ", "ROLE"], mode)
            let read = records.first { ($0["audit_class"] as? String) == "READ" }
            switch mode {
            case "normalized":
                XCTAssertEqual(read?["audit_statement"] as? String, "SELECT $1 AS a, $2 AS b")
                XCTAssertEqual(read?["message"] as? String, "AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT $1 AS a, $2 AS b\",<not logged>")
            default:
                XCTAssertNil(read?["audit_statement"])
                XCTAssertEqual(read?["message"] as? String, "AUDIT: SESSION,1,1,READ,SELECT,,,<not logged>,<not logged>")
            }
        }
    }

    /// A queue far smaller than the load, in backpressure mode: every statement is recorded,
    /// in order per session (statement ids count up without gaps).
    func testSmallQueueUnderBackpressureLosesNothing() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@", "audit_queue_size = 16", "audit_queue_full = backpressure",
                                            "workers = 1"])
        let tag = marker("bp")
        let scriptDir = try harness.makeDir("audit-bp")
        try "SELECT 1 AS \(tag);\n".write(toFile: "\(scriptDir)/q.sql", atomically: true, encoding: .utf8)
        assertSucceeded(try runPgbench(conninfo: proxy.endpoint.conninfo(), arguments: ["-n", "-c", "4", "-t", "300", "-f", "\(scriptDir)/q.sql"],
                                       env: proxy.endpoint.env()), "pgbench")
        proxy.stop()
        let records = try jsonRecords(file).filter { "\($0["message"] ?? "")".contains(tag) }
        XCTAssertEqual(records.count, 1200)
        var bySession: [Int: [Int]] = [:]
        for record in records {
            bySession[(record["session_id"] as? Int) ?? -1, default: []].append((record["audit_statement_id"] as? Int) ?? -1)
        }
        XCTAssertEqual(bySession.count, 4)
        for ids in bySession.values { XCTAssertEqual(ids, Array(1...300)) }
        XCTAssertFalse(try jsonRecords(file).contains { ($0["audit_event"] as? String) == "audit_dropped" })
    }

    /// Found in review: one simple Query of 150,000 statements makes 150,000 statement events;
    /// past the queue they waited in the session's own list, which was drained from the front
    /// with Array.removeFirst — quadratic, on the loop thread: the loop (and with it every
    /// other session on it, and the listener on loop 0) froze for minutes, and the list grew
    /// without bound since the server was still read. Now the list is a FIFO queue and a
    /// session with events waiting reads neither leg. Every event still arrives.
    func testAQueryOfManyStatementsNeitherStallsTheLoopNorLosesEvents() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@", "audit_queue_full = backpressure", "workers = 1"])
        defer { proxy.stop() }
        let count = 100_000
        let attack = String(repeating: "SELECT 1;", count: count)
        let conninfo = proxy.endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw")
        nonisolated(unsafe) let attacker = try LibPQSession(conninfo: conninfo)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var errors: [PQOutcome] = []
        DispatchQueue.global().async {
            errors = attacker.run(attack, protocol: .simple).filter(\.isError)
            done.signal()
        }
        defer { done.wait() }
        Thread.sleep(forTimeInterval: 1) // the server is answering the statements
        // Another client on the same (only) loop logs in and is answered meanwhile (before,
        // the loop was busy for minutes: connect_timeout ran out).
        let victim = try LibPQSession(conninfo: conninfo + " connect_timeout=10")
        XCTAssertEqual(try victim.rows("SELECT 'alive'"), [["alive"]])
        XCTAssertEqual(done.wait(timeout: .now() + 120), .success, "the Query finishes")
        XCTAssertEqual(errors, [])
        // Counted by grep (reading 100,000 records here in a debug build would take longer than
        // writing them); the victim's one statement record counts too.
        func recordedCount() -> Int {
            let result = try? runCommand("/bin/grep", ["-c", "-F", "\"audit_event\":\"statement\"", file], environment: [:], timeout: 30)
            return Int(result?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        XCTAssertTrue(poll(timeout: 120) { recordedCount() > count }, "every statement is recorded: \(recordedCount())")
        done.signal()  // for the deferred wait
    }

    /// A sink that stops taking records (a FIFO nobody reads: the writer thread blocks in
    /// write): in backpressure mode the clients stall — nothing is lost, the proxy stays up —
    /// and finish once the sink takes records again; in drop mode they run on and the drops
    /// are counted in an audit_dropped record.
    func testStalledSinkBackpressuresClientsOrDropsAndCounts() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        for mode in ["backpressure", "drop"] {
            let dir = try harness.makeDir("audit-fifo")
            let fifo = "\(dir)/audit.fifo"
            XCTAssertEqual(mkfifo(fifo, 0o600), 0)
            // Opened for reading first (non-blocking), so the proxy's open for writing returns.
            let readFD = open(fifo, O_RDONLY | O_NONBLOCK)
            XCTAssertGreaterThanOrEqual(readFD, 0)
            defer { close(readFD) }
            let (proxy, _) = try auditProxy(["audit_sinks = json:\(fifo)", "audit_queue_size = 16",
                                             "audit_queue_full = \(mode)", "workers = 1"])
            let tag = marker("fifo")
            try "SELECT 1 AS \(tag);\n".write(toFile: "\(dir)/q.sql", atomically: true, encoding: .utf8)
            let bench = try BackgroundCommand("pgbench", ["-n", "-c", "2", "-t", "500", "-f", "\(dir)/q.sql", proxy.endpoint.conninfo()],
                                              environment: proxy.endpoint.env(), workDir: dir)
            defer { bench.signal(SIGKILL) }
            var collected: [UInt8] = []
            func drain() {
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(readFD, &buffer, buffer.count)
                    if n <= 0 { return }
                    collected += buffer[..<n]
                }
            }
            if mode == "backpressure" {
                // The pipe (64 kB) and the queue fill; then the sessions stop being read.
                usleep(3_000_000)
                XCTAssertTrue(bench.isRunning, "pgbench finished although the sink took nothing")
                XCTAssertTrue(proxy.isAlive)
            } else {
                XCTAssertTrue(poll(timeout: 60) { !bench.isRunning }, "drop mode must not stall the clients")
            }
            XCTAssertTrue(poll(timeout: 120) { drain(); return !bench.isRunning })
            let result = try bench.wait(timeout: 10)
            assertSucceeded(result, "pgbench (\(mode))")
            let stopper = Thread { proxy.stop() }
            stopper.start()
            XCTAssertTrue(poll(timeout: 30) { drain(); return !proxy.isAlive })
            drain()
            let lines = String(decoding: collected, as: UTF8.self).split(separator: "\n")
            let statements = lines.filter { $0.contains(tag) }.count
            let dropped = lines.filter { $0.contains("\"audit_event\":\"audit_dropped\"") }
            if mode == "backpressure" {
                XCTAssertEqual(statements, 1000)
                XCTAssertTrue(dropped.isEmpty)
            } else {
                XCTAssertLessThan(statements, 1000)
                XCTAssertFalse(dropped.isEmpty, "drops must be reported")
            }
        }
    }

    /// SIGHUP: the JSON file is reopened (logrotate moved it away) and the reload is recorded,
    /// ok or refused with the error's file:line.
    func testReloadEventsAndFileReopenOnSIGHUP() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@"])
        let pid = try XCTUnwrap(proxy.endpoint.proxyPID)
        let before = marker("before"), after = marker("after")
        assertSucceeded(try psql(proxy, "SELECT 1 AS \(before)"), "before")
        XCTAssertTrue(poll(timeout: 10) { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains(before) })
        XCTAssertEqual(rename(file, file + ".1"), 0)
        kill(pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 10) { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("\"result\":\"ok\"") },
                      "a reload record in the reopened file")
        assertSucceeded(try psql(proxy, "SELECT 1 AS \(after)"), "after")
        // A broken configuration: refused, with the line.
        let config = try String(contentsOfFile: proxy.configPath, encoding: .utf8)
        try writePrivateConfig(config.replacingOccurrences(of: "[portcullis]", with: "[portcullis]\nbogus_audit_key = 1"), to: proxy.configPath)
        kill(pid, SIGHUP)
        XCTAssertTrue(poll(timeout: 10) { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("\"result\":\"refused\"") })
        proxy.stop()
        let old = (try? String(contentsOfFile: file + ".1", encoding: .utf8)) ?? ""
        let new = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        XCTAssertTrue(old.contains(before) && !old.contains(after))
        XCTAssertTrue(new.contains(after) && !new.contains(before))
        let refused = try jsonRecords(file).first { ($0["result"] as? String) == "refused" }
        XCTAssertEqual(refused?["audit_event"] as? String, "reload")
        XCTAssertTrue("\(refused?["reason"] ?? "")".contains("bogus_audit_key"), "\(String(describing: refused))")
    }

    /// Two identities sharing one upstream role are told apart, and an identity's own
    /// `audit_statement_text` overrides the global mode.
    func testSharedRoleIdentitiesAndPerIdentityTextMode() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let harness = try harness
        let verifier = try harness.cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_ro'")
        let dir = try harness.makeDir("audit-agent")
        let file = "\(dir)/audit.json"
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["audit = on", "audit_sinks = json:\(file)"]
        options.extraIdentities = ["agent = mode=read-only password='\(verifier)' server_user=app_ro server_password='app_ro_pw' audit_statement_text=none"]
        let proxy = try ProxyProcess(harness: harness, options: options)
        let literal = marker("agentlit")
        assertSucceeded(try runPsql(conninfo: proxy.endpoint.conninfo(user: "agent"), sql: "SELECT '\(literal)' AS agent_query",
                                    env: ["PGPASSWORD": "app_ro_pw"]), "agent")
        assertSucceeded(try psql(proxy, "SELECT '\(literal)' AS ro_query", user: "app_ro"), "app_ro")
        proxy.stop()
        let records = try jsonRecords(file).filter { ($0["audit_event"] as? String) == "statement" }
        let agent = records.first { ($0["db_user"] as? String) == "agent" }
        let ro = records.first { ($0["db_user"] as? String) == "app_ro" }
        XCTAssertEqual(agent?["server_user"] as? String, "app_ro")
        XCTAssertEqual(ro?["server_user"] as? String, "app_ro")
        XCTAssertNil(agent?["audit_statement"])
        XCTAssertEqual(agent?["message"] as? String, "AUDIT: SESSION,1,1,READ,SELECT,,,<not logged>,<not logged>")
        XCTAssertEqual(ro?["audit_statement"] as? String, "SELECT '\(literal)' AS ro_query")
    }

    /// pgAudit's options and the per-identity/per-database classes, end to end: Bind values in
    /// PARAMETER (bounded by the maximum size), one record per relation with the text once,
    /// classes chosen by identity over database over the global setting, DB_IDENTITY for a
    /// password login, and a statement cut off by its client vanishing recorded as
    /// `disconnected`.
    func testPgAuditOptionsClassesIdentityAndDisconnect() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let harness = try harness
        let verifier = try harness.cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'")
        let dir = try harness.makeDir("audit-options")
        let file = "\(dir)/audit.json"
        let table = marker("auditopt")
        _ = try harness.cluster.superuserPsql("CREATE TABLE \(table)_a (id int, v text); CREATE TABLE \(table)_b (id int);"
            + " GRANT ALL ON \(table)_a, \(table)_b TO app_rw, app_ro", dbname: "app")
        var options = ProxyProcess.Options(upstream: harness.cluster)
        options.extraSettings = ["audit = on", "audit_sinks = json:\(file)", "audit_log_parameter = on",
                                 "audit_log_parameter_max_size = 8", "audit_log_relation = on", "audit_log_statement_once = on",
                                 "audit_classes = READ, WRITE"]
        // `appddl` reaches the same database through an entry that records only DDL; the
        // identity `ddlonly` records only DDL whatever entry it uses.
        options.extraDatabases = ["appddl = \(ProxyProcess.upstreamConninfo(harness.cluster, certDir: harness.certDir)) dbname=app audit_classes=DDL"]
        options.extraIdentities = ["ddlonly = mode=read-write password='\(verifier)' server_user=app_rw server_password='app_rw_pw' audit_classes=ddl"]
        let proxy = try ProxyProcess(harness: harness, options: options)

        let rw = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", extra: "password=app_rw_pw"))
        _ = rw.run("INSERT INTO \(table)_a VALUES ($1, $2)", parameterTypes: [23, 25], values: ["1", "short"])
        _ = rw.run("INSERT INTO \(table)_a VALUES ($1, $2)", parameterTypes: [23, 25], values: ["2", "much longer than eight"])
        _ = rw.run("SELECT * FROM \(table)_a JOIN \(table)_b USING (id) /* rel */", protocol: .simple)
        // A secret passed as a parameter is masked as it would be in the text.
        _ = rw.run("SELECT set_config('app.api_token', $1, false)", parameterTypes: [25], values: ["tok_\(table)_secret"])
        _ = rw.run("CREATE INDEX ON \(table)_b (id) /* rw ddl */", protocol: .simple)
        let viaEntry = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_rw", dbname: "appddl", extra: "password=app_rw_pw"))
        _ = viaEntry.run("SELECT 1 AS via_entry_read", protocol: .simple)
        _ = viaEntry.run("CREATE INDEX ON \(table)_a (id) /* entry ddl */", protocol: .simple)
        let ddl = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "ddlonly", dbname: "appddl", extra: "password=app_rw_pw"))
        _ = ddl.run("SELECT 1 AS ddlonly_read", protocol: .simple)
        _ = ddl.run("ALTER TABLE \(table)_b ADD COLUMN w int /* identity ddl */", protocol: .simple)

        // A client killed while its statement runs.
        let killed = try BackgroundCommand("psql", psqlFlags + ["-d", proxy.endpoint.conninfo(user: "app_rw"),
                                                                "-c", "SELECT pg_sleep(30) AS \(table)_sleep"],
                                           environment: proxy.endpoint.env(user: "app_rw"), workDir: dir)
        let running = try poll(timeout: 20) {
            try harness.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%\(table)_sleep%' AND pid <> pg_backend_pid()") == "1"
        }
        XCTAssertTrue(running, "the sleeping query never started")
        killed.signal(SIGKILL)
        _ = try? killed.wait(timeout: 10)
        // The proxy writes the disconnect when it notices the client is gone; stopping it
        // (SIGTERM) flushes the writer either way.
        _ = poll(timeout: 10) { ((try? self.jsonRecords(file)) ?? []).contains { "\($0["message"] ?? "")".contains("\(table)_sleep") } }
        proxy.stop()

        let records = try jsonRecords(file).filter { ($0["audit_event"] as? String) == "statement" }
        let messages = records.map { "\($0["message"] ?? "")" }
        XCTAssertTrue(messages.contains("AUDIT: SESSION,1,1,WRITE,INSERT,TABLE,\(table)_a,\"INSERT INTO \(table)_a VALUES ($1, $2)\",\"1,short\""),
                      messages.joined(separator: "\n"))
        XCTAssertTrue(messages.contains("AUDIT: SESSION,2,1,WRITE,INSERT,TABLE,\(table)_a,\"INSERT INTO \(table)_a VALUES ($1, $2)\",\"2,<long param suppressed>\""),
                      messages.joined(separator: "\n"))
        let relationRecords = messages.filter { $0.contains("/* rel */") || $0.contains("<previously logged>") }
        XCTAssertEqual(relationRecords, [
            "AUDIT: SESSION,3,1,READ,SELECT,TABLE,\(table)_a,SELECT * FROM \(table)_a JOIN \(table)_b USING (id) /* rel */,<none>",
            "AUDIT: SESSION,3,1,READ,SELECT,TABLE,\(table)_b,<previously logged>,<previously logged>",
        ])
        // Classes: DDL is not in the global list; the entry's DDL-only list drops the read;
        // the identity's list wins on any entry.
        XCTAssertFalse(messages.contains { $0.contains("rw ddl") }, messages.joined(separator: "\n"))
        XCTAssertFalse(messages.contains { $0.contains("via_entry_read") || $0.contains("ddlonly_read") }, messages.joined(separator: "\n"))
        XCTAssertTrue(messages.contains { $0.contains("DDL,CREATE INDEX") && $0.contains("entry ddl") }, messages.joined(separator: "\n"))
        XCTAssertTrue(messages.contains { $0.contains("DDL,ALTER TABLE") && $0.contains("identity ddl") }, messages.joined(separator: "\n"))
        let fileText = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        XCTAssertFalse(fileText.contains("tok_\(table)_secret"), "a parameter secret reached the audit file")
        XCTAssertTrue(messages.contains { $0.contains("set_config") && $0.hasSuffix(",<redacted>") }, messages.joined(separator: "\n"))
        // The password login's authenticated identity.
        let first = records.first { "\($0["message"] ?? "")".contains("short") }
        XCTAssertEqual(first?["db_identity"] as? String, "app_rw")
        // The statement its client never saw finish.
        let cut = records.first { "\($0["message"] ?? "")".contains("\(table)_sleep") }
        XCTAssertEqual(cut?["outcome"] as? String, "disconnected", "\(String(describing: cut))")
        _ = try harness.cluster.superuserPsql("DROP TABLE \(table)_a, \(table)_b", dbname: "app")
    }

    /// pool_exhausted: at pool_max_size = 1 with the one server connection held, two clients
    /// that wait together make one record for the episode (not one per waiter), each is
    /// refused after pool_wait_timeout with a record naming it, and a client that waits later
    /// starts a new episode.
    func testPoolExhaustionOncePerEpisodeAndEachRefusedClientByName() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let (proxy, file) = try auditProxy(["audit_sinks = json:@FILE@", "workers = 1", "pool_max_size = 1", "pool_wait_timeout = 2s",
                                            "server_reset = close"])
        // The holder is a psql as the waiters are: the same startup parameters, so the same pool.
        let conninfo = proxy.endpoint.conninfo(user: "app_rw")
        let sleep = marker("held")
        let held = try BackgroundCommand("psql", psqlFlags + ["-d", conninfo, "-c", "SELECT pg_sleep(10) AS \(sleep)"],
                                         environment: proxy.endpoint.env(), workDir: try harness.scratchDir)
        XCTAssertTrue(poll(timeout: 10) {
            let active = try? harness.cluster.superuserPsql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS \(sleep)'")
            return active?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
        }, "the holder's statement runs")
        // Two waiters at once: one episode.
        let waiters = try (0..<2).map { index in
            try BackgroundCommand("psql", psqlFlags + ["-d", conninfo, "-c", "SELECT 'waiter \(index)'"], environment: proxy.endpoint.env(),
                                  workDir: try harness.scratchDir)
        }
        for waiter in waiters {
            let result = try waiter.wait(timeout: 60)
            XCTAssertNotEqual(result.status, 0, "a waiter got a connection: \(result.stdout)")
            XCTAssertTrue(result.stderr.contains("within pool_wait_timeout"), result.stderr)
        }
        // Everyone who waited is gone: the next one to wait starts a new episode.
        XCTAssertNotEqual(try psql(proxy, "SELECT 'late waiter'").status, 0)
        assertSucceeded(try held.wait(timeout: 30), "the holder")
        proxy.stop()

        let records = try jsonRecords(file).filter { ($0["audit_event"] as? String) == "pool_exhausted" }
        let episodes = records.filter { ($0["result"] as? String) == "waiting" }
        let refusals = records.filter { ($0["result"] as? String) == "timed_out" }
        XCTAssertEqual(episodes.count, 2, "one record per episode, not per waiter: \(records)")
        XCTAssertEqual(refusals.count, 3, "one record per refused client: \(records)")
        for record in episodes {
            XCTAssertEqual(record["message_id"] as? String, "7d2b5f0e9c8a4e1f9b3a6c5d4e3f2a18")
            XCTAssertTrue((record["pool"] as? String)?.hasPrefix("app/") == true, "\(record)")
            XCTAssertEqual(record["max_size"] as? Int, 1, "\(record)")
            XCTAssertEqual(record["waiting"] as? Int, 1, "the first waiter starts the episode: \(record)")
            XCTAssertEqual(record["priority"] as? String, "warning")
            XCTAssertNil(record["db_user"], "a pool event, not a session's: \(record)")
        }
        for record in refusals {
            XCTAssertEqual(record["db_user"] as? String, "app_rw", "\(record)")
            XCTAssertEqual(record["db_name"] as? String, "app", "\(record)")
            XCTAssertEqual(record["client_addr"] as? String, "127.0.0.1", "\(record)")
            XCTAssertNotNil(record["session_id"] as? Int, "\(record)")
            XCTAssertEqual(record["sqlstate"] as? String, "08006", "\(record)")
            XCTAssertEqual(record["max_size"] as? Int, 1, "\(record)")
            XCTAssertTrue((record["pool"] as? String)?.hasPrefix("app/") == true, "\(record)")
        }
    }
}
