#!/usr/bin/env python3
"""Reviews every built-in function of a PostgreSQL 15 cluster for read-only identities and
writes Sources/Policy/FunctionAllowList+Builtins.swift: one line per pg_proc entry with
oid < 16384 (name, identity arguments, volatility, parallel safety, kind, decision, reason).

    scripts/builtin-functions.py "host=/tmp/pg port=5432 user=postgres dbname=postgres"

The rules (read them as the review; the generated file records, for each function, the
rule that decided it):
- unreachable: an `internal` argument (no SQL expression has that type) or a trigger /
  event-trigger / handler result (PostgreSQL refuses to call those outside their context).
  Ignored when deciding a name.
- refuse/<category>: the explicit deny lists below, checked first.
- refuse/input-by-type-oid: type input functions taking the type as an OID argument
  (`domain_in(cstring, oid, integer)`, `record_in`, `array_in`, `range_in`, ...): called
  directly they build a value of any type — a domain whose CHECK calls user code, a composite
  with such a column — without the statement naming the type.
- allow/volatile-reviewed: a VOLATILE function on REVIEWED_VOLATILE.
- refuse/volatile: any other VOLATILE function (may write, signal, sleep, lock, or change
  session state).
- refuse/procedure: procedures (CALL is refused).
- allow/immutable, allow/stable: everything else.

The classifier decides by name (a call resolves among all overloads), so a name is allowed
only when every reachable overload is allowed.
"""
import subprocess
import sys

DENY = {
    # Runs SQL text or reads whole relations through SPI, out of the classifier's sight.
    "runs-sql": {"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
                 "cursor_to_xmlschema", "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
                 "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
                 "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite"},
    # Assigns a transaction id (WAL, clog) although STABLE.
    "assigns-xid": {"txid_current", "pg_current_xact_id"},
    # Server files and build/configuration details.
    "server-files": {"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_ls_logdir", "pg_ls_waldir",
                     "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir",
                     "pg_ls_replslotdir", "pg_stat_file", "pg_config", "pg_hba_file_rules",
                     "pg_ident_file_mappings", "pg_show_all_file_settings", "lo_import", "lo_export"},
    # Holds other sessions up: sleeps and advisory locks.
    "waits-or-locks": {"pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_advisory_lock",
                       "pg_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
                       "pg_advisory_unlock_all", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
                       "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
                       "pg_try_advisory_xact_lock_shared"},
    # Sequence writes (PostgreSQL refuses them in a read-only transaction too).
    "sequence-write": {"nextval", "setval"},
    # NOTIFY stays refused: a notification can make a listening writer act.
    "notify": {"pg_notify"},
}

# VOLATILE functions that only read, reviewed one by one.
REVIEWED_VOLATILE = {
    # Random values, clocks.
    "random", "setseed", "clock_timestamp", "timeofday", "gen_random_uuid",
    # Session and server state readers.
    "current_query", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids", "pg_lock_status",
    "pg_notification_queue_usage", "pg_jit_available", "pg_is_in_recovery", "pg_get_wal_replay_pause_state",
    "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_last_committed_xact",
    "pg_xact_commit_timestamp", "pg_xact_status", "txid_status", "pg_current_logfile",
    "pg_control_checkpoint", "pg_control_system", "pg_control_init", "pg_control_recovery",
    "pg_get_backend_memory_contexts",
    # Sizes and partition trees.
    "pg_database_size", "pg_indexes_size", "pg_relation_size", "pg_table_size", "pg_tablespace_size",
    "pg_total_relation_size", "pg_partition_tree", "pg_partition_ancestors",
    # pg_dump -j: the snapshot lives as long as the exporting (read-only) transaction.
    "pg_export_snapshot",
    # Checked by the classifier: the setting name and value must be constants SettingPolicy allows.
    "set_config",
    # Readers behind system views and monitoring tools (pgAdmin asks pg_is_wal_replay_paused()
    # on connect; pg_sequences, pg_prepared_xacts, pg_shmem_allocations call the others).
    "pg_is_wal_replay_paused", "pg_prepared_xact", "pg_sequence_last_value", "pg_get_shmem_allocations",
    "pg_get_wal_resource_managers", "pg_get_multixact_members", "pg_xact_commit_timestamp_origin",
    "pg_show_replication_origin_status", "pg_replication_origin_session_is_setup", "pg_stat_have_stats",
    "pg_stat_get_recovery_prefetch", "pg_stat_get_xact_blocks_fetched", "pg_stat_get_xact_blocks_hit",
    "pg_stat_get_xact_function_calls", "pg_stat_get_xact_function_self_time",
    "pg_stat_get_xact_function_total_time", "pg_stat_get_xact_numscans", "pg_stat_get_xact_tuples_deleted",
    "pg_stat_get_xact_tuples_fetched", "pg_stat_get_xact_tuples_hot_updated",
    "pg_stat_get_xact_tuples_inserted", "pg_stat_get_xact_tuples_returned", "pg_stat_get_xact_tuples_updated",
    "pg_collation_actual_version", "pg_database_collation_actual_version",
    # The session's own sequence values (ORMs read them; nextval stays refused).
    "currval", "lastval",
    # Large-object readers (docs 35.4); lo_open only with a constant mode without INV_WRITE,
    # checked by the classifier.
    "lo_get", "lo_open", "loread", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64", "lo_close",
}

