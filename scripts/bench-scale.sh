#!/usr/bin/env bash
# The scale benchmark (called by scripts/bench.sh, or alone): PgBouncer and Portcullis both in
# transaction pooling on at most 20 server connections, against one cluster, TLS on both legs
# (clients verify-full, poolers verify-full upstream):
#   1. pgbench -S with many clients (default 64, 256, 1000; -j 2): TPS and the pooler's CPU per
#      transaction, medians of alternating runs, and the most server connections seen;
#   2. N idle TLS clients (default 10,000) held by each pooler (fresh processes), logged in with
#      SCRAM-SHA-256 by scripts/idle-clients.py: RSS per idle client, server connections while
#      they are held, and a SELECT 1 on every one of them afterwards;
#   3. a soak: pgbench -S, 16 clients, through Portcullis for BENCH_SOAK_MINUTES with the proxy's
#      RSS and open descriptors sampled every minute.
# Prints a Markdown section on stdout; progress goes to stderr.
#
# Environment: PORTCULLIS_BIN (default: the release build); BENCH_QUICK=1 (quick mode: 5 s runs,
# 1,000 idle clients, a 2-minute soak; each figure below still overrides it);
# BENCH_SCALE_SECONDS (10) per pgbench run, BENCH_SCALE_ROUNDS (3), BENCH_SCALE_CLIENTS
# ("64 256 1000"), BENCH_SCALE (10, pgbench scale factor), BENCH_SCALE_WORKERS (2, Portcullis
# event loops; pool_max_size = 20 / workers, since pools are per loop), BENCH_SCALE_IDLE
# (10000), BENCH_SOAK=0 skips the soak, BENCH_SOAK_MINUTES (30), BENCH_SOAK_CLIENTS (16).
set -euo pipefail
# A failed step says which (make bench only reports that the scale benchmark failed).
trap 'echo "bench-scale: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
quick="${BENCH_QUICK:-0}"
if [ "$quick" != 0 ]; then q_seconds=5; q_idle=1000; q_soak=2; else q_seconds=10; q_idle=10000; q_soak=30; fi
seconds="${BENCH_SCALE_SECONDS:-$q_seconds}"
rounds="${BENCH_SCALE_ROUNDS:-3}"
clients_list="${BENCH_SCALE_CLIENTS:-64 256 1000}"
scale="${BENCH_SCALE:-10}"
workers="${BENCH_SCALE_WORKERS:-2}"
server_total=20
pool_per_loop=$((server_total / workers))
idle_n="${BENCH_SCALE_IDLE:-$q_idle}"
soak="${BENCH_SOAK:-1}"
soak_minutes="${BENCH_SOAK_MINUTES:-$q_soak}"
soak_clients="${BENCH_SOAK_CLIENTS:-16}"
max_pgbench=0; for c in $clients_list; do [ "$c" -gt "$max_pgbench" ] && max_pgbench=$c; done
max_clients=$(( (idle_n > max_pgbench ? idle_n : max_pgbench) + 100 ))
log() { echo "bench-scale: $*" >&2; }

echo "## Scale: transaction pooling on $server_total server connections"
echo
if [ ! -x "$bin" ]; then echo "Not measured: no Portcullis binary at \`${bin#"$repo"/}\`."; exit 0; fi
if [ "$pool_per_loop" -lt 1 ]; then echo "Not measured: BENCH_SCALE_WORKERS=$workers leaves no room in $server_total server connections."; exit 0; fi

# Every client and server connection is a descriptor: the poolers (which inherit this limit;
# PgBouncer through the shell below) need one per client plus their server connections, the
# idle-client process one per client.
hard="$(ulimit -Hn)"; [ "$hard" = unlimited ] && hard=1048576
want=$((max_clients + 200)); [ "$want" -lt 65536 ] && want=65536; [ "$want" -gt "$hard" ] && want=$hard
ulimit -n "$want"
fd_limit="$(ulimit -n)"
if [ "$fd_limit" -lt $((max_clients + 100)) ]; then
  log "open-file limit $fd_limit is below $((max_clients + 100)); figures above it will fail"
