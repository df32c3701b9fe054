/// Deny-by-default function policy for read-only identities.
///
/// Every function call in a statement (target list, WHERE, FROM, DEFAULT, anywhere) must
/// name a function on ``readSafeFunctions`` — built-ins of PostgreSQL 15 (Functions and
/// Operators, docs chapter 9) that neither write data, change session/server state that
/// matters to the policy, nor reach outside the database. Anything else, including every
/// user-defined function (which might write), is refused. Schema-qualified calls are
/// allowed only for `pg_catalog`.
///
/// Special cases decided in ``StatementClassifier``:
/// - `set_config(name, value, is_local)`: allowed only when `name` is a string constant
///   that ``SettingPolicy`` allows (so the first argument is part of the decision).
/// - `nextval`, `setval`: refused with PostgreSQL's own text "cannot execute nextval() in a
///   read-only transaction".
enum FunctionPolicy {
    /// Functions PostgreSQL itself refuses in a read-only transaction with
    /// "cannot execute %s() in a read-only transaction" (src/backend/commands/sequence.c).
    static let postgresReadOnlyRefused: Set<String> = ["nextval", "setval"]

    /// Lower-case function names allowed for read-only identities. Data, not code:
    /// review additions against "does it write, signal, or leave the database?".
    static let readSafeFunctions: Set<String> = [
        // Aggregates (9.21) and window functions (9.22)
        "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
        "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
        "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
        "covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope",
        "regr_sxx", "regr_sxy", "regr_syy", "mode", "percentile_cont", "percentile_disc", "rank",
        "dense_rank", "percent_rank", "cume_dist", "row_number", "ntile", "lag", "lead", "first_value",
        "last_value", "nth_value", "range_agg", "range_intersect_agg", "xmlagg", "grouping",
        // Strings (9.4), pattern matching (9.7), formatting (9.8)
        "lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length",
        "bit_length", "substr", "substring", "position", "strpos", "trim", "btrim", "ltrim", "rtrim",
        "lpad", "rpad", "replace", "reverse", "left", "right", "repeat", "split_part", "concat",
        "concat_ws", "format", "quote_ident", "quote_literal", "quote_nullable", "translate", "ascii",
        "chr", "md5", "sha224", "sha256", "sha384", "sha512", "encode", "decode", "to_hex", "starts_with",
        "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array",
        "regexp_split_to_table", "regexp_count", "regexp_instr", "regexp_like", "regexp_substr",
        "string_to_array", "string_to_table", "array_to_string", "to_char", "to_number", "to_date",
        "to_timestamp", "overlay", "normalize", "unistr", "convert_from", "convert_to", "get_byte",
        "set_byte", "get_bit", "set_bit", "pg_encoding_to_char", "pg_client_encoding", "pg_char_to_encoding", "textlen",
        // Large-object readers (docs 35.4 Server-Side Functions); the writers are refused.
        "lo_get",
        "texticregexeq", "textregexeq", "like", "ilike", "similar_to_escape", "crc32", "crc32c",
        // Math (9.3)
        "abs", "ceil", "ceiling", "floor", "round", "trunc", "mod", "power", "pow", "sqrt", "cbrt",
        "exp", "ln", "log", "log10", "sign", "pi", "degrees", "radians", "div", "gcd", "lcm", "factorial",
        "random", "setseed", "width_bucket", "greatest", "least", "sin", "cos", "tan", "asin", "acos",
        "atan", "atan2", "numeric", "scale", "min_scale", "trim_scale",
        // Date/time (9.9)
        "now", "current_timestamp", "transaction_timestamp", "statement_timestamp", "clock_timestamp",
        "timeofday", "date_part", "date_trunc", "date_bin", "extract", "age", "make_date", "make_time",
        "make_timestamp", "make_timestamptz", "make_interval", "justify_days", "justify_hours",
        "justify_interval", "isfinite", "timezone", "to_timestamp", "pg_sleep", "pg_sleep_for",
        "pg_sleep_until", "overlaps",
        // Conditional, arrays, ranges, JSON (9.18, 9.19, 9.20, 9.16)
        "coalesce", "nullif", "array_length", "array_lower", "array_upper", "array_ndims", "array_dims",
        "array_position", "array_positions", "array_append", "array_prepend", "array_cat", "array_remove",
        "array_replace", "cardinality", "unnest", "generate_series", "generate_subscripts",
        "array_fill", "trim_array", "lower_inc", "upper_inc", "lower_inf", "upper_inf", "isempty",
        "range_merge", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
        "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_build_object", "jsonb_build_object",
        "json_build_array", "jsonb_build_array", "json_object", "jsonb_object", "json_array_length",
        "jsonb_array_length", "json_each", "jsonb_each", "json_each_text", "jsonb_each_text",
        "json_extract_path", "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
        "json_object_keys", "jsonb_object_keys", "json_populate_record", "jsonb_populate_record",
        "json_populate_recordset", "jsonb_populate_recordset", "json_to_record", "jsonb_to_record",
        "json_to_recordset", "jsonb_to_recordset", "json_array_elements", "jsonb_array_elements",
        "json_array_elements_text", "jsonb_array_elements_text", "json_typeof", "jsonb_typeof",
        "json_strip_nulls", "jsonb_strip_nulls", "jsonb_set", "jsonb_set_lax", "jsonb_insert",
        "jsonb_pretty", "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query",
        "jsonb_path_query_array", "jsonb_path_query_first",
        // Session information (9.26.1) and settings read (9.27.1)
        "current_database", "current_catalog", "current_schema", "current_schemas", "current_user",
        "current_role", "session_user", "user", "inet_client_addr", "inet_client_port",
        "inet_server_addr", "inet_server_port", "pg_backend_pid", "pg_blocking_pids",
        "pg_conf_load_time", "pg_current_logfile", "pg_my_temp_schema", "pg_is_other_temp_schema",
        "pg_jit_available", "pg_listening_channels", "pg_notification_queue_usage",
        "pg_postmaster_start_time", "pg_safe_snapshot_blocking_pids", "pg_trigger_depth", "version",
        "current_setting", "set_config", "current_query",
        // Privilege inquiry (9.26.2), schema visibility, catalog information (9.26.4)
        "has_any_column_privilege", "has_column_privilege", "has_database_privilege",
        "has_foreign_data_wrapper_privilege", "has_function_privilege", "has_language_privilege",
        "has_parameter_privilege", "has_schema_privilege", "has_sequence_privilege",
        "has_server_privilege", "has_table_privilege", "has_tablespace_privilege", "has_type_privilege",
        "pg_has_role", "row_security_active", "acldefault", "aclexplode", "makeaclitem",
        "pg_collation_is_visible", "pg_conversion_is_visible", "pg_function_is_visible",
        "pg_opclass_is_visible", "pg_operator_is_visible", "pg_opfamily_is_visible",
        "pg_statistics_obj_is_visible", "pg_table_is_visible", "pg_ts_config_is_visible",
        "pg_ts_dict_is_visible", "pg_ts_parser_is_visible", "pg_ts_template_is_visible",
        "pg_type_is_visible", "format_type", "pg_get_catalog_foreign_keys", "pg_get_constraintdef",
        "pg_get_expr", "pg_get_functiondef", "pg_get_function_arguments",
        "pg_get_function_identity_arguments", "pg_get_function_result", "pg_get_indexdef",
        "pg_get_keywords", "pg_get_ruledef", "pg_get_serial_sequence", "pg_get_statisticsobjdef",
        "pg_get_statisticsobjdef_columns", "pg_get_statisticsobjdef_expressions", "pg_get_triggerdef",
        "pg_get_userbyid", "pg_get_viewdef", "pg_index_column_has_property", "pg_index_has_property",
        "pg_indexam_has_property", "pg_options_to_table", "pg_tablespace_databases",
        "pg_tablespace_location", "pg_typeof", "to_regclass", "to_regcollation",
        "to_regnamespace", "to_regoper", "to_regoperator", "to_regproc", "to_regprocedure",
        "to_regrole", "to_regtype", "obj_description", "col_description", "shobj_description",
        "pg_describe_object", "pg_identify_object", "pg_identify_object_as_address",
        "pg_get_object_address", "pg_get_partkeydef", "pg_get_partition_constraintdef",
        "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "pg_get_publication_tables",
        "pg_relation_is_publishable", "pg_get_replica_identity_index", "pg_column_compression",
        "pg_settings_get_flags", "pg_get_wal_replay_pause_state", "pg_is_in_recovery",
        "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
        "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
        "txid_current_if_assigned", "txid_current_snapshot", "txid_snapshot_xmin", "txid_snapshot_xmax",
        "txid_visible_in_snapshot", "txid_status", "pg_current_snapshot", "pg_snapshot_xmin",
        "pg_snapshot_xmax", "pg_snapshot_xip", "pg_visible_in_snapshot", "pg_xact_status",
        "pg_current_xact_id_if_assigned", "pg_xact_commit_timestamp", "pg_last_committed_xact",
        "pg_control_checkpoint", "pg_control_system", "pg_control_init", "pg_control_recovery",
        "pg_get_function_arg_default", "pg_get_function_sqlbody",
        // Object sizes (9.27.7)
        "pg_column_size", "pg_database_size", "pg_indexes_size", "pg_relation_size",
        "pg_size_bytes", "pg_size_pretty", "pg_table_size", "pg_tablespace_size", "pg_total_relation_size",
        "pg_relation_filenode", "pg_relation_filepath", "pg_filenode_relation",
        // Statistics views' functions
        "pg_stat_get_activity", "pg_stat_get_backend_idset", "pg_stat_get_numscans",
        "pg_stat_get_tuples_returned", "pg_stat_get_live_tuples", "pg_stat_get_dead_tuples",
        "pg_stat_get_last_vacuum_time", "pg_stat_get_last_analyze_time", "pg_stat_get_db_numbackends",
        "pg_backend_memory_contexts", "pg_get_backend_memory_contexts", "pg_lock_status",
        "pg_show_all_settings", "pg_stat_get_progress_info",
        // Snapshot synchronization (9.27.5): pg_dump -j exports its snapshot for its workers'
        // SET TRANSACTION SNAPSHOT; allowed in read-only transactions, the file lives only as
        // long as the exporting transaction.
        "pg_export_snapshot",
        // Advisory locks (9.27.10): session-scoped, no data written.
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
        "pg_advisory_unlock_all", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
        // Text search, network, geometry, UUID, XML readers
        "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
        "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
        "ts_debug", "ts_lexize", "ts_parse", "ts_token_type", "array_to_tsvector", "tsvector_to_array",
        "host", "hostmask", "masklen", "netmask", "network", "set_masklen", "broadcast", "family",
        "abbrev", "inet_same_family", "inet_merge", "gen_random_uuid", "area", "center", "diameter",
        "height", "width", "radius", "npoints", "point", "box", "circle", "line", "lseg", "path",
        "polygon", "xmlconcat", "xmlparse", "xmlserialize", "xmlroot",
        "xpath", "xpath_exists", "xml_is_well_formed",
        // Type-name-as-function casts
        "int2", "int4", "int8", "float4", "float8", "text", "bool", "date", "time", "timestamp",
        "timestamptz", "interval", "varchar", "bpchar", "char", "name", "oid", "regclass", "regtype",
        "regproc", "regprocedure", "regnamespace", "regrole", "inet", "cidr", "uuid", "bytea", "json",
        "jsonb", "row", "array_in", "array_out", "textin", "textout",
    ]
}