UNREACHABLE_RESULTS = {"trigger", "event_trigger", "fdw_handler", "index_am_handler", "tsm_handler",
                       "table_am_handler", "language_handler"}

QUERY = r"""
SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.provolatile, p.proparallel,
       p.prokind, p.prosecdef, p.prorettype::regtype::text,
       2281 = ANY (p.proargtypes::oid[]) OR 2281 = ANY (coalesce(p.proallargtypes, '{}'::oid[])),
       replace(replace(coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), ''), E'\t', ' '), E'\n', ' ')
  FROM pg_catalog.pg_proc p
 WHERE p.oid < 16384
 ORDER BY p.proname, 2
"""


def decide(name, args, volatility, kind, secdef, result, internal_arg):
    for category, names in DENY.items():
        if name in names:
            return "refuse", category
    if args.startswith("cstring, oid"):
        return "refuse", "input-by-type-oid"
    if internal_arg or result in UNREACHABLE_RESULTS:
        return "unreachable", "internal-or-handler"
    if kind == "p":
        return "refuse", "procedure"
    if secdef == "t":
        return "refuse", "security-definer"
    if volatility == "v":
        return ("allow", "volatile-reviewed") if name in REVIEWED_VOLATILE else ("refuse", "volatile")
    return "allow", {"i": "immutable", "s": "stable"}[volatility]


def main():
    conninfo = sys.argv[1]
    out = subprocess.run(["psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                          "-c", QUERY], check=True, capture_output=True, text=True).stdout
    version = subprocess.run(["psql", "-X", "-A", "-t", "-d", conninfo, "-c", "SHOW server_version"],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = []
    for row in out.splitlines():
        name, args, volatility, parallel, kind, secdef, result, internal_arg, description = row.split("\t")
        decision, category = decide(name, args, volatility, kind, secdef, result, internal_arg == "t")
        lines.append("\t".join([name, args, volatility, parallel, kind, decision, category, description]))
    for text in lines:
        assert '"""' not in text and "\\" not in text.replace("\\\\", ""), text
    body = "\n".join(lines)
    swift = f'''// Generated by scripts/builtin-functions.py from PostgreSQL {version}'s pg_proc (oid < 16384).
// Do not edit by hand: change the rules in the script and run it again.

/// Every built-in function of PostgreSQL 15 with its review for read-only identities:
/// name, identity arguments, provolatile, proparallel, prokind, decision (allow, refuse,
/// unreachable), the rule that decided it, and pg_proc's description. The rules are in
/// scripts/builtin-functions.py.
extension FunctionPolicy {{
    static let builtinReview = #"""
{body}
"""#
}}
'''
    with open("Sources/Policy/FunctionAllowList+Builtins.swift", "w") as f:
        f.write(swift)
    print(f"{len(lines)} functions written", file=sys.stderr)


if __name__ == "__main__":
    main()