fi

tmp="$(mktemp -d /tmp/portcullis-bench-scale.XXXXXX)"
chmod 0755 "$tmp"
pgdir="$tmp/pg"
pg_port="$(free_port)"
bdir="$tmp/pgbouncer"
proxy_pid=""; bouncer_pid=""; idle_pid=""; bench_pid=""
stop_bouncer() {
  [ -n "$bouncer_pid" ] || return 0
  kill -TERM "$bouncer_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$bouncer_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$bouncer_pid" 2>/dev/null || true
  bouncer_pid=""
}
stop_proxy() {
  [ -n "$proxy_pid" ] || return 0
  kill -TERM "$proxy_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=""
}
cleanup() {
  set +e
  [ -n "$idle_pid" ] && kill -KILL "$idle_pid" 2>/dev/null
  [ -n "$bench_pid" ] && kill -TERM "$bench_pid" 2>/dev/null
  # The server-connection sampler of a run cut short would otherwise outlive the script.
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null
  stop_bouncer; stop_proxy
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >/dev/null
export PGUSER=app_rw PGPASSWORD=app_rw_pw PGDATABASE=app PGHOST=localhost
export PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt"
pgbench -q -i -s "$scale" -p "$pg_port" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; exit 1; }

install -d -o postgres -g postgres -m 0700 "$bdir"
install -o postgres -g postgres -m 0600 "$certdir/server.crt" "$certdir/server.key" "$certdir/ca.crt" "$bdir/"
printf '"app_rw" "app_rw_pw"\n' >"$bdir/userlist.txt"
chown postgres:postgres "$bdir/userlist.txt"; chmod 0600 "$bdir/userlist.txt"
bouncer_port="$(free_port)"
proxy_port="$(free_port)"

