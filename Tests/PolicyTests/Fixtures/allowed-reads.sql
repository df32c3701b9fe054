SELECT 1
-- ----
select * from t where a > 1 order by a limit 10
-- ----
SELECT count(*), max(a), now(), lower('X') FROM t
-- ----
select table_schema, table_name from information_schema.tables where table_schema not in ('pg_catalog', 'information_schema')
-- ----
select column_name, data_type, is_nullable from information_schema.columns where table_name = 't' order by ordinal_position
-- ----
select * from information_schema.table_constraints tc join information_schema.key_column_usage k using (constraint_name)
-- ----
select routine_name from information_schema.routines where routine_schema = 'public'
-- ----
WITH x AS (SELECT a FROM t) SELECT * FROM x
-- ----
with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select sum(n) from r
-- ----
select a, row_number() over (partition by a order by a) from t
-- ----
select * from generate_series(1, 10) g
-- ----
select current_setting('search_path'), current_user, session_user, current_database(), version()
-- ----
select set_config('search_path', 'public', false)
-- ----
SELECT pg_catalog.set_config('statement_timeout', '5s', true)
-- ----
select pg_size_pretty(pg_total_relation_size('t'))
-- ----
select has_table_privilege('t', 'select')
-- ----
select jsonb_build_object('a', 1) -> 'a'
-- ----
select format('%I.%I', 'a', 'b'), quote_ident('x'), string_agg(a::text, ',') from t
-- ----
select * from t where exists (select 1 from t t2 where t2.a = t.a)
-- ----
select 'insert into t values (1); drop table t'
-- ----
select $$ delete from t $$ as text
-- ----
SELECT "a" FROM "t" /* update t set a = 1 */
-- ----
select 1 -- drop table t
-- ----
TABLE t
-- ----
VALUES (1), (2)
-- ----
SHOW search_path
-- ----
show all
-- ----
SET search_path TO public, "$user"
-- ----
set statement_timeout = '30s'
-- ----
SET application_name = 'reporting'
-- ----
set DateStyle to ISO, MDY
-- ----
set local work_mem = '64MB'
-- ----
reset search_path
-- ----
set time zone 'UTC'
-- ----
set transaction isolation level repeatable read
-- ----
SET TRANSACTION READ ONLY
-- ----
set session characteristics as transaction read only
-- ----
BEGIN
-- ----
BEGIN READ ONLY
-- ----
begin transaction isolation level serializable, read only, deferrable
-- ----
START TRANSACTION READ ONLY
-- ----
SAVEPOINT sp1
-- ----
RELEASE SAVEPOINT sp1
-- ----
ROLLBACK TO SAVEPOINT sp1
-- ----
COMMIT
-- ----
ROLLBACK
-- ----
END
-- ----
DECLARE c CURSOR FOR SELECT * FROM t
-- ----
declare c2 scroll cursor with hold for select a from t order by a
-- ----
FETCH 10 FROM c
-- ----
fetch all in c
-- ----
MOVE FORWARD 5 IN c
-- ----
CLOSE c
-- ----
close all
-- ----
EXPLAIN SELECT * FROM t
-- ----
explain (costs off, format json) select * from t where a = 1
-- ----
explain analyze select count(*) from t
-- ----
PREPARE q AS SELECT * FROM t WHERE a = $1
-- ----
EXECUTE q(1)
-- ----
DEALLOCATE q
-- ----
deallocate all
-- ----
COPY t TO STDOUT
-- ----
copy (select a from t where a > 0) to stdout with (format csv, header)
-- ----
LOCK TABLE t IN ACCESS SHARE MODE
-- ----
UNLISTEN *
-- ----
DISCARD PLANS
-- ----
discard temp
-- ----
SET CONSTRAINTS ALL DEFERRED
-- ----
select 'a;b'; select 2
-- ----
select U&"\0061" from t
-- ----
select * from pg_stat_activity where pid <> pg_backend_pid()
-- ----
select * from pg_locks
-- ----
select relname, n_live_tup from pg_stat_user_tables
-- ----
select pg_get_viewdef('v'::regclass, true)
-- ----
select coalesce(nullif(a, 0), 1), greatest(a, 2), case when a > 1 then 'x' else 'y' end from t
-- ----
select array_agg(a order by a) filter (where a > 0) from t
-- ----
select * from t tablesample system (10) repeatable (7)
-- ----
select a from t union all select a from t except select 1
-- ----
select * from t join lateral (select a + 1 as b) l on true
-- ----
set search_path = pg_catalog, public
-- ----
select set_config('search_path', 'pg_catalog, public', false)
-- ----
select 1 OPERATOR(pg_catalog.+) 2
-- ----
SELECT set_config(name, '64MB', false) FROM pg_catalog.pg_settings WHERE name = 'work_mem'
-- ----
SELECT set_config(s.name, '64MB', false) FROM pg_settings AS s WHERE s.name = 'work_mem' AND s.context = 'user'
-- ----
SET client_encoding = 'UTF8'
-- ----
set client_encoding to default
-- ----
reset client_encoding

