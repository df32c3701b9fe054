import Foundation
import XCTest

/// Terminate pipelined after work, in session and transaction mode, against a real PostgreSQL 15
/// (review of 2026-12-07): PostgreSQL reads messages in order and exits at Terminate
/// (postgres.c PostgresMain, case 'X'), so what precedes it runs, commits and is answered. The
/// proxy ended the session as soon as it read the Terminate: it cancelled the statement in
/// flight and closed the server connection, so `BEGIN; INSERT; COMMIT` + Terminate in one write
/// lost the row and every reply (SessionMachine+Terminate.swift).
///
/// `txone` has one server connection in transaction mode; `app` is session mode.
final class TransactionPoolingTerminateTests: SharedProxyTestCase {
    override class var proxyRequirement: String { "the proxy's handling of Terminate" }


    private func startProxy() throws -> ProxyProcess {
        try sharedProxy {
            let h = try harness
            let options = try ProxyProcess.Options.transactionPooling(h, directory: "txterm-hba", poolSize: 1, waitTimeout: "10s") { server in
                ["txone = \(server) dbname=app pool_mode=transaction"]
            }
            try h.cluster.query("""
                CREATE TABLE IF NOT EXISTS terminate_rows (tag text);
                GRANT SELECT, INSERT ON terminate_rows TO app_rw;
                """, dbname: "app")
            return try ProxyProcess(harness: h, options: options)
        }
    }

    private func client(_ proxy: ProxyProcess, _ database: String) throws -> WireClient {
        try WireClient(port: proxy.port, user: "app_rw", database: database, parameters: [("application_name", "txterm_it")])
    }

    private func committed(_ tag: String) throws -> Int {
        Int(try harness.cluster.query("SELECT count(*) FROM terminate_rows WHERE tag = '\(tag)'", dbname: "app")) ?? -1
    }

    /// Messages until the proxy closes the connection (tags and errors; ParameterStatus left out).
    private func untilClosed(_ client: WireClient) throws -> [String] {
        var out: [String] = []
        while let message = try client.next(timeout: 20) {
            switch message.type {
            case UInt8(ascii: "C"): out.append("C " + String(decoding: message.payload.dropLast(), as: UTF8.self))
            case UInt8(ascii: "E"): out.append("E" + (message.fields["C"] ?? "?"))
            case UInt8(ascii: "Z"): out.append("Z" + String(UnicodeScalar(message.payload.first ?? 0)))
            default: break
            }
        }
        return out
    }

    func testWorkPipelinedWithTerminateCommitsAndIsAnswered() throws {
        let proxy = try startProxy()
        for database in ["app", "txone"] {
            let tag = "pipelined-\(database)-\(UInt32.random(in: 0...UInt32.max))"
            let a = try client(proxy, database)
            XCTAssertTrue(a.socket.send(WireClient.query("BEGIN") + WireClient.query("INSERT INTO terminate_rows VALUES ('\(tag)')")
                                        + WireClient.query("COMMIT") + WireClient.frame("X", [])))
            XCTAssertEqual(try untilClosed(a), ["C BEGIN", "ZT", "C INSERT 0 1", "ZT", "C COMMIT", "ZI"], database)
            XCTAssertEqual(try committed(tag), 1, "\(database): committed, as PostgreSQL directly does")
            let single = "single-\(tag)"
            let b = try client(proxy, database)
            XCTAssertTrue(b.socket.send(WireClient.query("INSERT INTO terminate_rows VALUES ('\(single)')") + WireClient.frame("X", [])))
            XCTAssertEqual(try untilClosed(b), ["C INSERT 0 1", "ZI"], database)
            XCTAssertEqual(try committed(single), 1, database)
        }
        // The one server connection of txone went back and serves the next client.
        let next = try client(proxy, "txone")
        XCTAssertTrue(next.socket.send(WireClient.query("SELECT 1")))
        XCTAssertEqual(try next.collect(readyForQuery: 1, timeout: 20).last?.type, UInt8(ascii: "Z"))
    }

    /// An open transaction at the Terminate is rolled back, as PostgreSQL does at exit, and its
    /// server connection is not handed to the next client in that state.
    func testAnOpenTransactionAtTerminateIsRolledBack() throws {
        let proxy = try startProxy()
        let tag = "open-\(UInt32.random(in: 0...UInt32.max))"
        let a = try client(proxy, "txone")
        XCTAssertTrue(a.socket.send(WireClient.query("BEGIN") + WireClient.query("INSERT INTO terminate_rows VALUES ('\(tag)')")
                                    + WireClient.frame("X", [])))
        XCTAssertEqual(try untilClosed(a), ["C BEGIN", "ZT", "C INSERT 0 1", "ZT"])
        let next = try client(proxy, "txone")
        XCTAssertTrue(next.socket.send(WireClient.query("SELECT count(*) FROM terminate_rows WHERE tag = '\(tag)'")))
        let rows = try next.collect(readyForQuery: 1, timeout: 20)
        XCTAssertEqual(rows.last?.payload, [UInt8(ascii: "I")], "the next client is outside any transaction")
        XCTAssertEqual(try committed(tag), 0)
    }

    /// Sends `bytes` in one write, reads the first answer (by then the proxy has read the whole
    /// write, Terminate included) and leaves: the socket is closed with a reset as the client
    /// is released on return.
    private func sendAndLeave(_ proxy: ProxyProcess, _ database: String, _ bytes: [UInt8]) throws {
        let a = try client(proxy, database)
        XCTAssertTrue(a.socket.send(bytes))
        XCTAssertEqual(try a.collect(readyForQuery: 1, timeout: 20).last?.type, UInt8(ascii: "Z"))
        a.armReset()
    }

    /// A client that sends a slow statement, more work and Terminate, then leaves: the work runs
    /// to its end, as PostgreSQL runs it, instead of being cancelled; the server connection
    /// then serves the next client.
    func testAClientLeavingAfterTerminateDoesNotCancelWhatItSent() throws {
        let proxy = try startProxy()
        for database in ["app", "txone"] {
            let statements = { (tag: String) in
                WireClient.query("SELECT 1") + WireClient.query("SELECT pg_sleep(0.5)")
                    + WireClient.query("INSERT INTO terminate_rows VALUES ('\(tag)')")
            }
            // The same statements once before, so their classifications are cached and the
            // proxy reads the whole write, Terminate included, before it answers the first.
            let warm = try client(proxy, database)
            XCTAssertTrue(warm.socket.send(statements("warm") + WireClient.frame("X", [])))
            _ = try untilClosed(warm)
            print("TIMING warm", database, Date())
            let tag = "left-\(database)-\(UInt32.random(in: 0...UInt32.max))"
            try sendAndLeave(proxy, database, statements(tag) + WireClient.frame("X", []))
            print("TIMING left", database, Date())
            let deadline = Date().addingTimeInterval(20)
            while try committed(tag) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            XCTAssertEqual(try committed(tag), 1, "\(database): the INSERT after the sleep ran")
        }
        let next = try client(proxy, "txone")
        XCTAssertTrue(next.socket.send(WireClient.query("SELECT 1")))
        XCTAssertEqual(try next.collect(readyForQuery: 1, timeout: 20).last?.type, UInt8(ascii: "Z"))
    }
}