# PgBouncer refuses to run as root: it runs as postgres (runuser starts it with the default
# soft limit, so the shell raises it first), in transaction mode with a pool of 20.
start_bouncer() {
  cat >"$bdir/pgbouncer.ini" <<INI
[databases]
app = host=localhost port=$pg_port dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
listen_backlog = 1024
unix_socket_dir = $bdir
pidfile = $bdir/pgbouncer.pid
logfile = $bdir/pgbouncer.log
log_connections = 0
log_disconnections = 0
auth_type = scram-sha-256
auth_file = $bdir/userlist.txt
pool_mode = transaction
default_pool_size = $server_total
max_client_conn = $max_clients
client_tls_sslmode = require
client_tls_cert_file = $bdir/server.crt
client_tls_key_file = $bdir/server.key
client_tls_ca_file = $bdir/ca.crt
server_tls_sslmode = verify-full
server_tls_ca_file = $bdir/ca.crt
INI
  chown postgres:postgres "$bdir/pgbouncer.ini"
  rm -f "$bdir/pgbouncer.pid"
  runuser -u postgres -- bash -c "ulimit -n $fd_limit && exec pgbouncer -d '$bdir/pgbouncer.ini'"
  wait_ready "$bouncer_port" 20 || { tail -n 5 "$bdir/pgbouncer.log" >&2; log "pgbouncer did not start"; return 1; }
  bouncer_pid="$(cat "$bdir/pgbouncer.pid")"
}
# Portcullis: transaction mode, workers × pool_max_size = 20 server connections at most.
start_proxy() {
  PORTCULLIS_EXTRA="workers = $workers
pool_mode = transaction
pool_max_size = $pool_per_loop
max_client_connections = $max_clients" \
    "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir" >/dev/null
  "$bin" run --config "$tmp/portcullis.ini" 2>>"$tmp/portcullis.stderr" >/dev/null &
  proxy_pid=$!
  wait_ready "$proxy_port" 20 && kill -0 "$proxy_pid" 2>/dev/null ||
    { tail -n 5 "$tmp/portcullis.stderr" >&2; log "portcullis did not start"; return 1; }
}
pooler_pid() { case $1 in pgbouncer) echo "$bouncer_pid" ;; portcullis) echo "$proxy_pid" ;; esac; }
pooler_port() { case $1 in pgbouncer) echo "$bouncer_port" ;; portcullis) echo "$proxy_port" ;; esac; }
clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
server_conns() {
  psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres \
    -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_rw' AND backend_type = 'client backend'"
}
# Server connections of one pooler process: the app_rw client backends whose client port is
# one of that process's TCP connections to the cluster (both poolers run during the pgbench
# runs and keep their idle server connections, so pg_stat_activity alone mixes them; and
# Portcullis's own catalog reads, as app_ro, are not pool connections).
pooler_conns() {
  local ports
  ports="$(ss -Htnp state established "( dport = :$pg_port )" 2>/dev/null |
    awk -v p="pid=$1," 'index($0, p) { n = split($3, a, ":"); printf "%s%s", sep, a[n]; sep = "," }')"
  if [ -z "$ports" ]; then echo 0; return; fi
  local where="usename = 'app_rw' AND backend_type = 'client backend' AND client_port IN ($ports)" n
  n="$(psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE $where")"
  echo "$n"
  if [ "${n:-0}" -gt "$server_total" ]; then # over the limit: say which, for the record
    psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres -c "SELECT now(), pid, application_name, state,
      backend_start, client_port FROM pg_stat_activity WHERE $where ORDER BY backend_start DESC LIMIT 3" >>"$tmp/over-limit.log"
  fi
}
median() { printf '%s\n' "$@" | { grep -E '^[0-9.]+$' || true; } | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.1f", (a[NR/2] + a[NR/2+1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | { grep -E '^[0-9]+$' || true; } | sort -n | tail -n1; }

start_bouncer
start_proxy

# 1. pgbench -S with many clients, alternating PgBouncer and Portcullis (which goes first
# alternates too), a sampler recording the most server connections seen during each run.
declare -A tps cpu pgcpu peak
errors=()
targets=(pgbouncer portcullis)
for round in $(seq 1 "$rounds"); do
  for c in $clients_list; do
    order=("${targets[@]}"); [ $((round % 2)) = 0 ] && order=(portcullis pgbouncer)
    for t in "${order[@]}"; do
      log "$t, round $round, $c clients, ${seconds}s"
      pid="$(pooler_pid "$t")"
      out="$tmp/pgbench-$t-$c-$round.log"
      (while :; do pooler_conns "$pid"; sleep 1; done) >"$tmp/peak" 2>/dev/null &
      sampler=$!
      before="$(cpu_ticks "$pid")"; pg_before="$(cluster_ticks "$pgdir")"
      if pgbench -n -S -T $((seconds + c / 25)) -c "$c" -j 2 -p "$(pooler_port "$t")" >"$out" 2>&1; then
        after="$(cpu_ticks "$pid")"; pg_after="$(cluster_ticks "$pgdir")"
        txns="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
        tps[$t,$c,$round]="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out" | head -n1 | xargs printf '%.0f')"
        cpu[$t,$c,$round]="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "n/a" }')"
        pgcpu[$t,$c,$round]="$(awk -v t=$((pg_after - pg_before)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "n/a" }')"
      else
        tps[$t,$c,$round]="error"; cpu[$t,$c,$round]="error"; pgcpu[$t,$c,$round]="error"
        errors+=("$t, $c clients, round $round: $(grep -m 2 -E 'error|FATAL' "$out" | tr '\n' ' ')")
      fi
      kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
      peak[$t,$c,$round]="$(maxof $(cat "$tmp/peak"))"
    done
  done
done

