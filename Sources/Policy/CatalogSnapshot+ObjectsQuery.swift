/// The catalog query ``CatalogSnapshot/init(rows:objects:)`` takes its ``CatalogSnapshot/ObjectRow``s from.
extension CatalogSnapshot {
    /// Everything outside the built-in catalog that name resolution or a coercion could pick.
    /// "Outside the built-in catalog": an OID at or above FirstNormalObjectId (16384; what
    /// initdb creates lies below, src/include/access/transam.h) or a schema other than
    /// pg_catalog and information_schema — so an extension installed into pg_catalog counts as
    /// user code too. Run with `search_path = ''` (every name in the output is qualified) and
    /// `jit = off`, like ``query``.
    ///
    /// Columns: kind, oid, schema, name, detail, relkind, takes_row (``CatalogSnapshot/ObjectRow``;
    /// takes_row for functions and types, see ``CatalogSnapshot/UserObjects/rowFunctions``).
    /// - `function`: every such pg_proc row (functions, procedures, aggregates, window
    ///   functions — one namespace, src/backend/catalog/namespace.c FuncnameGetCandidates);
    /// - `operator`: every such pg_operator row;
    /// - `type`: types whose use may run code that is not read-safe: an end of a user-defined
    ///   cast WITH FUNCTION (pg_cast.castmethod 'f'; binary-coercible and I/O casts run no
    ///   function of the cast's own), a domain whose constraint calls a function that is not a
    ///   read-safe built-in or uses a user-defined operator (domain constraints run on every
    ///   coercion to the domain, src/backend/executor/execExprInterp.c
    ///   ExecEvalConstraintCheck), a range type whose `subtype_diff` or `canonical` function is
    ///   not built in (the planner calls `subtype_diff` to estimate `&&`, `<@` and the like
    ///   against a range column's statistics, src/backend/utils/adt/rangetypes_selfuncs.c
    ///   get_position; the statement names neither) — and, recursively, the element type of
    ///   such an array type (`ARRAY['x'::t]::text` reaches a cast from `t[]` without naming
    ///   it), and domains over, arrays of, ranges and
    ///   multiranges over, and composite (row) types with a column of, such a type, since
    ///   coercing those coerces their parts (record_in, domain_in, populate_record);
    /// - `relation`: tables, views, materialized views and foreign tables with a column of a
    ///   flagged type: its values reach implicit casts and domain checks without the type
    ///   being named (`lower(col)`, `jsonb_populate_record(t, ...)`, UNION with a literal); with
    ///   an index or partition key whose operator class holds code that is not a read-safe
    ///   built-in (an index scan or partition pruning calls it); and, recursively, the views
    ///   that read such a relation and the parents it is read with (a view that only filters on
    ///   a range column still has the planner call its `subtype_diff`). Range types whose
    ///   subtype operator class holds such code are flagged types themselves. While a user
    ///   cast to json/jsonb holds such code, also user views over system relations with an
    ///   anyarray column;
    /// - `anyarray`: while a user cast to json/jsonb holds such code, the system relations with
    ///   an anyarray column (pg_attribute, pg_statistic, pg_stats, pg_stats_ext_exprs): a
    ///   statement reading one is refused when it also calls a json function
    ///   (``CatalogSnapshot/runtimeJSONRefusal(for:)``);
    /// - `cast`: a cast with such a function between two built-in types (superuser only);
    ///   it may be applied to any expression, so the snapshot refuses every statement. Likewise
    ///   a support function or operator outside the built-in catalog in a btree or hash operator
    ///   family of a built-in type that has a default operator class (superuser only): sorting,
    ///   grouping, DISTINCT, UNION, merge and hash joins and the planner's derived clauses call
    ///   them for any expression of that type (src/backend/utils/cache/typcache.c
    ///   lookup_type_cache; src/backend/optimizer/path/equivclass.c).
    public static let objectsQuery: String = #"""
        WITH RECURSIVE
          safe_function(proname) AS (SELECT unnest(ARRAY[\#(safeFunctionList)]::text[])),
          system_namespace(oid) AS (
            SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema')),
          -- Members of the extensions a [databases] entry trusts (trusted_extensions; the loader
          -- sets portcullis.trusted_extensions to a JSON array), counted only when a superuser
          -- owns the extension: its owner could otherwise ALTER EXTENSION ... ADD its own code.
          trusted_member(classid, objid) AS (
            SELECT d.classid, d.objid
              FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
              JOIN pg_roles r ON r.oid = e.extowner AND r.rolsuper
             WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
               AND e.extname IN (SELECT jsonb_array_elements_text(coalesce(
                     nullif(current_setting('portcullis.trusted_extensions', true), ''), '[]')::jsonb))),
          safe_proc(oid) AS (
            SELECT p.oid FROM pg_proc p
             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.oid < 16384
               AND p.proname IN (SELECT proname FROM safe_function)
            UNION ALL
            SELECT objid FROM trusted_member WHERE classid = 'pg_proc'::regclass
            UNION ALL
            -- The constructors and range-to-multirange cast CREATE TYPE ... AS RANGE makes in
            -- the range's schema (src/backend/commands/typecmds.c makeRangeConstructors,
            -- makeMultirangeConstructors): language internal, which only a superuser can use.
            SELECT p.oid FROM pg_proc p
             WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'internal')
               AND p.prosrc IN ('range_constructor2', 'range_constructor3', 'multirange_constructor0',
                                'multirange_constructor1', 'multirange_constructor2')),
          -- Row types: composite types and domains over them (ISCOMPLEX, parse_type.h).
          row_type(oid) AS (
            SELECT t.oid FROM pg_type t WHERE t.typtype = 'c'
            UNION
            SELECT d.oid FROM pg_type d JOIN row_type r ON r.oid = d.typbasetype WHERE d.typtype = 'd'),
          -- What a whole row (`t.f` is f(t)) coerces to implicitly: a row type (a record to any;
          -- a table's row to its parents'), record and the polymorphic types that take it
          -- (parse_coerce.c can_coerce_type). A user cast from a row type reaches any type.
          row_arg(oid) AS (
            SELECT oid FROM row_type
            UNION ALL
            SELECT unnest(ARRAY['record', '"any"', 'anyelement', 'anynonarray', 'anycompatible',
                                'anycompatiblenonarray']::regtype[])::oid),
          row_cast(present) AS (
            SELECT EXISTS (SELECT 1 FROM pg_cast c
                            WHERE c.oid >= 16384 AND (c.castsource = 'record'::regtype OR c.castsource IN (SELECT oid FROM row_type)))),
          code_cast(oid, castsource, casttarget, reason) AS (
            SELECT c.oid, c.castsource, c.casttarget,
                   format('a user-defined cast from %s to %s calls function %s',
                          format_type(c.castsource, NULL), format_type(c.casttarget, NULL), c.castfunc::regprocedure)
              FROM pg_cast c
             WHERE c.oid >= 16384 AND c.castmethod = 'f' AND c.castfunc NOT IN (SELECT oid FROM safe_proc)
               AND c.oid NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_cast'::regclass)),
          -- What a domain constraint's tree calls or coerces to: a constant's type and the
          -- column types of a function or XMLTABLE in FROM are types a value is built as,
          -- a row comparison's operators come as a list.
          check_ref(typid, conname, field, ref) AS (
            SELECT k.contypid, k.conname, CASE WHEN m[1] = 'consttype' THEN 'resulttype' ELSE m[1] END, m[2]::oid
              FROM pg_constraint k
              CROSS JOIN LATERAL regexp_matches(k.conbin::text, ':(funcid|opno|resulttype|consttype) (\d+)', 'g') m
             WHERE k.contypid <> 0 AND k.conbin IS NOT NULL
            UNION ALL
            SELECT k.contypid, k.conname, CASE WHEN m[1] = 'opnos' THEN 'opno' ELSE 'resulttype' END, o::oid
              FROM pg_constraint k
              CROSS JOIN LATERAL regexp_matches(k.conbin::text, ':(opnos|funccoltypes|coltypes) \(o ([0-9 ]+)\)', 'g') m
              CROSS JOIN LATERAL regexp_split_to_table(m[2], ' ') o
             WHERE k.contypid <> 0 AND k.conbin IS NOT NULL),
          -- Which user type contains which: one scan of each catalog, joined to the worktable
          -- below by hash (a LATERAL per flagged type would rescan pg_attribute each time).
          -- Flagged types are all user types (OID >= 16384), so only edges to those matter.
          contains(outer_type, inner_type, phrase) AS (
            SELECT t.oid, t.typbasetype, 'it is a domain over' FROM pg_type t
             WHERE t.typtype = 'd' AND t.typbasetype >= 16384
            UNION ALL
            SELECT t.typarray, t.oid, 'it is an array of' FROM pg_type t WHERE t.oid >= 16384 AND t.typarray <> 0
            UNION ALL
            SELECT c.reltype, a.atttypid, format('its column %s has type', quote_ident(a.attname))
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE a.atttypid >= 16384 AND a.attnum > 0 AND NOT a.attisdropped AND c.reltype <> 0
            UNION ALL
            SELECT g.rngtypid, g.rngsubtype, 'it is a range over' FROM pg_range g WHERE g.rngsubtype >= 16384
            UNION ALL
            SELECT g.rngmultitypid, g.rngtypid, 'it is the multirange of' FROM pg_range g WHERE g.rngtypid >= 16384
            UNION ALL
            SELECT k.typid, k.ref, format('its constraint %s coerces to', k.conname) FROM check_ref k
             WHERE k.field = 'resulttype' AND k.ref >= 16384 AND k.ref <> k.typid
            UNION ALL
            SELECT t.typelem, t.oid, 'its array type is' FROM pg_type t
             WHERE t.oid >= 16384 AND t.typelem >= 16384 AND t.typsubscript = 'array_subscript_handler'::regproc),
          -- A user type whose input, output, receive, send, typmod or analyze function is written
          -- in a language any role may write in (SQL, PL/pgSQL; not C or internal, which only a
          -- superuser installs, as extensions do): see the last rows below.
          io_code(oid, reason) AS (
            SELECT t.oid, format('its %s function %s is not built in', x.role, p.oid::regprocedure)
              FROM pg_type t
              CROSS JOIN LATERAL (VALUES ('input', t.typinput::oid), ('output', t.typoutput::oid),
                                         ('receive', t.typreceive::oid), ('send', t.typsend::oid),
                                         ('typmod_in', t.typmodin::oid), ('typmod_out', t.typmodout::oid),
                                         ('analyze', t.typanalyze::oid), ('subscript', t.typsubscript::oid)) x(role, proc)
              JOIN pg_proc p ON p.oid = x.proc
             WHERE t.oid >= 16384 AND p.oid NOT IN (SELECT oid FROM safe_proc)
               AND p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('c', 'internal'))),
          -- Operator families holding code that is not a read-safe built-in, of any access
          -- method: one support function or operator is enough (index scans, partition
          -- pruning, sorting and hashing call them).
          code_family(oid, reason) AS (
            SELECT a.amprocfamily, format('operator family %s of access method %s has support function %s',
                                          f.opfname, m.amname, a.amproc::regprocedure)
              FROM pg_amproc a JOIN pg_opfamily f ON f.oid = a.amprocfamily JOIN pg_am m ON m.oid = f.opfmethod
             WHERE a.amproc NOT IN (SELECT oid FROM safe_proc)
               AND (a.amproc >= 16384 OR a.amproc IN (SELECT p.oid FROM pg_proc p
                                                       WHERE p.pronamespace NOT IN (SELECT oid FROM system_namespace)))
               AND a.amproc NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_proc'::regclass)
            UNION ALL
            SELECT o.amopfamily, format('operator family %s of access method %s has operator %s',
                                        f.opfname, m.amname, o.amopopr::regoperator)
              FROM pg_amop o JOIN pg_opfamily f ON f.oid = o.amopfamily JOIN pg_am m ON m.oid = f.opfmethod
              JOIN pg_operator op ON op.oid = o.amopopr
             WHERE (op.oid >= 16384 OR op.oprnamespace NOT IN (SELECT oid FROM system_namespace))
               AND op.oid NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_operator'::regclass)),
          -- Such a family with a default btree or hash operator class for a built-in type:
          -- sorting, grouping, joins and derived clauses may call it for any value of the type.
          family_code(reason) AS (
            SELECT c.reason FROM code_family c JOIN pg_opfamily f ON f.oid = c.oid JOIN pg_am m ON m.oid = f.opfmethod
             WHERE m.amname IN ('btree', 'hash')
               AND EXISTS (SELECT 1 FROM pg_opclass k WHERE k.opcfamily = f.oid AND k.opcdefault AND k.opcintype < 16384)),
          -- Relations whose indexes or partition key use an operator class of such a family:
          -- a read may scan the index or prune partitions with it, naming nothing.
          opclass_relation(oid, reason) AS (
            SELECT i.indrelid, format('its index %s uses operator class %s: %s', ic.relname, k.opcname, c.reason)
              FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              CROSS JOIN LATERAL unnest(i.indclass::oid[]) u(opc)
              JOIN pg_opclass k ON k.oid = u.opc JOIN code_family c ON c.oid = k.opcfamily
            UNION ALL
            SELECT p.partrelid, format('its partition key uses operator class %s: %s', k.opcname, c.reason)
              FROM pg_partitioned_table p CROSS JOIN LATERAL unnest(p.partclass::oid[]) u(opc)
              JOIN pg_opclass k ON k.oid = u.opc JOIN code_family c ON c.oid = k.opcfamily),
          -- What a view's query reads (its rule's `:relid`s), for carrying relation flags.
          view_reads(view, rel) AS (
            SELECT DISTINCT w.ev_class, m[1]::oid
              FROM pg_rewrite w CROSS JOIN LATERAL regexp_matches(w.ev_action::text, ':relid (\d+)', 'g') m
             WHERE w.ev_type = '1' AND w.ev_class >= 16384),
          -- depth bounds the walk: ALTER DOMAIN can make two domains' constraints coerce to
          -- each other, a cycle the ever-longer reasons would never leave.
          flagged(oid, reason, depth) AS (
            SELECT e.oid, c.reason, 0
              FROM code_cast c CROSS JOIN LATERAL unnest(ARRAY[c.castsource, c.casttarget]) e(oid)
             WHERE e.oid >= 16384
            UNION
            SELECT r.typid, format('its constraint %s calls function %s', r.conname, r.ref::regprocedure), 0
              FROM check_ref r
             WHERE r.field = 'funcid' AND r.ref NOT IN (SELECT oid FROM safe_proc)
            UNION
            SELECT r.typid, format('its constraint %s uses operator %s', r.conname, r.ref::regoperator), 0
              FROM check_ref r JOIN pg_operator o ON o.oid = r.ref
             WHERE r.field = 'opno' AND (o.oid >= 16384 OR o.oprnamespace NOT IN (SELECT oid FROM system_namespace))
               AND o.oid NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_operator'::regclass)
            UNION
            SELECT g.rngtypid, format('its %s function %s is not built in', x.role, x.proc::regprocedure), 0
              FROM pg_range g
              CROSS JOIN LATERAL (VALUES ('subtype_diff', g.rngsubdiff::oid), ('canonical', g.rngcanonical::oid)) x(role, proc)
             WHERE x.proc <> 0 AND x.proc NOT IN (SELECT oid FROM safe_proc)
               AND (x.proc >= 16384 OR x.proc IN (SELECT p.oid FROM pg_proc p
                                                   WHERE p.pronamespace NOT IN (SELECT oid FROM system_namespace)))
            UNION
            SELECT g.rngtypid, format('its subtype operator class %s: %s', k.opcname, c.reason), 0
              FROM pg_range g JOIN pg_opclass k ON k.oid = g.rngsubopc JOIN code_family c ON c.oid = k.opcfamily
            UNION
            SELECT e.outer_type, format('%s %s; %s', e.phrase, f.oid::regtype, f.reason), f.depth + 1
              FROM flagged f JOIN contains e ON e.inner_type = f.oid
             WHERE f.depth < 16
          ),
          flagged_type AS (
            SELECT DISTINCT ON (f.oid) f.oid, f.reason FROM flagged f ORDER BY f.oid, length(f.reason), f.reason),
          -- Relations with a column of a flagged type or an index or partition key above, and
          -- what reads them: the views over them and the parents of partitions and children
          -- (read with their parent). Views and inheritance have no cycles; depth bounds it all.
          relation_edge(outer_rel, inner_rel, phrase) AS (
            SELECT v.view, v.rel, 'it reads' FROM view_reads v WHERE v.view <> v.rel
            UNION ALL
            SELECT i.inhparent, i.inhrelid, 'it is read with its partition or child' FROM pg_inherits i),
          -- A user cast to json or jsonb that calls code: array_to_json, to_jsonb, json_agg and
          -- the like look one up for each value's own type at run time (src/backend/utils/adt/
          -- json.c json_categorize_type, jsonb.c jsonb_categorize_type), whatever the statement
          -- names. Values of any type reach them from the anyarray columns of system relations
          -- (pg_statistic, pg_stats, pg_stats_ext_exprs: analysed values; pg_attribute.
          -- attmissingval: a column's default for rows older than the column).
          runtime_json(reason) AS (
            SELECT min(c.reason) FROM code_cast c
             WHERE c.casttarget IN ('json'::regtype, 'jsonb'::regtype) AND c.castsource >= 16384
            HAVING count(*) > 0),
          anyarray_relation(oid, relname, reason) AS (
            SELECT DISTINCT c.oid, c.relname,
                   format('its column %s (anyarray) holds values of any type, and %s', quote_ident(a.attname), r.reason)
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid CROSS JOIN runtime_json r
             WHERE a.atttypid = 'anyarray'::regtype AND a.attnum > 0 AND NOT a.attisdropped
               AND c.relnamespace IN (SELECT oid FROM system_namespace)),
          flagged_relation(oid, reason, depth) AS (
            SELECT c.oid, f.reason, 0 FROM flagged_type f JOIN pg_class c ON c.reltype = f.oid
            UNION
            SELECT r.oid, r.reason, 0 FROM opclass_relation r
            UNION
            -- A user view over a system relation with an anyarray column while a user cast to
            -- json holds code: its query may hand those values to the json functions, and
            -- selecting from it names neither (found in review: array_to_json(most_common_vals)
            -- in a view over pg_stats ran the cast). The relations themselves are judged per
            -- statement (``CatalogSnapshot/runtimeJSONRefusal(for:)``).
            SELECT v.view, format('it reads %s.%s, %s', 'pg_catalog', quote_ident(x.relname), x.reason), 0
              FROM view_reads v JOIN anyarray_relation x ON x.oid = v.rel
            UNION
            SELECT e.outer_rel, format('%s %s; %s', e.phrase, r.oid::regclass, r.reason), r.depth + 1
              FROM flagged_relation r JOIN relation_edge e ON e.inner_rel = r.oid
             WHERE r.depth < 16)
        -- takes_row: callable with one argument (the rest defaulted) that a row coerces to; a
        -- lone VARIADIC parameter takes it as its element.
        SELECT 'function', p.oid, n.nspname, p.proname,
               format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), NULL,
               (p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
                AND (p.proargtypes[0] IN (SELECT oid FROM row_arg)
                     OR (p.pronargs = 1 AND p.provariadic IN (SELECT oid FROM row_arg))))
               OR (SELECT present FROM row_cast)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE (p.oid >= 16384 OR p.pronamespace NOT IN (SELECT oid FROM system_namespace))
           AND p.oid NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_proc'::regclass)
        UNION ALL
        SELECT 'operator', o.oid, n.nspname, o.oprname,
               format('%s.%s(%s, %s)', n.nspname, o.oprname,
                      CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END,
                      format_type(o.oprright, NULL)), NULL, NULL
          FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE (o.oid >= 16384 OR o.oprnamespace NOT IN (SELECT oid FROM system_namespace))
           AND o.oid NOT IN (SELECT objid FROM trusted_member WHERE classid = 'pg_operator'::regclass)
        UNION ALL
        -- takes_row: a domain over a row type, which a row coerces to binary-coercibly.
        SELECT 'type', t.oid, n.nspname, t.typname, f.reason, NULL,
               (t.typtype = 'd' AND t.oid IN (SELECT oid FROM row_type)) OR (SELECT present FROM row_cast)
          FROM flagged_type f JOIN pg_type t ON t.oid = f.oid JOIN pg_namespace n ON n.oid = t.typnamespace
        UNION ALL
        SELECT 'relation', c.oid, n.nspname, c.relname, f.reason, c.relkind::text, NULL
          FROM (SELECT DISTINCT ON (r.oid) r.oid, r.reason FROM flagged_relation r ORDER BY r.oid, length(r.reason), r.reason) f
          JOIN pg_class c ON c.oid = f.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
        UNION ALL
        SELECT 'cast', c.oid, '', '', c.reason, NULL, NULL
          FROM code_cast c WHERE c.castsource < 16384 AND c.casttarget < 16384
        UNION ALL
        SELECT 'cast', 0, '', '', f.reason, NULL, NULL FROM family_code f
        UNION ALL
        SELECT 'anyarray', x.oid, 'pg_catalog', x.relname, x.reason, NULL, NULL FROM anyarray_relation x
        UNION ALL
        -- Such a function runs for values and type names no statement shows: the binary form of
        -- an anyarray column's values (pg_attribute.attmissingval, pg_stats) calls the element
        -- type's send function, and a type name inside any string (to_regtype('bt(3)'),
        -- 'bt(3)'::regtype, has_type_privilege) its typmod_in (found in review: a PL/pgSQL send
        -- ran for binary results and COPY ... (FORMAT binary), a PL/pgSQL typmod_in for
        -- to_regtype). Superuser-made (a base type); every statement is refused, as for a cast
        -- between built-in types.
        SELECT 'cast', 0, '', '', format('type %s: %s', i.oid::regtype, i.reason), NULL, NULL FROM io_code i
        """#
}
