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
select pg_advisory_lock(42)
-- ----
select pg_try_advisory_xact_lock(1, 2)
-- ----
select pg_advisory_unlock_all()
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
EXPLAIN INSERT INTO t VALUES (1)
-- ----
explain (analyze false) delete from t
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
select pg_sleep(0)
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
SET NAMES 'LATIN1'
-- ----
set client_encoding to 'EUC_JP'
-- ----
set client_encoding = 'euc-kr'
-- ----
set client_encoding to default
-- ----
reset client_encoding
-- ----
select set_config('client_encoding', 'WIN1252', false)

-- ----
select lo_get(1234)
-- ----
select lo_get(1234, 0, 3)
-- ----
select pg_client_encoding()
