#!/usr/bin/env bash
# Where the CPU goes per transaction, Portcullis next to PgBouncer (docs/PERFORMANCE.md).
#
# Starts the same cluster, PgBouncer and Portcullis as scripts/bench.sh (TLS on both legs,
# session pooling, verify-full upstream), then for each target and client count runs
# `pgbench -n -S` (simple protocol) and reports, per transaction:
#   - proxy CPU (utime+stime of the proxy process from /proc, µs),
#   - PostgreSQL CPU (utime+stime of every process under the postmaster, µs),
#   - TPS and the p50 latency pgbench logged (µs),
# and optionally (PROFILE_PERF=1), in an extra run per target and client count that is not
# measured: `perf stat` (CPU, context switches, system calls by tracepoint) on the proxy and on
# the server backends, and `perf record -g` on the proxy (reports in PROFILE_OUT).
#
# Environment: PROFILE_SECONDS (default 10), PROFILE_CLIENTS (default "1 16"), PROFILE_ROUNDS
# (default 3: runs alternate pgbouncer, portcullis, ...), PROFILE_TARGETS (default
# "pgbouncer portcullis"; `direct` is PostgreSQL without a proxy, `portcullis-b` the binary
# PORTCULLIS_BIN_B), PROFILE_PROTOCOL (default simple), PORTCULLIS_BIN (default the
# release build), PROFILE_PERF (default 0), PROFILE_OUT (default /tmp/portcullis-profile).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
seconds="${PROFILE_SECONDS:-10}"
clients="${PROFILE_CLIENTS:-1 16}"
rounds="${PROFILE_ROUNDS:-3}"
targets="${PROFILE_TARGETS:-pgbouncer portcullis}"
protocol="${PROFILE_PROTOCOL:-simple}"
perf_on="${PROFILE_PERF:-0}"
outdir="${PROFILE_OUT:-/tmp/portcullis-profile}"
mkdir -p "$outdir"


tmp="$(mktemp -d /tmp/portcullis-profile.XXXXXX)"
chmod 0755 "$tmp"
pgdir="$tmp/pg"
pg_port="$(free_port)"; bouncer_port="$(free_port)"; proxy_port="$(free_port)"
proxy_pid=""; proxy_b_pid=""
cleanup() {
  set +e
  if [ -f "$tmp/pgbouncer/pgbouncer.pid" ]; then kill -TERM "$(cat "$tmp/pgbouncer/pgbouncer.pid")" 2>/dev/null; fi
  if [ -n "$proxy_pid" ]; then kill -TERM "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; fi
  if [ -n "$proxy_b_pid" ]; then kill -TERM "$proxy_b_pid" 2>/dev/null; wait "$proxy_b_pid" 2>/dev/null; fi
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >/dev/null
bdir="$tmp/pgbouncer"
"$here/pgbouncer-start.sh" "$bdir" "$pg_port" "$bouncer_port" 127.0.0.1 "$certdir" || { echo "profile: pgbouncer did not start" >&2; exit 1; }

PORTCULLIS_EXTRA="pool_max_size = 100${PROFILE_PORTCULLIS_EXTRA:+$'\n'$PROFILE_PORTCULLIS_EXTRA}" \
  "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir" >/dev/null
"$bin" run --config "$tmp/portcullis.ini" 2>"$tmp/portcullis.stderr" >/dev/null &
proxy_pid=$!
wait_ready "$proxy_port" 20 || { tail -n 5 "$tmp/portcullis.stderr" >&2; exit 1; }
# PORTCULLIS_BIN_B: a second Portcullis binary (target `portcullis-b`, same configuration) to
# compare two builds in one run, their measurements alternating.
proxy_b_pid=""; proxy_b_port=""
if [ -n "${PORTCULLIS_BIN_B:-}" ]; then
  proxy_b_port="$(free_port)"
  sed "s/^listen_port = .*/listen_port = $proxy_b_port/" "$tmp/portcullis.ini" >"$tmp/portcullis-b.ini"
  chmod 0600 "$tmp/portcullis-b.ini"
  "$PORTCULLIS_BIN_B" run --config "$tmp/portcullis-b.ini" 2>"$tmp/portcullis-b.stderr" >/dev/null &
  proxy_b_pid=$!
  wait_ready "$proxy_b_port" 20 || { tail -n 5 "$tmp/portcullis-b.stderr" >&2; exit 1; }
fi

export PGUSER=app_rw PGPASSWORD=app_rw_pw PGDATABASE=app PGHOST=localhost
export PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt"
pgbench -q -i -s 10 -p "$pg_port" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; exit 1; }

