/// A database of its own for a read-only attack test: made afresh by the superuser with the
/// test's setup (``DblinkHit`` first, as each test's SQL does), and `hits`, the effect probe's
/// row count.
struct AttackDatabase {
    let cluster: Cluster
    let name: String

    func superuser() throws -> LibPQSession {
        try LibPQSession(conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=\(name) user=postgres")
    }

    /// Rows ``DblinkHit`` wrote so far (-1 if unreadable).
    func hits(_ session: LibPQSession) throws -> Int {
        Int(try session.rows("SELECT count(*) FROM hits").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    /// Drops and creates the database, then runs each setup script in its own session (one
    /// committed before the next starts).
    func create(_ setups: String...) throws {
        let admin = try LibPQSession(conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=postgres user=postgres")
        _ = try admin.rows("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        _ = try admin.rows("CREATE DATABASE \(name)")
        for setup in setups { _ = try superuser().rows(setup) }
    }
}
