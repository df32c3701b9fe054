import Admin
import Foundation
import Testing
@testable import Policy

/// ``CatalogSnapshot/query`` against a real PostgreSQL 15 cluster (scripts/pg-cluster.sh in a
/// temporary directory): the snapshot must flag exactly the relations whose reading runs a
/// writing function, a foreign server or an RLS policy calling one — and not plain tables
/// and views.
@Suite(.serialized) struct CatalogLiveTests {
    static let schema = """
        create table audit_log (at timestamptz default now(), what text);
        create table plain (id int, a text);
        create function f() returns int language plpgsql as $$ begin insert into audit_log(what) values ('read'); return 1; end $$;
        create function g(x int) returns int language sql as 'select x + 1';
        create view v_calls_f as select id, a, f() as side from plain;
        create view v_on_v as select id from v_calls_f;
        create view "Mixed Case" as select * from v_on_v;
        create view v_plain as select id, lower(a) as a, count(*) over () from plain;
        create view v_on_plain as select v_plain.* from v_plain join plain using (id);
        create schema other;
        create view other.v_calls_g as select g(id) from plain;
        create materialized view mv_calls_f as select f();
        create materialized view mv_plain as select * from plain;
        create extension postgres_fdw;
        create server loopback foreign data wrapper postgres_fdw options (dbname 'postgres');
        create foreign table ft (x int) server loopback options (table_name 'nothing');
        create view v_on_ft as select * from ft;
        create table rls_t (id int, owner text);
        alter table rls_t enable row level security;
        create policy p on rls_t using (f() = 1);
        create table rls_plain (id int);
        alter table rls_plain enable row level security;
        create policy p2 on rls_plain using (id > 0 and current_user = 'x');
        create view v_on_rls as select * from rls_t;
        create table parent (id int) partition by list (id);
        create table child1 partition of parent for values in (1);
        create foreign table child2 partition of parent for values in (2) server loopback;
        create table parent2 (id int) partition by list (id);
        create table p2c1 partition of parent2 for values in (1);
        create function h(int, int) returns int language sql as 'select $1 + $2';
        create operator %%% (function = h, leftarg = int, rightarg = int);
        create view v_op as select 1 %%% 2 as x;
        create domain posint as int check (g(value) > 0);
        create view v_dom as select 1::posint as x;
        create view v_sys as select * from pg_catalog.pg_prepared_xacts;
        create view v_stat as select * from pg_catalog.pg_stat_activity;
        create view v_setcfg as select set_config('work_mem', '1MB', false);
        create sequence plain_seq;
        create view v_nextval as select nextval('plain_seq'::regclass);
        create view v_sub as select (select count(*) from v_calls_f) as n;
        create view v_builtins as select upper(a), now(), coalesce(id, 0) + 1 as n, a || 'x' as s, id::text
          from plain where a like 'x%' order by 1;
        """

    static let expectedFlagged: Set<String> = [
        "public.v_calls_f", "public.v_on_v", "public.Mixed Case", "other.v_calls_g", "public.mv_calls_f",
        "public.ft", "public.v_on_ft", "public.rls_t", "public.v_on_rls", "public.parent", "public.child2",
        "public.v_op", "public.v_dom", "public.v_setcfg", "public.v_nextval", "public.v_sub",
    ]