clk_tck="$(getconf CLK_TCK)"
postmaster="$(head -n1 "$pgdir/postmaster.pid")"
proxy_of() { case "$1" in pgbouncer) cat "$bdir/pgbouncer.pid" ;; portcullis) echo "$proxy_pid" ;; portcullis-b) echo "$proxy_b_pid" ;; direct) echo none ;; esac; }
port_of() { case "$1" in pgbouncer) echo "$bouncer_port" ;; portcullis) echo "$proxy_port" ;; portcullis-b) echo "$proxy_b_port" ;; direct) echo "$pg_port" ;; esac; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# utime+stime of the postmaster's children, keyed by pid (the backends outlive each run: both
# proxies keep their server connections).
pg_ticks() { for p in $(pgrep -P "$postmaster"); do echo "$p $(ticks "$p")"; done; }
pg_delta() { # before-file after-file -> ticks spent between
  awk 'NR == FNR { b[$1] = $2; next } { d += $2 - ($1 in b ? b[$1] : 0) } END { print d + 0 }' "$1" "$2"
}
backend_of_app() { # one server backend of app_rw (the most recently started)
  psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres \
    -c "SELECT pid FROM pg_stat_activity WHERE usename = 'app_rw' AND backend_type = 'client backend' ORDER BY backend_start DESC LIMIT 1"
}

if [ -n "${PROFILE_HOLD:-}" ]; then
  # Development: leave everything running for PROFILE_HOLD seconds (ports in $outdir/env).
  printf 'pg_port=%s\nbouncer_port=%s\nproxy_port=%s\nproxy_pid=%s\npgdir=%s\npostmaster=%s\n' \
    "$pg_port" "$bouncer_port" "$proxy_port" "$proxy_pid" "$pgdir" "$postmaster" >"$outdir/env"
  echo "profile: holding for $PROFILE_HOLD s ($outdir/env)"
  sleep "$PROFILE_HOLD"
  exit 0
fi
# PROFILE_UPROBES=1: also count malloc, swift_retain and swift_beginAccess calls in the proxy
# (uprobes; they slow the instrumented run, not the measured ones).
uprobes=""
if [ "${PROFILE_UPROBES:-0}" = 1 ]; then
  libc="$(ldd "$bin" | awk '/libc\.so/ {print $3}')"; swiftcore="$(ldd "$bin" | awk '/libswiftCore/ {print $3}')"
  perf probe -q -x "$libc" malloc 2>/dev/null || true
  perf probe -q -x "$swiftcore" swift_retain 2>/dev/null || true
  perf probe -q -x "$swiftcore" swift_beginAccess 2>/dev/null || true
  uprobes=",probe_libc:malloc,probe_libswiftCore:swift_retain,probe_libswiftCore:swift_beginAccess"
fi
syscalls="syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl"
# One instrumented run per target and client count, not measured: perf stat (CPU, context
# switches, system calls) on the proxy and on every backend, perf record -g on the proxy.
profile_run() { # target clients
  local t="$1" c="$2" j=$(( $2 < 2 ? $2 : 2 )) pid backends pids=() bench w t1 t2 n
  pid="$(proxy_of "$t")"; w=$((seconds - 3))
  rm -f "$tmp"/pgbench_log.*
  (cd "$tmp" && pgbench -n -S -M "$protocol" -T "$seconds" -c "$c" -j "$j" -l -p "$(port_of "$t")" >"$outdir/pgbench-$t-$c.log" 2>&1) &
  bench=$!
  sleep 1.5
  backends="$(pgrep -d, -P "$postmaster")"
  t1="$(date +%s.%N)"
  perf stat -e "task-clock,context-switches,$syscalls${uprobes}" -p "$pid" -o "$outdir/stat-proxy-$t-$c.txt" -- sleep "$w" &
  pids+=($!)
  perf stat -e "task-clock,context-switches,$syscalls" -p "$backends" -o "$outdir/stat-pg-$t-$c.txt" -- sleep "$w" &
  pids+=($!)
  if [ -z "$uprobes" ]; then
    perf record -g -F 2999 -p "$pid" -o "$outdir/perf-$t-$c.data" -- sleep "$w" >/dev/null 2>&1 &
    pids+=($!)
  fi
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  t2="$(date +%s.%N)"
  wait "$bench" || true
  n="$(cat "$tmp"/pgbench_log.* | awk -v a="$t1" -v b="$t2" '{ e = $5 + $6 / 1e6; if (e >= a && e < b) n++ } END { print n + 0 }')"
  echo "transactions in the window: $n" >>"$outdir/stat-proxy-$t-$c.txt"
  echo "transactions in the window: $n" >>"$outdir/stat-pg-$t-$c.txt"
}

