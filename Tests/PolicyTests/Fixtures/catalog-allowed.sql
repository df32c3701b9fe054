select * from plain
-- ----
select * from public.plain join v_plain using (id)
-- ----
select * from v_on_plain
-- ----
select * from public.v_calls_g
-- ----
select * from other.v_calls_f
-- ----
select * from "mixed case"
-- ----
select * from "V_CALLS_F"
-- ----
select * from rls_plain
-- ----
select * from parent2
-- ----
select * from mv_plain
-- ----
select * from v_sys
-- ----
select v_calls_f from plain
-- ----
select 'v_calls_f', 'public.ft'::text
-- ----
select * from pg_catalog.pg_settings
-- ----
LOCK TABLE public.parent IN ACCESS SHARE MODE
-- ----
select pg_catalog.pg_get_viewdef('public.v_calls_f'::regclass)
