import Foundation

/// A digest of everything a statement could durably change, per named section, so a mismatch
/// says what changed. Taken as the superuser in one round trip. Temporary schemas are left out:
/// their objects die with the session (and cannot be read from another one); session state is
/// checked separately by the canary. Cumulative statistics (pg_stat_*) are left out too: reads
/// change them.
struct Fingerprint: Sendable, Equatable {
    let sections: [String: String]

    /// Names of the sections whose digest differs.
    func changedSections(comparedTo other: Fingerprint) -> [String] {
        Set(sections.keys).union(other.sections.keys).filter { sections[$0] != other.sections[$0] }.sorted()
    }

    static func take(_ session: LibPQSession) throws -> Fingerprint {
        var sections: [String: String] = [:]
        for row in try session.rows(query) {
            guard row.count == 2, let name = row[0] else { throw CommandError(description: "bad fingerprint row \(row)") }
            sections[name] = row[1] ?? ""
        }
        guard sections.count == sectionQueries.count else {
            throw CommandError(description: "fingerprint has \(sections.count) sections, expected \(sectionQueries.count)")
        }
        return Fingerprint(sections: sections)
    }

    /// Schemas that hold user objects (pg_temp_N / pg_toast_temp_N are session-local).
    private static let userNamespace = """
        (SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
        AND nspname !~ '^pg_(toast_)?temp_')
        """

    /// User relations, not temporary.
    private static let userRelation = "(SELECT oid FROM pg_class WHERE relnamespace IN \(userNamespace) AND relpersistence <> 't')"