printf '%-10s %7s %5s %9s %10s %10s %9s %8s\n' target clients round tps proxy_us pg_us p50_us backends
for c in $clients; do
  j=$(( c < 2 ? c : 2 ))
  # Warm-up: the proxies' pools hold c server connections before anything is measured.
  for t in $targets; do pgbench -n -S -M "$protocol" -T 2 -c "$c" -j "$j" -p "$(port_of "$t")" >/dev/null 2>&1 || true; done
  if [ "$perf_on" = 1 ]; then for t in $targets; do [ "$t" = direct ] || profile_run "$t" "$c"; done; fi
  for r in $(seq 1 "$rounds"); do
    for t in $targets; do
      pid="$(proxy_of "$t")"; log="$tmp/$t-$c-$r.log"
      rm -f "$tmp"/pgbench_log.*
      # Measured over a window inside the run (1 s after the start to 1 s before the end), so
      # connecting is left out and backends that end with the run (Portcullis' default
      # server_reset = close) are still there to be read; transactions in the window come from
      # pgbench's per-transaction log.
      (cd "$tmp" && pgbench -n -S -M "$protocol" -T "$seconds" -c "$c" -j "$j" -l -p "$(port_of "$t")" >"$log" 2>&1) &
      bench=$!
      sleep 1.5
      t1="$(date +%s.%N)"; pg_ticks >"$tmp/pg.before"; before="$(ticks "$pid")"
      sleep "$((seconds - 3))"
      t2="$(date +%s.%N)"; pg_ticks >"$tmp/pg.after"; after="$(ticks "$pid")"
      wait "$bench" || true
      tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log" | head -n1)"
      pgd="$(pg_delta "$tmp/pg.before" "$tmp/pg.after")"
      # Log lines: client transaction latency_us script epoch_s epoch_us (when it ended).
      read -r n p50 < <(cat "$tmp"/pgbench_log.* | awk -v a="$t1" -v b="$t2" '{ e = $5 + $6 / 1e6; if (e >= a && e < b) { n++; print $3 } }' \
        | sort -n | awk '{ l[NR] = $1 } END { print NR, (NR ? l[int((NR + 1) / 2)] : 0) }')
      nb="$(wc -l <"$tmp/pg.after")"
      awk -v t="$t" -v c="$c" -v r="$r" -v tps="$tps" -v pd=$((after - before)) -v gd="$pgd" -v hz="$clk_tck" -v n="$n" -v p50="$p50" -v nb="$nb" \
        'BEGIN { printf "%-10s %7s %5s %9.0f %10.1f %10.1f %9s %8s\n", t, c, r, tps, n ? pd*1e6/hz/n : 0, n ? gd*1e6/hz/n : 0, p50, nb }'
    done
  done
done
if [ "$perf_on" = 1 ]; then
  # Per transaction: perf attaches a moment after the window opens, so counts are divided by
  # the transactions its own counters saw — 2 writes per transaction for a proxy (one per leg),
  # 1 sendto for a backend (pgbench -S: one reply per query).
  echo "per transaction (perf stat; proxy: counts / (writes / 2), backends: counts / sendto):"
  for f in "$outdir"/stat-proxy-*.txt "$outdir"/stat-pg-*.txt; do
    awk -v name="$(basename "$f" .txt)" '
      /msec task-clock/ { v["cpu_us"] = $1 * 1000; next }
      /context-switches/ { v["cs"] = $1 } /syscalls:sys_enter_|probe_/ { gsub(",", "", $1); split($2, k, ":"); v[k[2]] = $1 }
      END {
        n = (name ~ /^stat-pg/) ? v["sys_enter_sendto"] : (v["sys_enter_write"] + v["sys_enter_sendto"]) / 2
        if (n == 0) exit
        printf "  %-26s", name
        split("cpu_us cs sys_enter_read sys_enter_recvfrom sys_enter_write sys_enter_sendto sys_enter_epoll_wait sys_enter_epoll_ctl malloc swift_retain swift_beginAccess", order, " ")
        for (i = 1; i in order; i++) if (order[i] in v) printf " %s=%.2f", order[i], v[order[i]] / n
        printf "\n"
      }' "$f"
  done
  for f in "$outdir"/perf-*.data; do
    perf report -i "$f" --no-children --sort dso -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12 >"${f%.data}.dso.txt" || true
    perf report -i "$f" --no-children --sort dso,symbol -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60 >"${f%.data}.top.txt" || true
  done
  echo "profile: perf output in $outdir"
fi