-- ----
select lo_get(1234)
-- ----
select lo_get(1234, 0, 3)
-- ----
select pg_client_encoding()
-- ----
SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name
-- ----
SELECT column_name, data_type, is_nullable, column_default, character_maximum_length FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 't' ORDER BY ordinal_position
-- ----
SELECT tc.constraint_name, kcu.column_name, ccu.table_name AS foreign_table_name, ccu.column_name AS foreign_column_name FROM information_schema.table_constraints AS tc JOIN information_schema.key_column_usage AS kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema JOIN information_schema.constraint_column_usage AS ccu ON ccu.constraint_name = tc.constraint_name WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = 't'
-- ----
SELECT schema_name FROM information_schema.schemata ORDER BY schema_name
-- ----
SELECT routine_name, routine_type FROM information_schema.routines WHERE routine_schema = 'public' ORDER BY routine_name
-- ----
SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences ORDER BY sequence_name
-- ----
SELECT c.relname, CASE WHEN c.relispartition THEN 'p' WHEN c.relkind IN ('m', 'v') THEN 'v' ELSE 't' END, obj_description(c.oid, 'pg_class') FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v') AND n.nspname NOT IN ('pg_catalog', 'pg_toast') AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1
-- ----
SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.atttypid, a.atttypmod, c.collname, col_description(a.attrelid, a.attnum) AS comment, attidentity AS identity, attgenerated as attgenerated FROM pg_attribute a LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND a.attnum = d.adnum LEFT JOIN pg_type t ON a.atttypid = t.oid LEFT JOIN pg_collation c ON a.attcollation = c.oid AND a.attcollation <> t.typcollation WHERE a.attrelid = '"t"'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
-- ----
SELECT t.oid, t.typname, t.typtype, t.typbasetype, t.typelem, t.typrelid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace WHERE t.oid = ANY('{23,25}'::oid[]) ORDER BY t.oid
-- ----
SELECT i.relname AS index_name, ix.indisunique, ix.indisprimary, pg_get_indexdef(ix.indexrelid), array_to_string(ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k + 1, true) FROM generate_subscripts(ix.indkey, 1) AS k ORDER BY k), ',') FROM pg_class t JOIN pg_index ix ON t.oid = ix.indrelid JOIN pg_class i ON i.oid = ix.indexrelid WHERE t.relname = 't' ORDER BY 1
-- ----
-- Issue 9.4: reads that were refused for no reason.
SET default_transaction_read_only = on
-- ----
SET transaction_read_only = on
-- ----
set default_transaction_read_only to true
-- ----
SET SESSION default_transaction_read_only = 1
-- ----
SET LOCAL transaction_read_only = 'yes'
-- ----
select set_config('default_transaction_read_only', 'on', false)
-- ----
select set_config('transaction_read_only', 'true', true)
-- ----
select set_config('default_transaction_read_only', '1', false)
-- ----
select set_config('default_transaction_read_only', 'YES', false)
-- ----
select getdatabaseencoding()
-- ----
LISTEN chan
-- ----
UNLISTEN chan
-- ----
select loread(lo_open(1234, 262144), 5)
-- ----
select lo_lseek(lo_open(1234, 262144), 3, 0)
-- ----
select lo_lseek64(lo_open(1234, 262144), 3, 0)
-- ----
select lo_tell(lo_open(1234, 262144))
-- ----
select lo_tell64(lo_open(1234, 262144))
-- ----
select lo_close(lo_open(1234, 262144))
-- ----
select pg_catalog.pg_encoding_to_char(pg_catalog.getdatabaseencoding()), pg_catalog.pg_get_keywords() limit 1
-- ----
select pg_catalog.array_to_string(pg_catalog.current_schemas(true), ','), pg_catalog.pg_is_in_recovery()
-- ----
select pg_catalog.to_regclass('t'), pg_catalog.pg_relation_is_updatable('t'::regclass, false), pg_catalog.pg_column_is_updatable('t'::regclass, 1::smallint, false)
-- ----
SELECT CASE WHEN usesuper THEN pg_catalog.pg_is_in_recovery() ELSE NULL END as inrecovery, CASE WHEN usesuper AND pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE NULL END as isreplaypaused FROM pg_catalog.pg_user WHERE usename = current_user
-- ----
SELECT db.oid as did, db.datname, db.datallowconn, pg_catalog.pg_encoding_to_char(db.encoding) AS serverencoding, pg_catalog.has_database_privilege(db.oid, 'CREATE') as cancreate, datistemplate FROM pg_catalog.pg_database db WHERE db.datname = pg_catalog.current_database()
-- ----
SELECT typinput = 'pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns join (select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r)) as r using (nspname)) as sp ON sp.nspoid = typnamespace WHERE pg_type.oid = 23 ORDER BY sp.r, pg_type.oid DESC
-- ----
select currval('s')
-- ----
select pg_catalog.pg_sequence_last_value('s'::regclass), pg_catalog.pg_stat_get_xact_numscans('t'::regclass)
-- ----
SET standard_conforming_strings = on
