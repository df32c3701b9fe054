/// The catalog query ``CatalogSnapshot/init(rows:)`` is built from.
extension CatalogSnapshot {
    /// One query, run in the upstream database as the upstream role or a superuser (it reads
    /// only catalogs every role may read: pg_class, pg_rewrite, pg_policy, pg_proc,
    /// pg_operator, pg_type, pg_constraint, pg_inherits, pg_namespace). Run it with `jit = off`:
    /// the recursive plan's estimates are large enough to trigger JIT compilation, which costs
    /// more than the query.
    ///
    /// Columns: schema, relation, relkind, cause ("function" / "foreign table" / "shadow"), detail,
    /// via schema, via relation, via relkind (NULL when the cause is the relation's own).
    ///
    /// Why node trees and not pg_depend for functions: dependencies on pinned (built-in)
    /// objects are not recorded (src/backend/catalog/dependency.c, isObjectPinned), so a view
    /// calling pg_catalog.nextval() or set_config() leaves no trace there. The stored trees of
    /// view rules (pg_rewrite.ev_action), policies (pg_policy.polqual/polwithcheck) and domain
    /// constraints (pg_constraint.conbin) name every function (`:funcid`, `:aggfnoid`,
    /// `:winfnoid`, `:tsmhandler`), operator (`:opno`, `:eqop`, `:sortop`, `:opnos`), relation
    /// (`:relid`) and coerced-to or constructed type (`:resulttype`, `:consttype`,
    /// `:funccoltypes`, `:coltypes`) they use (src/backend/nodes/outfuncs.c); tables add the
    /// trees the planner folds when it reads them (index expressions and predicates,
    /// extended-statistics expressions, CHECK constraints);
    /// literals are stored as bytes, so no literal can forge such a field. Operators and
    /// relations in pg_catalog and information_schema are trusted built-ins and not followed.
    /// A function counts as safe only when it is in pg_catalog and on the allow-list.
    public static let query: String = #"""
        WITH RECURSIVE
          safe_function(proname) AS (SELECT unnest(ARRAY[\#(safeFunctionList)]::text[])),
          system_namespace(oid) AS (
            SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema')),
          reach(root, kind, oid, via) AS (
            SELECT c.oid, 'relation', c.oid, c.oid
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND c.relnamespace NOT IN (SELECT oid FROM system_namespace) AND n.nspname !~ '^pg_toast'
            UNION
            SELECT r.root, e.kind, e.oid, e.via
              FROM reach r
              CROSS JOIN LATERAL (
                SELECT CASE
                         WHEN ref.field = 'relid' THEN 'relation'
                         WHEN ref.field IN ('opno', 'eqop', 'sortop', 'opnos') THEN 'operator'
                         WHEN ref.field IN ('resulttype', 'consttype', 'funccoltypes', 'coltypes') THEN 'type'
                         ELSE 'function'
                       END AS kind,
                       ref.oid, tree.via
                  FROM (
                        -- a view's or materialized view's SELECT rule
                        SELECT w.ev_action::text AS text, r.oid AS via
                          FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
                         WHERE r.kind = 'relation' AND w.ev_class = r.oid AND w.ev_type = '1'
                           AND c.relnamespace NOT IN (SELECT oid FROM system_namespace)
                        UNION ALL
                        -- row-level security policies of a table that enforces them
                        SELECT concat(p.polqual::text, ' ', p.polwithcheck::text), r.oid
                          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
                         WHERE r.kind = 'relation' AND p.polrelid = r.oid AND c.relrowsecurity
                        UNION ALL
                        -- CHECK constraints of a domain a value is coerced to
                        SELECT k.conbin::text, r.via
                          FROM pg_constraint k
                         WHERE r.kind = 'type' AND k.contypid = r.oid AND k.conbin IS NOT NULL
                        UNION ALL
                        -- What the planner folds when a statement reads the table, running any
                        -- immutable function with constant arguments: index expressions and
                        -- partial-index predicates (src/backend/optimizer/util/plancat.c,
                        -- get_relation_info), extended-statistics expressions
                        -- (get_relation_statistics) and CHECK constraints (constraint
                        -- exclusion, relation_excluded_by_constraints; on by default for
                        -- inheritance children)
                        SELECT concat(x.indexprs::text, ' ', x.indpred::text), r.oid
                          FROM pg_index x
                         WHERE r.kind = 'relation' AND x.indrelid = r.oid
                           AND (x.indexprs IS NOT NULL OR x.indpred IS NOT NULL)
                        UNION ALL
                        SELECT s.stxexprs::text, r.oid
                          FROM pg_statistic_ext s
                         WHERE r.kind = 'relation' AND s.stxrelid = r.oid AND s.stxexprs IS NOT NULL
                        UNION ALL
                        SELECT k.conbin::text, r.oid
                          FROM pg_constraint k
                         WHERE r.kind = 'relation' AND k.conrelid = r.oid AND k.contype = 'c' AND k.conbin IS NOT NULL
                        UNION ALL
                        -- partition key expressions, simplified when the key is built
                        -- (src/backend/utils/cache/partcache.c, RelationBuildPartitionKey)
                        SELECT p.partexprs::text, r.oid
                          FROM pg_partitioned_table p
                         WHERE r.kind = 'relation' AND p.partrelid = r.oid AND p.partexprs IS NOT NULL
                       ) tree
                  CROSS JOIN LATERAL (
                        SELECT m[1] AS field, m[2]::oid AS oid
                          FROM regexp_matches(tree.text,
                                 ':(relid|funcid|aggfnoid|winfnoid|tsmhandler|opno|eqop|sortop|resulttype|consttype) (\d+)', 'g') m
                        UNION ALL
                        -- lists: a row comparison's operators; the column types of a function
                        -- or XMLTABLE in FROM (values are built as those types)
                        SELECT m[1], o::oid
                          FROM regexp_matches(tree.text, ':(opnos|funccoltypes|coltypes) \(o ([0-9 ]+)\)', 'g') m,
                               regexp_split_to_table(m[2], ' ') o
                       ) ref
                UNION ALL
                -- inheritance children and partitions, read with their parent
                SELECT 'relation', i.inhrelid, r.oid
                  FROM pg_inherits i
                 WHERE r.kind = 'relation' AND i.inhparent = r.oid
                UNION ALL
                -- the function behind an operator outside pg_catalog
                SELECT 'function', o.oprcode::oid, r.via
                  FROM pg_operator o
                 WHERE r.kind = 'operator' AND o.oid = r.oid AND o.oprnamespace NOT IN (SELECT oid FROM system_namespace)
                UNION ALL
                -- a domain's base type (a domain over a domain)
                SELECT 'type', t.typbasetype, r.via
                  FROM pg_type t
                 WHERE r.kind = 'type' AND t.oid = r.oid AND t.typtype = 'd'
                UNION ALL
                -- a user composite type's columns and a user array type's elements: building
                -- the value coerces them (record_in, jsonb_populate_record)
                SELECT 'type', a.atttypid, r.via
                  FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
                 WHERE r.kind = 'type' AND t.oid = r.oid AND t.oid >= 16384 AND t.typrelid <> 0
                   AND a.attnum > 0 AND NOT a.attisdropped
                UNION ALL
                SELECT 'type', t.typelem, r.via
                  FROM pg_type t
                 WHERE r.kind = 'type' AND t.oid = r.oid AND t.oid >= 16384 AND t.typelem <> 0
              ) e
          ),
          culprit(root, via, cause, detail, rank) AS (
            SELECT r.root, r.via, 'function',
                   format('%s.%s(%s)', pn.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), 1
              FROM reach r JOIN pg_proc p ON p.oid = r.oid JOIN pg_namespace pn ON pn.oid = p.pronamespace
             WHERE r.kind = 'function'
               AND NOT (pn.nspname = 'pg_catalog' AND p.proname IN (SELECT proname FROM safe_function))
            UNION ALL
            SELECT r.root, r.via, 'foreign table', format('%s.%s', fn.nspname, f.relname), 2
              FROM reach r JOIN pg_class f ON f.oid = r.oid JOIN pg_namespace fn ON fn.oid = f.relnamespace
             WHERE r.kind = 'relation' AND f.relkind = 'f'
               -- Opt-in per foreign server ([databases] readable_foreign_servers): the loader
               -- sets this session setting to a JSON array of server names.
               AND NOT EXISTS (
                 SELECT 1 FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
                  WHERE ft.ftrelid = f.oid
                    AND s.srvname IN (SELECT jsonb_array_elements_text(coalesce(
                          nullif(current_setting('portcullis.readable_foreign_servers', true), ''), '[]')::jsonb)))
            UNION ALL
            -- Named like a relation of pg_catalog: the gate reads an unqualified name such as
            -- pg_settings (pg_dump's set_config(name, ...) FROM pg_settings) as the catalog's,
            -- which it is not once a role or database default search_path puts pg_catalog
            -- after this relation's schema.
            SELECT r.root, r.root, 'shadow', format('pg_catalog.%I', c.relname), 3
              FROM reach r JOIN pg_class c ON c.oid = r.root
             WHERE r.kind = 'relation' AND r.oid = r.root
               AND EXISTS (SELECT 1 FROM pg_class s
                            WHERE s.relname = c.relname AND s.relnamespace = 'pg_catalog'::regnamespace)
          )
        SELECT DISTINCT ON (c.oid)
               n.nspname, c.relname, c.relkind::text, k.cause, k.detail,
               CASE WHEN k.via <> c.oid THEN vn.nspname END, CASE WHEN k.via <> c.oid THEN v.relname END,
               CASE WHEN k.via <> c.oid THEN v.relkind::text END
          FROM culprit k
          JOIN pg_class c ON c.oid = k.root JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_class v ON v.oid = k.via JOIN pg_namespace vn ON vn.oid = v.relnamespace
         ORDER BY c.oid, k.via = c.oid DESC, k.rank, k.detail
        """#

    /// ``FunctionPolicy/readSafeFunctions`` as SQL string literals, minus the functions the
    /// classifier only allows with constant arguments it can check (set_config) or refuses.
    static var safeFunctionList: String {
        FunctionPolicy.readSafeFunctions
            .subtracting(["set_config"]).subtracting(FunctionPolicy.postgresReadOnlyRefused)
            .sorted()
            .map { "'" + String($0.flatMap { $0 == "'" ? ["'", "'"] : [$0] }) + "'" }
            .joined(separator: ", ")
    }
}