    @Test func snapshotFlagsExactlyTheRelationsWhoseReadRunsCode() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: "create database catalogtest")
        _ = try cluster.psql(database: "catalogtest", sql: Self.schema)

        let snapshot = CatalogSnapshot(rows: try cluster.rows(database: "catalogtest", sql: CatalogSnapshot.query))
        #expect(Set(snapshot.restrictedRelations.map(\.qualifiedName)) == Self.expectedFlagged)

        let reasons = Dictionary(uniqueKeysWithValues: snapshot.restrictedRelations.map { ($0.qualifiedName, $0.reason) })
        #expect(reasons["public.v_calls_f"] == "it calls function public.f()")
        #expect(reasons["public.v_on_v"] == "it reads view public.v_calls_f, which calls function public.f()")
        #expect(reasons["public.v_on_rls"]
                == "it reads table public.rls_t, whose row-level security policy, an index, extended statistics or a CHECK constraint calls function public.f()")
        #expect(reasons["public.v_on_ft"] == "it reads foreign table public.ft")
        #expect(reasons["public.v_nextval"] == "it calls function pg_catalog.nextval(regclass)")
        #expect(reasons["public.v_dom"] == "it calls function public.g(x integer)")

        // The snapshot the fixture tests use is what this cluster produces.
        #expect(snapshot == CatalogSnapshotTests.snapshot)

        // The libpq loader (Sources/Admin) reads the same snapshot.
        let loaded = try CatalogSnapshotLoader.load(
            conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=catalogtest user=postgres")
        #expect(Set(loaded.restrictedRelations) == Set(snapshot.restrictedRelations))
        #expect(loaded.userObjects.functions.keys.filter { !$0.hasPrefix("postgres_fdw") }.sorted() == ["f", "g", "h"],
                "the user functions (and the extension's), none built in")
        #expect(loaded.restrictedRelations.map(\.reason) == snapshot.restrictedRelations.map(\.reason))
        // Foreign servers marked readable ([databases] readable_foreign_servers): their tables,
        // and what reads only them, are no longer flagged; everything else stays.
        let optedIn = try CatalogSnapshotLoader.load(
            conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=catalogtest user=postgres",
            readableForeignServers: ["loopback", "it's \"odd\""])
        #expect(Set(optedIn.restrictedRelations.map(\.qualifiedName))
                == Self.expectedFlagged.subtracting(["public.ft", "public.v_on_ft", "public.child2", "public.parent"]))
        #expect(throws: AdminError.self) {
            try CatalogSnapshotLoader.load(conninfo: "host=\(cluster.dir) port=\(cluster.port) dbname=no_such_db user=postgres")
        }

        var classifier = CachingStatementClassifier()
        let refused = classifier.classify(sql: "select * from v_on_v", catalog: snapshot).firstRefusal
        #expect(refused?.message == "reading view \"public.v_on_v\" is not allowed for a read-only identity: "
                + "it reads view public.v_calls_f, which calls function public.f()")
        #expect(classifier.classify(sql: "select * from v_on_plain join v_builtins using (n)", catalog: snapshot)
            .isAllowedForReadOnly)
    }
}

/// Found in review (round 3): user code the planner runs when a statement reads a table, and
/// types a view builds values of without a cast: each relation below ran a planted function
/// for `SELECT … FROM` it, against PostgreSQL 15 (Tests/IntegrationTests/OverloadAttackTests
/// shows the writes); and a relation named like a pg_catalog one.
@Suite(.serialized) struct CatalogLiveFoldTests {
    static let schema = """
        create function imm(int) returns int language sql immutable as 'select $1';
        create domain posint as int check (imm(value) > 0);
        create table idx_expr (x int);
        create index on idx_expr ((x + imm(1)));
        create table idx_pred (x int);
        create index on idx_pred (x) where x > imm(2);
        create table stat_expr (x int);
        create statistics stat_expr_s on (x + imm(3)), x from stat_expr;
        create table chk_parent (x int);
        create table chk_child (check (x > imm(4))) inherits (chk_parent);
        create table part_expr (x int) partition by range ((x + imm(5)));
        create view v_on_idx as select count(*) from idx_expr;
        create type dcomp as (a posint);
        create view v_coldef as select r.a::int as a from jsonb_to_record('{"a":1}') as r(a posint);
        create view v_typednull as select jsonb_populate_record(null::dcomp, '{"a":3}') is not null as ok;
        create view pg_settings as select 'x'::text as name;
        create table idx_plain (x int, y text);
        create index on idx_plain ((x + 1)) where x > 0;
        create index on idx_plain (lower(y));
        create statistics idx_plain_s on (x * 2), x from idx_plain;
        create table chk_plain (x int check (x > 0 and x < abs(-100)));
        create view v_plain_null as select null::int as x, '{"a":1}'::jsonb as j;
        """

    /// The queries run in databases of any encoding, converted from the loader's UTF8: one
    /// non-ASCII character in a comment (an ellipsis) made every LATIN1 database unreadable.
    @Test func catalogQueriesAreASCII() {
        #expect(CatalogSnapshot.query.utf8.allSatisfy { $0 < 0x80 })
        #expect(CatalogSnapshot.objectsQuery.utf8.allSatisfy { $0 < 0x80 })
    }