echo "### Many clients on a pool of $server_total"
echo
echo "\`pgbench -n -S -T $seconds+CLIENTS/25 -c CLIENTS -j 2\` (scale $scale; connecting 1,000 TLS clients takes seconds and counts against \`-T\`, not against TPS) through PgBouncer (\`pool_mode = transaction\`,"
echo "\`default_pool_size = $server_total\`) and Portcullis (\`pool_mode = transaction\`, \`workers = $workers\`,"
echo "\`pool_max_size = $pool_per_loop\` per event loop), $rounds rounds alternating the two; medians."
echo "CPU: the pooler process's utime+stime over the run / transactions; PostgreSQL: the cluster's (postmaster, backends,"
echo "exited ones included) the same way. Server connections: the most"
echo "\`app_rw\` backends in \`pg_stat_activity\` connected from the pooler process (\`ss -tnp\`) seen during the runs, sampled every second."
echo
echo "| clients | PgBouncer TPS | Portcullis TPS | Portcullis / PgBouncer | PgBouncer CPU µs/txn | Portcullis CPU µs/txn | PostgreSQL CPU µs/txn (B / P) | server connections (B / P) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $clients_list; do
  declare -A med=()
  for t in "${targets[@]}"; do
    tl=(); cl=(); gl=(); pl=()
    for r in $(seq 1 "$rounds"); do tl+=("${tps[$t,$c,$r]}"); cl+=("${cpu[$t,$c,$r]}"); gl+=("${pgcpu[$t,$c,$r]}"); pl+=("${peak[$t,$c,$r]:-}"); done
    med[$t,tps]="$(median "${tl[@]}")"; med[$t,cpu]="$(median "${cl[@]}")"; med[$t,pg]="$(median "${gl[@]}")"; med[$t,peak]="$(maxof "${pl[@]}")"
  done
  ratio="$(awk -v a="${med[portcullis,tps]}" -v b="${med[pgbouncer,tps]}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')"
  printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$c" "${med[pgbouncer,tps]}" "${med[portcullis,tps]}" "$ratio" \
    "${med[pgbouncer,cpu]}" "${med[portcullis,cpu]}" "${med[pgbouncer,pg]}" "${med[portcullis,pg]}" "${med[pgbouncer,peak]:-?}" "${med[portcullis,peak]:-?}"
done
echo
echo "TPS per round:"
for c in $clients_list; do
  for t in "${targets[@]}"; do
    list=""; for r in $(seq 1 "$rounds"); do list="$list${list:+ · }${tps[$t,$c,$r]}"; done
    echo "- $c clients, $t: $list"
  done
done
for e in "${errors[@]}"; do echo "- error: $e"; done
if [ -s "$tmp/over-limit.log" ]; then
  echo "- samples over $server_total server connections (newest backends): $(tr '\n' ' ' <"$tmp/over-limit.log" | cut -c1-600)"
fi
echo