    /// Each section: a query whose single text column is one row of state.
    static let sectionQueries: [(name: String, rowQuery: String)] = [
        ("namespaces", "SELECT n::text FROM (SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace WHERE oid IN \(userNamespace)) n"),
        ("relations", """
            SELECT c::text FROM (SELECT oid::regclass, relkind, relowner::regrole, relacl, reloptions, relfilenode, relnatts, \
            relhastriggers, relhasrules, relrowsecurity, relforcerowsecurity, relreplident, relispopulated, relispartition \
            FROM pg_class WHERE oid IN \(userRelation)) c
            """),
        ("relation statistics", """
            SELECT c::text FROM (SELECT oid::regclass, relpages, reltuples, relallvisible, relfrozenxid, relminmxid \
            FROM pg_class WHERE oid IN \(userRelation)) c \
            UNION ALL SELECT s::text FROM (SELECT starelid::regclass, staattnum, stainherit FROM pg_statistic \
            WHERE starelid IN \(userRelation)) s \
            UNION ALL SELECT e::text FROM (SELECT stxname, stxnamespace::regnamespace, stxkeys FROM pg_statistic_ext) e
            """),
        ("attributes", """
            SELECT a::text FROM (SELECT attrelid::regclass, attnum, attname, atttypid::regtype, attnotnull, atthasdef, \
            attidentity, attgenerated, attisdropped, attacl, attoptions FROM pg_attribute WHERE attrelid IN \(userRelation)) a \
            UNION ALL SELECT d::text FROM (SELECT adrelid::regclass, adnum, pg_get_expr(adbin, adrelid) FROM pg_attrdef \
            WHERE adrelid IN \(userRelation)) d
            """),
        ("functions", """
            SELECT p::text FROM (SELECT oid::regprocedure, proowner::regrole, prokind, prosecdef, provolatile, proacl, \
            proconfig, prosrc, prorettype::regtype FROM pg_proc WHERE pronamespace IN \(userNamespace)) p \
            UNION ALL SELECT o::text FROM (SELECT oid::regoperator, oprowner::regrole, oprcode FROM pg_operator \
            WHERE oprnamespace IN \(userNamespace)) o
            """),
        ("types", """
            SELECT t::text FROM (SELECT oid::regtype, typowner::regrole, typtype, typacl, typnotnull FROM pg_type \
            WHERE typnamespace IN \(userNamespace)) t \
            UNION ALL SELECT e::text FROM (SELECT enumtypid::regtype, enumlabel, enumsortorder FROM pg_enum) e
            """),
        ("triggers", """
            SELECT t::text FROM (SELECT tgrelid::regclass, tgname, tgfoid::regprocedure, tgtype, tgenabled, tgisinternal \
            FROM pg_trigger WHERE tgrelid IN \(userRelation)) t \
            UNION ALL SELECT e::text FROM (SELECT evtname, evtevent, evtowner::regrole, evtfoid::regprocedure, evtenabled \
            FROM pg_event_trigger) e
            """),
        ("rules", """
            SELECT r::text FROM (SELECT ev_class::regclass, rulename, ev_type, ev_enabled, is_instead, \
            md5(ev_action::text) FROM pg_rewrite WHERE ev_class IN \(userRelation)) r
            """),
        ("policies", """
            SELECT p::text FROM (SELECT polrelid::regclass, polname, polcmd, polpermissive, polroles::regrole[], \
            pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) FROM pg_policy) p
            """),
        ("constraints", """
            SELECT c::text FROM (SELECT conrelid::regclass, contypid::regtype, conname, contype, convalidated, \
            pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace IN \(userNamespace)) c
            """),
        ("indexes", """
            SELECT i::text FROM (SELECT indexrelid::regclass, indrelid::regclass, indkey, indisunique, indisprimary, \
            indisclustered, indisvalid, indisready, indislive, indisreplident FROM pg_index WHERE indrelid IN \(userRelation)) i
            """),
        ("default privileges", "SELECT d::text FROM (SELECT defaclrole::regrole, defaclnamespace, defaclobjtype, defaclacl FROM pg_default_acl) d"),
        ("table data", "SELECT \(tableDigest(kind: "relkind IN ('r', 'p', 'm')", row: "x::text"))"),
        // A sequence has no row type for x::text; its state is last_value and is_called.
        ("sequences", "SELECT \(tableDigest(kind: "relkind = 'S'", row: "last_value || '' '' || is_called"))"),
        ("roles", """
            SELECT r::text FROM (SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
            rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_authid) r \
            UNION ALL SELECT m::text FROM (SELECT roleid::regrole, member::regrole, grantor::regrole, admin_option \
            FROM pg_auth_members) m
            """),
        // A digest of the stored verifier only, so a password change shows without printing anything secret.
        ("role passwords", "SELECT rolname || ':' || md5(coalesce(rolpassword, '')) FROM pg_authid"),
        ("role and database settings", """
            SELECT s::text FROM (SELECT setdatabase, setrole::regrole, setconfig FROM pg_db_role_setting) s \
            UNION ALL SELECT d::text FROM (SELECT datname, datdba::regrole, datallowconn, datconnlimit, datistemplate, datacl \
            FROM pg_database) d
            """),
        // pg_file_settings re-reads postgresql.conf and postgresql.auto.conf (ALTER SYSTEM) on every query.
        ("server configuration", """
            SELECT f::text FROM (SELECT sourcefile, name, setting, applied FROM pg_file_settings) f \
            UNION ALL SELECT s::text FROM (SELECT name, setting FROM pg_settings WHERE source = 'configuration file') s
            """),
        ("large objects", """
            SELECT m::text FROM (SELECT oid, lomowner::regrole, lomacl FROM pg_largeobject_metadata) m \
            UNION ALL SELECT l::text FROM (SELECT loid, pageno, md5(data) FROM pg_largeobject) l
            """),
        ("prepared transactions", "SELECT p::text FROM (SELECT gid, owner, database FROM pg_prepared_xacts) p"),
        ("comments and labels", """
            SELECT d::text FROM (SELECT classoid::regclass, objoid, objsubid, description FROM pg_description) d \
            UNION ALL SELECT s::text FROM (SELECT classoid::regclass, objoid, description FROM pg_shdescription) s \
            UNION ALL SELECT l::text FROM (SELECT classoid::regclass, objoid, objsubid, provider, label FROM pg_seclabel) l \
            UNION ALL SELECT l::text FROM (SELECT classoid::regclass, objoid, provider, label FROM pg_shseclabel) l
            """),
        ("publications and subscriptions", """
            SELECT p::text FROM (SELECT pubname, pubowner::regrole, puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication) p \
            UNION ALL SELECT r::text FROM (SELECT prpubid, prrelid::regclass FROM pg_publication_rel) r \
            UNION ALL SELECT s::text FROM (SELECT subname, subowner::regrole, subenabled FROM pg_subscription) s
            """),
        ("extensions and foreign data", """
            SELECT e::text FROM (SELECT extname, extowner::regrole, extversion FROM pg_extension) e \
            UNION ALL SELECT w::text FROM (SELECT fdwname, fdwowner::regrole FROM pg_foreign_data_wrapper) w \
            UNION ALL SELECT s::text FROM (SELECT srvname, srvowner::regrole, srvoptions FROM pg_foreign_server) s \
            UNION ALL SELECT l::text FROM (SELECT lanname, lanowner::regrole, lanpltrusted, lanacl FROM pg_language) l
            """),
        ("replication slots", "SELECT r::text FROM (SELECT slot_name, plugin, slot_type, database, temporary FROM pg_replication_slots) r"),
    ]

    /// One row per relation of the kind: its name and the md5 of its ordered rows, computed by a
    /// dynamic query through query_to_xml so the whole fingerprint stays one statement.
    private static func tableDigest(kind: String, row: String) -> String {
        """
        c.oid::regclass::text || ':' || (xpath('/row/h/text()', query_to_xml(format(\
        'SELECT md5(coalesce(string_agg(\(row), E''\\n'' ORDER BY \(row)), '''')) AS h FROM %s x', c.oid::regclass), \
        false, true, '')))[1]::text FROM pg_class c WHERE c.oid IN \(userRelation) AND \(kind)
        """
    }

    static let query: String = sectionQueries.map { section in
        "SELECT '\(section.name)', md5(coalesce(string_agg(v, E'\\n' ORDER BY v), '')) FROM (\(section.rowQuery)) AS s(v)"
    }.joined(separator: "\nUNION ALL\n")
}