    @Test func snapshotFlagsWhatThePlannerFoldsAndTypesViewsBuild() throws {
        let cluster = try LiveCluster.start()
        defer { cluster.stop() }
        _ = try cluster.psql(database: "postgres", sql: "create database foldtest")
        _ = try cluster.psql(database: "foldtest", sql: Self.schema)
        let snapshot = CatalogSnapshot(rows: try cluster.rows(database: "foldtest", sql: CatalogSnapshot.query))
        #expect(Set(snapshot.restrictedRelations.map(\.qualifiedName)) == [
"public.idx_expr", "public.idx_pred", "public.stat_expr", "public.chk_child", "public.chk_parent", "public.part_expr",
            "public.v_on_idx", "public.v_coldef", "public.v_typednull", "public.pg_settings",
        ])
        let reasons = Dictionary(uniqueKeysWithValues: snapshot.restrictedRelations.map { ($0.qualifiedName, $0.reason) })
        #expect(reasons["public.pg_settings"] == "it has the name of the system relation pg_catalog.pg_settings, which an unqualified name is taken to mean")
        #expect(reasons["public.v_typednull"] == "it calls function public.imm(integer)")

        // pg_dump's pinned set_config: refused while pg_settings may not be the catalog's.
        var classifier = CachingStatementClassifier()
        let pinned = "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'"
        #expect(classifier.classify(sql: pinned, catalog: .empty).isAllowedForReadOnly)
        #expect(!classifier.classify(sql: pinned, catalog: snapshot).isAllowedForReadOnly)
        #expect(classifier.classify(sql: "SELECT name FROM pg_catalog.pg_settings", catalog: snapshot).isAllowedForReadOnly)
    }
}

/// A throw-away cluster started with scripts/pg-cluster.sh under /tmp.
struct LiveCluster {
    let root: String
    let repo: String
    let port: Int
    var dir: String { "\(root)/pg" }

    static func start() throws -> LiveCluster {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        var template = Array("/tmp/portcullis-policy-live.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LiveError(description: "mkdtemp failed") }
        let root = String(cString: made)
        chmod(root, 0o755)
        let cluster = LiveCluster(root: root, repo: repo, port: try freePort())
        _ = try cluster.check(run("\(repo)/certs-example/generate.sh", ["\(root)/certs"]))
        _ = try cluster.check(run("\(repo)/scripts/pg-cluster.sh", ["start", cluster.dir, String(cluster.port), "\(root)/certs"]))
        return cluster
    }

    func stop() {
        _ = try? Self.run("\(repo)/scripts/pg-cluster.sh", ["stop", dir])
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs SQL as the superuser over the Unix socket; stdout.
    func psql(database: String, sql: String, extra: [String] = []) throws -> String {
        try check(Self.run("/usr/bin/psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", String(port),
                                             "-U", "postgres", "-d", database] + extra,
                           stdin: sql, environment: ["PGOPTIONS": "-c jit=off"]))
    }

    static let nullMarker = "\u{1}NULL"

    /// The rows of a catalog-snapshot query.
    func rows(database: String, sql: String) throws -> [CatalogSnapshot.Row] {
        let output = try psql(database: database, sql: sql,
                              extra: ["-A", "-t", "-F", "\u{1F}", "-R", "\u{1E}", "-P", "null=\(Self.nullMarker)"])
        return output.split(separator: "\u{1E}").compactMap { record in
            let record = record.hasSuffix("\n") ? record.dropLast() : record
            let fields = record.split(separator: "\u{1F}", omittingEmptySubsequences: false).map {
                $0 == Self.nullMarker ? nil : String($0)
            }
            guard fields.count == 8, let schema = fields[0], let name = fields[1], let relkind = fields[2],
                  let cause = fields[3], let detail = fields[4] else { return nil }
            return CatalogSnapshot.Row(schema: schema, name: name, relkind: relkind, cause: cause, detail: detail,
                                       viaSchema: fields[5], viaName: fields[6], viaRelkind: fields[7])
        }
    }

    private func check(_ result: (status: Int32, stdout: String, stderr: String)) throws -> String {
        guard result.status == 0 else { throw LiveError(description: "exit \(result.status): \(result.stderr)") }
        return result.stdout
    }

    /// Runs a command with posix_spawn, its input and output in files, and reaps it with
    /// waitpid: Foundation's Process on Linux notices termination through a descriptor the
    /// child inherits, so a script that starts a daemon (pg_ctl start) would never "exit".
    static func run(_ path: String, _ arguments: [String], stdin: String? = nil,
                    environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let scratch = "/tmp/policy-live-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (inPath, outPath, errPath) = ("\(scratch)/stdin", "\(scratch)/stdout", "\(scratch)/stderr")
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: inPath))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw LiveError(description: "cannot start \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, String(decoding: try Data(contentsOf: URL(fileURLWithPath: outPath)), as: UTF8.self),
                String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self))
    }

    /// A TCP port the kernel just handed out on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiveError(description: "socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw LiveError(description: "bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct LiveError: Error, CustomStringConvertible {
    let description: String
}