# 2. Idle clients, each pooler freshly started (so neither reuses memory freed by the runs
# above). The baseline is taken after one SELECT 1 through it (TLS contexts and one server
# connection set up); the delta then includes the other server connections it opens (≤ 19).
# Only the pooler measured runs, so pg_stat_activity counts its server connections alone.
declare -A idle
stop_bouncer; stop_proxy
for t in "${targets[@]}"; do
  for _ in $(seq 1 50); do [ "$(server_conns)" = 0 ] && break; sleep 0.2; done
  case $t in pgbouncer) start_bouncer ;; portcullis) start_proxy ;; esac
  pid="$(pooler_pid "$t")"; port="$(pooler_port "$t")"
  # The warm-up client is one of the same kind: Portcullis keeps a pool per startup parameters
  # (psql would add client_encoding and get a pool of its own).
  python3 "$here/idle-clients.py" --port "$port" --count 1 --ca "$certdir/ca.crt" --status "$tmp/warm" --query-after \
    >/dev/null 2>&1 & warm=$!
  for _ in $(seq 1 100); do grep -q '^ready' "$tmp/warm" 2>/dev/null && break; sleep 0.1; done
  kill -TERM "$warm" 2>/dev/null || true; wait "$warm" 2>/dev/null || true
  sleep 1
  base="$(rss_kib "$pid")"
  log "$t: $idle_n idle clients"
  status="$tmp/idle-$t.status"; rm -f "$status"
  python3 "$here/idle-clients.py" --port "$port" --count "$idle_n" --ca "$certdir/ca.crt" \
    --host localhost --addr 127.0.0.1 --status "$status" --query-after >/dev/null 2>"$tmp/idle-$t.stderr" &
  idle_pid=$!
  deadline=$((SECONDS + 120 + idle_n / 20))
  while [ $SECONDS -lt $deadline ] && kill -0 "$idle_pid" 2>/dev/null && ! grep -q '^ready' "$status" 2>/dev/null; do sleep 1; done
  if ! grep -q '^ready' "$status" 2>/dev/null; then
    idle[$t,note]="the idle clients did not log in in time: $(tail -n 2 "$tmp/idle-$t.stderr" | tr '\n' ' ')"
    kill -KILL "$idle_pid" 2>/dev/null; wait "$idle_pid" 2>/dev/null || true; idle_pid=""
    case $t in pgbouncer) stop_bouncer ;; portcullis) stop_proxy ;; esac
    continue
  fi
  read -r _ ok failed secs <"$status"
  sleep 3
  loaded="$(rss_kib "$pid")"
  idle[$t,ok]=$ok; idle[$t,failed]=$failed; idle[$t,secs]=$secs
  idle[$t,base]=$base; idle[$t,loaded]=$loaded
  idle[$t,per]="$(awk -v a="$base" -v b="$loaded" -v n="$ok" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "n/a" }')"
  idle[$t,servers]="$(server_conns)"
  if [ "${idle[$t,servers]:-0}" -gt "$server_total" ]; then # over the limit: say which, for the record
    idle[$t,over]="$(psql -X -A -t -F ' ' -h "$pgdir" -p "$pg_port" -U postgres -d postgres -c "SELECT application_name,
      client_addr, state, count(*), min(backend_start)::time(0), max(backend_start)::time(0) FROM pg_stat_activity
      WHERE usename = 'app_rw' AND backend_type = 'client backend' GROUP BY 1, 2, 3" | tr '\n' ';')"
  fi
  idle[$t,fds]="$(fd_count "$pid")"
  kill -TERM "$idle_pid"
  deadline=$((SECONDS + 120 + idle_n / 50))
  while [ $SECONDS -lt $deadline ] && kill -0 "$idle_pid" 2>/dev/null && ! grep -q '^queried' "$status" 2>/dev/null; do sleep 1; done
  if grep -q '^queried' "$status" 2>/dev/null; then
    read -r _ qok qfailed qsecs <"$status"
    idle[$t,query]="$qok ok, $qfailed failed, ${qsecs} s"
  else
    idle[$t,query]="no answer in time"
  fi
  wait "$idle_pid" 2>/dev/null || true; idle_pid=""
  [ -s "$tmp/idle-$t.stderr" ] && idle[$t,note]="$(head -n 2 "$tmp/idle-$t.stderr" | tr '\n' ' ')"
  case $t in pgbouncer) stop_bouncer ;; portcullis) stop_proxy ;; esac
done

echo "### Idle TLS clients"
echo
echo "$idle_n clients logged in (TLS with verify-full, SCRAM-SHA-256 as \`app_rw\`, at most 32 logins at once) by"
echo "\`scripts/idle-clients.py\`, then held idle by a freshly started pooler of each kind (same settings as above;"
echo "open-file limit $fd_limit). RSS per idle client = (VmRSS with the clients held − VmRSS after one client's \`SELECT 1\`) / clients;"
echo "it includes the server connections the pooler opened meanwhile (at most $server_total, counted while the clients"
echo "are held). Afterwards every held client runs \`SELECT 1\` (32 at a time) to show it is still served."
echo
echo "| pooler | clients held | login time (s) | RSS before → held (KiB) | RSS per idle client (KiB) | server connections while held | pooler descriptors | SELECT 1 afterwards |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for t in "${targets[@]}"; do
  if [ -n "${idle[$t,ok]:-}" ]; then
    printf '| %s | %s (%s failed) | %s | %s → %s | %s | %s | %s | %s |\n' "$t" "${idle[$t,ok]}" "${idle[$t,failed]}" "${idle[$t,secs]}" \
      "${idle[$t,base]}" "${idle[$t,loaded]}" "${idle[$t,per]}" "${idle[$t,servers]}" "${idle[$t,fds]}" "${idle[$t,query]}"
  else
    printf '| %s | n/a | | | | | | |\n' "$t"
  fi
