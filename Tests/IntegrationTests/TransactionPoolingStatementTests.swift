import Foundation
import XCTest

/// Protocol-level prepared statements in `pool_mode = transaction` against a real PostgreSQL 15,
/// from the review of 2026-12-07: names compared as PostgreSQL compares them (first 63 bytes),
/// a Close the server skipped after an error, statements over `max_prepared_statements`, and
/// names and texts in a client encoding other than UTF-8. Each case failed before its fix (two
/// of them ran another client's statement); PostgreSQL directly is the oracle.
///
/// `txone` has one server connection (so the second client gets the first one's) and
/// `max_prepared_statements = 2`; `app` is the same database in session mode.
final class TransactionPoolingStatementTests: SharedProxyTestCase {

    private func startProxy() throws -> ProxyProcess {
        try sharedProxy {
            let h = try harness
            var options = try ProxyProcess.Options.transactionPooling(h, directory: "txstmt-hba", poolSize: 1, waitTimeout: "10s") { server in
                ["txone = \(server) dbname=app pool_mode=transaction"]
            }
            options.extraSettings += ["pool_min_idle = 0", "max_prepared_statements = 2"]
            return try ProxyProcess(harness: h, options: options)
        }
    }

    private func client(_ proxy: ProxyProcess, _ database: String = "txone") throws -> WireClient {
        try WireClient(port: proxy.port, user: "app_rw", database: database, parameters: [("application_name", "txstmt_it")])
    }

    private func direct() throws -> WireClient {
        try WireClient(cluster: try harness.cluster, user: "app_rw", database: "app")
    }

    // MARK: Messages by bytes

    private static func cstring(_ bytes: [UInt8]) -> [UInt8] { bytes + [0] }
    private static func parse(_ name: [UInt8], _ query: [UInt8]) -> [UInt8] {
        WireClient.frame("P", cstring(name) + cstring(query) + [0, 0])
    }
    private static func bind(_ name: [UInt8]) -> [UInt8] { WireClient.frame("B", [0] + cstring(name) + [0, 0, 0, 0, 0, 0]) }
    private static func close(_ name: [UInt8]) -> [UInt8] { WireClient.frame("C", [UInt8(ascii: "S")] + cstring(name)) }
    private static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// What the client was answered, message by message, up to `readyForQuery` ReadyForQuery
    /// messages: errors by SQLSTATE, rows and tags by their bytes (ParameterStatus and notices
    /// left out).
    private func answers(_ client: WireClient, _ bytes: [UInt8], readyForQuery: Int = 1) throws -> [String] {
        XCTAssertTrue(client.socket.send(bytes))
        return try client.collect(readyForQuery: readyForQuery, timeout: 20).compactMap { message in
            switch message.type {
            case UInt8(ascii: "S"), UInt8(ascii: "N"): nil
            case UInt8(ascii: "E"): "E" + (message.fields["C"] ?? "?")
            case UInt8(ascii: "D"), UInt8(ascii: "C"):
                String(UnicodeScalar(message.type)) + message.payload.map { String(format: "%02x", $0) }.joined()
            default: String(UnicodeScalar(message.type))
            }
        }
    }

