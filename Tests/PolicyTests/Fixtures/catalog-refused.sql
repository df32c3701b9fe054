select * from v_calls_f
-- ----
SELECT id FROM public.v_on_v
-- ----
select * from "Mixed Case"
-- ----
select * from other.v_calls_g
-- ----
select * from v_calls_g
-- ----
select count(*) from (select * from ft) q
-- ----
with x as (select * from rls_t) select * from x
-- ----
select * from plain where id in (select id from v_on_rls)
-- ----
select * from plain p where exists (select 1 from public.v_sub s where s.n = p.id)
-- ----
copy (select * from v_calls_f) to stdout
-- ----
COPY public.rls_t (id, owner) TO stdout;
-- ----
explain select * from v_calls_f
-- ----
explain analyze select * from v_on_ft
-- ----
declare c cursor for select * from v_on_ft
-- ----
select * from parent
-- ----
select * from only child2
-- ----
prepare p as select * from mv_calls_f where 1 = $1
-- ----
table v_op
-- ----
select x from v_dom
-- ----
select * from v_setcfg
-- ----
select * from v_nextval
-- ----
select * from plain; select * from v_on_rls
-- ----
select * from public.child2
-- ----
select 1 from plain, lateral (select * from v_calls_f) q
-- ----
select * from plain union all select id, a from v_calls_f