done
echo
for t in "${targets[@]}"; do
  [ -n "${idle[$t,note]:-}" ] && echo "- $t: ${idle[$t,note]}"
  [ -n "${idle[$t,over]:-}" ] && echo "- $t, server connections by application_name, address, state (count, first and last start): ${idle[$t,over]}"
done
echo

# 3. Soak through Portcullis (fresh process, the configuration above).
echo "### Soak"
echo
if [ "$soak" = 0 ]; then
  echo "Skipped (BENCH_SOAK=0)."
else
  start_proxy
  log "soak: $soak_clients clients for $soak_minutes min"
  declare -a soak_rows=()
  sample() { echo "$1 $(rss_kib "$proxy_pid") $(fd_count "$proxy_pid") $(server_conns)"; }
  soak_rows+=("$(sample 0)")
  pgbench -n -S -T $((soak_minutes * 60 + 5)) -P 60 -c "$soak_clients" -j 2 -p "$proxy_port" >"$tmp/soak.log" 2>&1 &
  bench_pid=$!
  start=$SECONDS
  for m in $(seq 1 "$soak_minutes"); do
    while [ $((SECONDS - start)) -lt $((m * 60 - 2)) ] && kill -0 "$bench_pid" 2>/dev/null; do sleep 1; done
    kill -0 "$proxy_pid" 2>/dev/null || break
    soak_rows+=("$(sample "$m")")
  done
  soak_ok=1; wait "$bench_pid" || soak_ok=0; bench_pid=""
  sleep 2
  after_rows="$(sample end)"
  echo "\`pgbench -n -S -T $((soak_minutes * 60 + 5)) -P 60 -c $soak_clients -j 2\` through Portcullis (transaction mode as above,"
  echo "freshly started); the proxy's VmRSS and open descriptors (\`ls /proc/PID/fd | wc -l\`) sampled every minute;"
  echo "TPS: pgbench's progress report for the minute ending there. \"end\": 2 s after pgbench disconnected (the"
  echo "descriptors left are the listening sockets, the loops' own and the idle server connections, which the pool keeps for \`pool_idle_timeout\`)."
  echo
  echo "| minute | TPS | RSS (KiB) | descriptors | server connections |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
  for row in "${soak_rows[@]}" "$after_rows"; do
    read -r m r f s <<<"$row"
    t="—"
    case $m in (0|end) ;; (*) t="$(awk -v s="$((m * 60))" '$1 == "progress:" && $2 + 0 == s { printf "%.0f", $4 }' "$tmp/soak.log")"; [ -n "$t" ] || t="?" ;; esac
    printf '| %s | %s | %s | %s | %s |\n' "$m" "$t" "$r" "$f" "$s"
  done
  echo
  total="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/soak.log")"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$tmp/soak.log")"
  if [ "$soak_ok" = 1 ]; then echo "$total transactions, ${failed:-0} failed."; else echo "pgbench failed: $(grep -m 2 -E 'error|FATAL' "$tmp/soak.log" | tr '\n' ' ')"; fi
  echo
fi
echo "Commands: \`scripts/bench-scale.sh\` (part of \`make bench\`; \`BENCH_QUICK=1\` for a quick run, \`BENCH_SOAK=0\` without the soak)."