    /// A DataRow of one text column whose value is `value`'s bytes.
    private static func row(_ value: [UInt8]) -> String {
        let n = value.count
        let payload: [UInt8] = [0, 1, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + value
        return "D" + payload.map { String(format: "%02x", $0) }.joined()
    }

    private func quit(_ client: WireClient) {
        _ = client.socket.send(WireClient.frame("X", []))
        Thread.sleep(forTimeInterval: 0.3)
    }

    // MARK: Names

    /// PostgreSQL keys statements by their first 63 bytes (prepare.c, HASH_STRINGS with keysize
    /// NAMEDATALEN): `b` binding `ppp…pC`, which it never prepared, ran `a`'s `ppp…pA`, and `a`
    /// later ran `b`'s.
    func testALongNameNeverReachesAnotherClientsStatement() throws {
        let proxy = try startProxy()
        let prefix = String(repeating: "p", count: 63)
        let a = try client(proxy)
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes(prefix + "A"), Self.bytes("SELECT 'a'")) + WireClient.sync), ["1", "Z"])
        let b = try client(proxy)
        let unknown = try answers(b, Self.bind(Self.bytes(prefix + "C")) + WireClient.execute() + WireClient.sync)
        XCTAssertEqual(unknown, ["E26000", "Z"], "b never prepared it")
        XCTAssertEqual(try answers(b, Self.parse(Self.bytes(prefix + "B"), Self.bytes("SELECT 'b'")) + WireClient.sync), ["1", "Z"])
        quit(b)
        let own = try answers(a, Self.bind(Self.bytes(prefix + "A")) + WireClient.execute() + WireClient.sync)
        XCTAssertEqual(own.filter { $0.hasPrefix("D") }, [Self.row(Self.bytes("a"))], "a runs its own: \(own)")
        // The same statement to PostgreSQL: 42P05.
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes(prefix + "Z"), Self.bytes("SELECT 'z'")) + WireClient.sync), ["E42P05", "Z"])
        XCTAssertTrue(proxy.isAlive)
    }

    // MARK: Changes as the server answers them

    /// After an error the server skips every message up to Sync, Close included: `a`'s s1 stays
    /// (PostgreSQL: a Bind of it still runs it), and `b`, which never prepared s1, ran it.
    func testACloseSkippedAfterAnErrorLeavesTheStatement() throws {
        let proxy = try startProxy()
        let a = try client(proxy)
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes("s1"), Self.bytes("SELECT 'a'")) + WireClient.sync), ["1", "Z"])
        let skipped = try answers(a, Self.bind(Self.bytes("nope")) + WireClient.execute() + Self.close(Self.bytes("s1")) + WireClient.sync)
        XCTAssertEqual(skipped, ["E26000", "Z"])
        let still = try answers(a, Self.bind(Self.bytes("s1")) + WireClient.execute() + WireClient.sync)
        XCTAssertEqual(still.filter { $0.hasPrefix("D") || $0.hasPrefix("E") }, [Self.row(Self.bytes("a"))], "s1 is still a's: \(still)")
        quit(a)
        let b = try client(proxy)
        XCTAssertEqual(try answers(b, Self.bind(Self.bytes("s1")) + WireClient.execute() + WireClient.sync), ["E26000", "Z"],
                       "b never prepared s1")
        XCTAssertTrue(proxy.isAlive)
    }

    /// Found by the differential fuzzer: `Query("DEALLOCATE ALL")`, `Bind s1`, `Execute`, `Sync`
    /// in one write. PostgreSQL drops s1 and the Bind fails with 26000; Portcullis planned the
    /// Bind from its view before the DEALLOCATE ALL and, on a server without s1, prepared s1
    /// again before it: the INSERT ran. The same with DISCARD ALL.
    func testDeallocateAllPipelinedBeforeABindIsNotUndone() throws {
        let proxy = try startProxy()
        try harness.cluster.query("""
            CREATE TABLE IF NOT EXISTS txstmt_dealloc (id int);
            GRANT SELECT, INSERT, DELETE ON txstmt_dealloc TO app_rw;
            """, dbname: "app")
        for drop in ["DEALLOCATE ALL", "DISCARD ALL"] {
            var transcripts: [String: [String]] = [:]
            for (label, session) in [("direct", try direct()), ("transaction", try client(proxy))] {
                try harness.cluster.query("TRUNCATE txstmt_dealloc", dbname: "app")
                var seen = try answers(session, Self.parse(Self.bytes("s1"), Self.bytes("INSERT INTO txstmt_dealloc VALUES (1)")) + WireClient.sync)
                if label == "transaction" {
                    // Another client between: the shared server no longer has s1.
                    let other = try client(proxy)
                    XCTAssertEqual(try answers(other, WireClient.query("DEALLOCATE ALL")).last, "Z")
                    quit(other)
                }
                seen += try answers(session, WireClient.query(drop) + Self.bind(Self.bytes("s1")) + WireClient.execute() + WireClient.sync,
                                    readyForQuery: 2)
                seen += try answers(session, WireClient.query("SELECT count(*)::text FROM txstmt_dealloc"))
                transcripts[label] = seen
                quit(session)
            }
            XCTAssertEqual(transcripts["transaction"], transcripts["direct"], drop)
            XCTAssertEqual(transcripts["direct"]?.filter { $0.hasPrefix("D") || $0.hasPrefix("E") },
                           ["E26000", Self.row(Self.bytes("0"))], "\(drop): no row inserted")
        }
        XCTAssertTrue(proxy.isAlive)
    }

    /// Found by the differential fuzzer: `Describe(portal "nope")`, `Query`, `Sync`, then
    /// `Parse a1`, `Sync`. PostgreSQL skips the Query after the Describe's 34000 (no
    /// ReadyForQuery of its own); Portcullis waited for one and answered the Parse with its own
    /// injected CloseComplete.
    func testAQuerySkippedAfterAFailedDescribeKeepsTheRepliesInOrder() throws {
        let proxy = try startProxy()
        var transcripts: [String: [String]] = [:]
        for (label, session) in [("direct", try direct()), ("transaction", try client(proxy))] {
            let describe = WireClient.frame("D", [UInt8(ascii: "P")] + Self.cstring(Self.bytes("nope")))
            var seen = try answers(session, describe + WireClient.query("SELECT 1") + WireClient.sync)
            seen += try answers(session, Self.parse(Self.bytes("a1"), Self.bytes("SELECT 1")) + WireClient.sync)
            seen += try answers(session, Self.bind(Self.bytes("a1")) + WireClient.execute() + WireClient.sync)
            transcripts[label] = seen
            quit(session)
        }
        XCTAssertEqual(transcripts["transaction"], transcripts["direct"])
        XCTAssertEqual(transcripts["direct"]?.prefix(4), ["E34000", "Z", "1", "Z"])
        XCTAssertTrue(proxy.isAlive)
    }

    /// Found by the differential fuzzer: libpq's extended COPY FROM STDIN (Parse/Bind/Describe/
    /// Execute/Sync in one write) ended by CopyFail (`PQputCopyEnd` with a message) or by a bad
    /// row held the only server connection for the client's whole session. Now the client's
    /// next transaction and another client's both run (pool of one server connection).
    func testAFailedExtendedCopyReleasesTheServer() throws {
        let proxy = try startProxy()
        try harness.cluster.query("""
            CREATE TABLE IF NOT EXISTS txstmt_copy (id int);
            GRANT SELECT, INSERT ON txstmt_copy TO app_rw;
            """, dbname: "app")
        let endings: [(String, [UInt8], String)] = [
            ("CopyFail", WireClient.frame("f", Self.cstring(Self.bytes("client abort"))), "E57014"),
            ("bad row", WireClient.frame("d", Self.bytes("x\n")) + WireClient.frame("c", []), "E22P02"),
        ]
        for (label, ending, error) in endings {
            let a = try client(proxy)
            let start = WireClient.parse("COPY txstmt_copy FROM STDIN") + WireClient.bind()
                + WireClient.frame("D", [UInt8(ascii: "P"), 0]) + WireClient.execute() + WireClient.sync
            XCTAssertTrue(a.socket.send(start))
            while let message = try a.next(timeout: 20), message.type != UInt8(ascii: "G") {}
            XCTAssertEqual(try answers(a, ending + WireClient.sync), [error, "Z"], label)
            // a stays connected: with its server kept, b would wait for the pool (10 s) and fail.
            let b = try client(proxy)
            XCTAssertEqual(try answers(b, WireClient.query("SELECT 1")).filter { $0.hasPrefix("D") || $0.hasPrefix("E") },
                           [Self.row(Self.bytes("1"))], "\(label): the server went back to the pool")
            quit(b)
            XCTAssertEqual(try answers(a, WireClient.query("SELECT 2")).filter { $0.hasPrefix("D") || $0.hasPrefix("E") },
                           [Self.row(Self.bytes("2"))], label)
            quit(a)
        }
        XCTAssertTrue(proxy.isAlive)
    }

    // MARK: Over max_prepared_statements

    /// With the bound at 2: s0–s3 prepared (s2 and s3 over it, the client pinned), a SQL
    /// DEALLOCATE of s0, then s1–s3 run, and a second Parse of s2 answers 42P05 — as directly
    /// (before: 26000 for s2 and s3, and the second Parse replaced s2).
    func testStatementsOverTheBoundAnswerAsInPostgreSQL() throws {
        let proxy = try startProxy()
        var transcripts: [String: [String]] = [:]
        for (label, session) in [("direct", try direct()), ("transaction", try client(proxy))] {
            var seen: [String] = []
            for index in 0..<4 {
                seen += try answers(session, Self.parse(Self.bytes("s\(index)"), Self.bytes("SELECT \(index)")) + WireClient.sync)
            }
            seen += try answers(session, WireClient.query("DEALLOCATE s0"))
            for index in 1..<4 {
                seen += try answers(session, Self.bind(Self.bytes("s\(index)")) + WireClient.execute() + WireClient.sync)
            }
            seen += try answers(session, Self.parse(Self.bytes("s2"), Self.bytes("SELECT 'replaced'")) + WireClient.sync)
            seen += try answers(session, Self.bind(Self.bytes("s2")) + WireClient.execute() + WireClient.sync)
            transcripts[label] = seen
            quit(session)
        }
        XCTAssertEqual(transcripts["transaction"], transcripts["direct"])
        XCTAssertEqual(transcripts["direct"]?.filter { $0.hasPrefix("D") || $0.hasPrefix("E") },
                       ["1", "2", "3"].map { Self.row(Self.bytes($0)) } + ["E42P05", Self.row(Self.bytes("2"))])
    }

    // MARK: Client encodings other than UTF-8

    /// client_encoding LATIN1: a named Parse of `'caf\xe9'` reached the server as `'cafï¿½'`, and
    /// the names `\xff` and `\xfe` became one. Session and transaction mode must answer
    /// byte for byte as PostgreSQL does.
    func testLatin1NamesAndTextsTravelByteForByte() throws {
        let proxy = try startProxy()
        let cafe = Self.bytes("SELECT 'caf") + [0xE9] + Self.bytes("', octet_length('caf") + [0xE9] + Self.bytes("')")
        var transcripts: [String: [String]] = [:]
        for (label, session) in [("direct", try direct()), ("session", try client(proxy, "app")), ("transaction", try client(proxy))] {
            var seen = try answers(session, WireClient.query("SET client_encoding = 'LATIN1'"))
            seen += try answers(session, Self.parse(Self.bytes("n1"), cafe) + Self.bind(Self.bytes("n1")) + WireClient.execute() + WireClient.sync)
            seen += try answers(session, Self.parse([0xFF], Self.bytes("SELECT 'y'")) + Self.parse([0xFE], Self.bytes("SELECT 't'")) + WireClient.sync)
            seen += try answers(session, Self.bind([0xFF]) + WireClient.execute() + Self.bind([0xFE]) + WireClient.execute() + WireClient.sync)
            seen += try answers(session, Self.parse([0xFE], Self.bytes("SELECT 'again'")) + WireClient.sync)
            transcripts[label] = seen
            quit(session)
        }
        XCTAssertEqual(transcripts["session"], transcripts["direct"])
        XCTAssertEqual(transcripts["transaction"], transcripts["direct"])
        let rows = transcripts["direct"]?.filter { $0.hasPrefix("D") || $0.hasPrefix("E") }
        XCTAssertEqual(rows?.first, "D" + ([0, 2, 0, 0, 0, 4] + Self.bytes("caf") + [0xE9] + [0, 0, 0, 1] + Self.bytes("5"))
            .map { String(format: "%02x", $0) }.joined(), "café, in LATIN1 to the client; 5 bytes in the UTF8 database")
        XCTAssertEqual(rows?.dropFirst(), [Self.row(Self.bytes("y")), Self.row(Self.bytes("t")), "E42P05"])
        XCTAssertTrue(proxy.isAlive)
    }

    // MARK: Statements named in SQL

    /// SQL reaches protocol-level statements (prepare.c: one hash table): `b`'s `EXECUTE s1`
    /// ran the statement `a` had left on the shared server (PostgreSQL directly: 26000), and
    /// `b`'s `DEALLOCATE s1` removed it.
    func testSQLNeverReachesAnotherClientsStatement() throws {
        let proxy = try startProxy()
        let a = try client(proxy)
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes("s1"), Self.bytes("SELECT 'a'")) + WireClient.sync), ["1", "Z"])
        quit(a)
        let b = try client(proxy)
        // First a text too long to classify (found in review: it went up unread and ran a's s1).
        let padded = "EXECUTE s1 /* " + String(repeating: "x", count: 1_100_000) + " */"
        for sql in [padded, "EXECUTE s1", "EXPLAIN EXECUTE s1", "DEALLOCATE s1", "CREATE TEMP TABLE from_s1 AS EXECUTE s1"] {
            XCTAssertEqual(try answers(b, WireClient.query(sql)), ["E26000", "Z"], String(sql.prefix(40)))
        }
        // A name another client left is free for b's own PREPARE.
        let own = try answers(b, WireClient.query("PREPARE s1 AS SELECT 'b'; EXECUTE s1"))
        XCTAssertEqual(own.filter { $0.hasPrefix("D") || $0.hasPrefix("E") }, [Self.row(Self.bytes("b"))], "\(own)")
        XCTAssertTrue(proxy.isAlive)
    }

    /// A client's own protocol statement and its SQL: EXECUTE runs it where the server has it,
    /// answers 26000 where it does not (a documented difference: nothing that can fail is slipped
    /// in before a Query), DEALLOCATE succeeds on any server, and a Bind after it answers 26000.
    func testSQLReachesTheClientsOwnStatement() throws {
        let proxy = try startProxy()
        let a = try client(proxy)
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes("s2"), Self.bytes("SELECT 'own'")) + WireClient.sync), ["1", "Z"])
        // Another client between: a's next transaction may land on a server without s2.
        let other = try client(proxy)
        XCTAssertEqual(try answers(other, WireClient.query("DEALLOCATE ALL")).last, "Z")
        quit(other)
        let executed = try answers(a, WireClient.query("EXECUTE s2"))
        XCTAssertEqual(executed.filter { $0.hasPrefix("E") }, ["E26000"], "on a server that lacks it: \(executed)")
        // A Bind prepares it on this server again; then SQL reaches it.
        XCTAssertEqual(try answers(a, Self.bind(Self.bytes("s2")) + WireClient.execute() + WireClient.sync).filter { $0.hasPrefix("E") }, [])
        XCTAssertEqual(try answers(a, Self.parse(Self.bytes("s2"), Self.bytes("SELECT 'again'")) + WireClient.sync), ["E42P05", "Z"])
        XCTAssertEqual(try answers(a, WireClient.query("DEALLOCATE s2")).filter { $0.hasPrefix("E") }, [])
        XCTAssertEqual(try answers(a, Self.bind(Self.bytes("s2")) + WireClient.execute() + WireClient.sync), ["E26000", "Z"],
                       "deallocated, as directly")
        XCTAssertTrue(proxy.isAlive)
    }
}
