import Foundation
import XCTest

extension AttackCorpusTests {
    /// A write the fingerprint must notice, the section it must show up in, and (for
    /// cluster-wide state, which re-cloning the database does not undo) how to undo it.
    private struct KnownWrite {
        let sql: String
        let section: String
        var undo: String? = nil
    }

    private static let knownWrites: [KnownWrite] = [
        KnownWrite(sql: "CREATE SCHEMA zz", section: "namespaces"),
        KnownWrite(sql: "GRANT SELECT ON t TO PUBLIC", section: "relations"),
        KnownWrite(sql: "TRUNCATE u", section: "relations"),
        KnownWrite(sql: "ANALYZE t", section: "relation statistics"),
        KnownWrite(sql: "ALTER TABLE t ADD COLUMN zz int", section: "attributes"),
        KnownWrite(sql: "ALTER TABLE t ALTER COLUMN a SET DEFAULT 7", section: "attributes"),
        KnownWrite(sql: "CREATE FUNCTION zz() RETURNS int LANGUAGE sql AS 'SELECT 1'", section: "functions"),
        KnownWrite(sql: "CREATE TYPE zz AS ENUM ('a')", section: "types"),
        KnownWrite(sql: "CREATE TRIGGER zz BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", section: "triggers"),
        KnownWrite(sql: "CREATE RULE zz AS ON INSERT TO u DO INSTEAD NOTHING", section: "rules"),
        KnownWrite(sql: "CREATE POLICY zz ON t USING (true)", section: "policies"),
        KnownWrite(sql: "ALTER TABLE t ADD CONSTRAINT zz CHECK (a > -100)", section: "constraints"),
        KnownWrite(sql: "CLUSTER t USING t_pkey", section: "indexes"),
        KnownWrite(sql: "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC", section: "default privileges"),
        KnownWrite(sql: "UPDATE t SET a = 11 WHERE a = 10", section: "table data"),
        KnownWrite(sql: "INSERT INTO \"T\" VALUES (1)", section: "table data"),
        KnownWrite(sql: "SELECT nextval('s')", section: "sequences"),
        KnownWrite(sql: "SELECT lo_put(1234, 0, 'x')", section: "large objects"),
        KnownWrite(sql: "COMMENT ON TABLE t IS 'x'", section: "comments and labels"),
        KnownWrite(sql: "CREATE PUBLICATION zz FOR TABLE t", section: "publications and subscriptions"),
        KnownWrite(sql: "CREATE FOREIGN DATA WRAPPER zz", section: "extensions and foreign data"),
        KnownWrite(sql: "SELECT pg_create_physical_replication_slot('zz')", section: "replication slots",
                   undo: "SELECT pg_drop_replication_slot('zz')"),
        KnownWrite(sql: "ALTER ROLE reader CREATEDB", section: "roles", undo: "ALTER ROLE reader NOCREATEDB"),
        KnownWrite(sql: "GRANT admin TO reader", section: "roles", undo: "REVOKE admin FROM reader"),
        KnownWrite(sql: "ALTER ROLE reader PASSWORD 'zz'", section: "role passwords", undo: "ALTER ROLE reader PASSWORD NULL"),
        KnownWrite(sql: "ALTER ROLE reader SET work_mem = '2MB'", section: "role and database settings",
                   undo: "ALTER ROLE reader RESET ALL"),
        KnownWrite(sql: "ALTER DATABASE corpus SET work_mem = '2MB'", section: "role and database settings"),
        KnownWrite(sql: "ALTER SYSTEM SET work_mem = '3MB'", section: "server configuration", undo: "ALTER SYSTEM RESET work_mem"),
        KnownWrite(sql: "COMMENT ON ROLE reader IS 'x'", section: "comments and labels", undo: "COMMENT ON ROLE reader IS NULL"),
    ]

    /// Reads (including ones that touch tables, locks and session state) leave the fingerprint
    /// alone; each known write changes the section it belongs to; every section is exercised.
    /// Runs straight against PostgreSQL, so it proves the fingerprint, not the proxy.
    func testFingerprintSeesEveryKindOfWriteAndNoRead() throws {
        let bench = try CorpusBench(harness: try harness)
        let baseline = try bench.fingerprint()
        XCTAssertEqual(try bench.fingerprint(), baseline, "two fingerprints in a row differ")

        let reader = try bench.directReadOnlySession()
        for read in ["SELECT * FROM t", "TABLE mv", "SELECT lo_get(1234)", "SELECT currval('s')", "SET work_mem = '5MB'",
                     "BEGIN; SELECT * FROM t FOR SHARE", "ROLLBACK", "SELECT pg_advisory_lock(1)", "SELECT count(*) FROM pg_class"] {
            _ = reader.run(read, protocol: .simple)
            XCTAssertEqual(try bench.fingerprint().changedSections(comparedTo: baseline), [], "a read changed the fingerprint: \(read)")
        }
        let owner = try bench.superuserSession()
        _ = try owner.rows("BEGIN; INSERT INTO t VALUES (5); ROLLBACK")
        XCTAssertEqual(try bench.fingerprint().changedSections(comparedTo: baseline), [], "a rolled-back write changed the fingerprint")

        // A read-write identity's write through the endpoint shows up.
        let writer = try bench.readWriteSession()
        XCTAssertEqual(writer.run("SELECT lo_create(4321)", protocol: .extended).last?.rows, [["4321"]])
        XCTAssertEqual(try bench.fingerprint().changedSections(comparedTo: baseline), ["large objects"], "app_rw's lo_create")
        try bench.restore()

        // max_prepared_transactions = 0 in the test cluster: no transaction can be prepared at
        // all, so that section cannot change and needs no write of its own.
        XCTAssertEqual(try bench.superuserSession().rows("SHOW max_prepared_transactions"), [["0"]])
        var exercised: Set<String> = ["prepared transactions"]
        for write in Self.knownWrites {
            let session = try bench.superuserSession()
            let outcome = session.run(write.sql, protocol: .simple)
            XCTAssertFalse(outcome.contains(where: \.isError), "\(write.sql): \(outcome)")
            let changed = try bench.fingerprint().changedSections(comparedTo: baseline)
            XCTAssertTrue(changed.contains(write.section), "\(write.sql) changed \(changed), not \(write.section)")
            exercised.insert(write.section)
            if let undo = write.undo { _ = try session.rows(undo) }
            try bench.restore()
            XCTAssertEqual(try bench.fingerprint().changedSections(comparedTo: baseline), [], "not undone: \(write.sql)")
        }
        XCTAssertEqual(exercised, Set(Fingerprint.sectionQueries.map(\.name)), "sections without a known write")
    }
}
