import Admin
import Foundation
import Testing
@testable import Policy

/// Found in review: the catalog loader's session took the database's default settings, which
/// the database's owner — a read-write role, no superuser — sets with `ALTER DATABASE … SET`.
/// Each case sets such defaults as the owner and requires the libpq loader to finish within
/// seconds with a snapshot that still flags a view calling a writing function
/// (``CatalogSnapshotLoader/pinnedSettings``). Against a throw-away PostgreSQL 15 cluster.
@Suite(.serialized) struct CatalogLoaderPinsLiveTests {
    static let database = "pinstest"

    /// (what the owner does, its ALTER DATABASE … SET lines).
    static let cases: [(name: String, defaults: [String])] = [
        // Every loader query waits for a safe snapshot while a read-write serializable
        // transaction runs (opened below), until its 120 s statement_timeout.
        ("serializable deferrable", ["default_transaction_isolation = 'serializable'",
                                     "default_transaction_deferrable = on", "default_transaction_read_only = on"]),
        // The queries' '(\d+)' reads '(d+)': no view is flagged for the functions it calls.
        ("standard_conforming_strings off", ["standard_conforming_strings = off"]),
        // Every connection fails (the plugins directory has no such library), or ends at the
        // first error or the first idle moment.
        ("connection-ending defaults", ["local_preload_libraries = 'no_such_library'", "exit_on_error = on",
                                        "idle_session_timeout = '1ms'", "lock_timeout = '1ms'"]),
    ]

    @Test func databaseOwnerDefaultsNeitherStallNorBlindTheLoader() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: """
            create role owner_rw login;
            create role reader login;
            create database \(Self.database) owner owner_rw;
            """)
        _ = try cluster.psql(database: Self.database, sql: """
            set role owner_rw;
            create table audit_log (what text);
            create function f() returns int language plpgsql as $$ begin insert into audit_log values ('read'); return 1; end $$;
            create view v_calls_f as select f() as side;
            """)
        // A read-write serializable transaction that stays open (as the owner could hold one).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        holder.arguments = ["-X", "-q", "-h", cluster.dir, "-p", String(cluster.port), "-U", "owner_rw", "-d", Self.database,
                            "-c", "BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE", "-c", "SELECT count(*) FROM audit_log",
                            "-c", "SELECT pg_sleep(600)"]
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer {
            // Ended from the server side: the test process's blocked signals are psql's too.
            _ = try? cluster.psql(database: "postgres", sql: "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'owner_rw'")
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
        }
        #expect(try waitFor { try cluster.psql(database: "postgres", sql: Self.heldQuery, extra: ["-A", "-t"]).hasPrefix("1") },
                "the serializable transaction is not open")

        let conninfo = "host=\(cluster.dir) port=\(cluster.port) dbname=\(Self.database) user=reader"
        // The owner's ALTER DATABASE runs from another database: a session in this one would
        // take the defaults it sets (and wait for a safe snapshot itself).
        for (name, defaults) in Self.cases {
            _ = try cluster.psql(database: "postgres", sql: "set role owner_rw;\n"
                                 + defaults.map { "alter database \(Self.database) set \($0);" }.joined(separator: "\n"))
            let clock = ContinuousClock()
            let started = clock.now
            var snapshot: CatalogSnapshot?
            var failure: String?
            do { snapshot = try CatalogSnapshotLoader.load(conninfo: conninfo) } catch { failure = "\(error)" }
            let elapsed = clock.now - started
            #expect(failure == nil, "\(name): the load failed: \(failure ?? "")")
            #expect(elapsed < .seconds(20), "\(name): the load took \(elapsed)")
            #expect(snapshot?.restrictedRelations.map(\.qualifiedName).contains("public.v_calls_f") == true,
                    "\(name): the view calling f() is not flagged")
            _ = try cluster.psql(database: "postgres", sql: "set role owner_rw; alter database \(Self.database) reset all;")
        }
    }

    static let heldQuery = "select count(*) from pg_stat_activity where query like '%pg_sleep(600)%' and state = 'active' and pid <> pg_backend_pid()"

    private func waitFor(_ condition: () throws -> Bool) throws -> Bool {
        for _ in 0..<100 {
            if try condition() { return true }
            usleep(100_000)
        }
        return false
    }
}
