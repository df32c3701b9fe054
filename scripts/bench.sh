#!/usr/bin/env bash
# `make bench`: pgbench -S (select-only) over TLS at 1/16/64 clients against
#   1. PostgreSQL directly, 2. PgBouncer (session pooling, TLS on both legs),
#   3. Portcullis (configured as the integration tests configure it),
# all in one run against one throw-away cluster, and writes docs/BENCHMARKS.md.
#
# Environment: BENCH_SECONDS (default 10) per measurement, BENCH_SCALE (default 10),
# BENCH_CLIENTS (default "1 16 64"), BENCH_PROTOCOLS (default "simple extended prepared": pgbench -M),
# BENCH_ROUNDS (default 3: each cell's median of that many runs), PORTCULLIS_BIN (default: the release build), BENCH_IDLE_CLIENTS (default 100),
# BENCH_OUT (default docs/BENCHMARKS.md), BENCH_BACKUP (default 1: also run scripts/bench-backup.sh),
# BENCH_AUDIT (default 1: also run scripts/bench-audit.sh), BENCH_SCALE_RUN (default 1: also run
# scripts/bench-scale.sh; BENCH_SOAK=0 skips its soak, BENCH_QUICK=1 makes it and bench-audit.sh short).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
export PATH="$PATH:/opt/swift/usr/bin"
seconds="${BENCH_SECONDS:-10}"
scale="${BENCH_SCALE:-10}"
clients="${BENCH_CLIENTS:-1 16 64}"
protocols="${BENCH_PROTOCOLS:-simple extended prepared}"
rounds="${BENCH_ROUNDS:-3}"
# BENCH_CONNECT_ONLY=1: only the connection-setup table (BENCH_CONNECT_ROUNDS rounds, default 3,
# targets interleaved, medians), printed to stdout; docs/BENCHMARKS.md is not written.
connect_only="${BENCH_CONNECT_ONLY:-0}"
connect_rounds="${BENCH_CONNECT_ROUNDS:-1}"
if [ "$connect_only" = 1 ]; then clients=""; connect_rounds="${BENCH_CONNECT_ROUNDS:-3}"; fi
out="${BENCH_OUT:-$repo/docs/BENCHMARKS.md}"

tmp="$(mktemp -d /tmp/portcullis-bench.XXXXXX)"
chmod 0755 "$tmp"
pgdir="$tmp/pg"
pg_port="$(free_port)"
bouncer_port="$(free_port)"
proxy_port="$(free_port)"
proxy_pid=""
cleanup() {
  set +e
  [ -n "${spare_pid:-}" ] && kill -TERM "$spare_pid" 2>/dev/null
  if [ -f "$tmp/pgbouncer/pgbouncer.pid" ]; then kill -TERM "$(cat "$tmp/pgbouncer/pgbouncer.pid")" 2>/dev/null; fi
  if [ -n "$proxy_pid" ]; then
    kill -TERM "$proxy_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$proxy_pid" 2>/dev/null
  fi
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir"

bdir="$tmp/pgbouncer"
"$here/pgbouncer-start.sh" "$bdir" "$pg_port" "$bouncer_port" "127.0.0.1,::1" "$certdir" || { echo "bench: pgbouncer did not start" >&2; exit 1; }

# Portcullis, exactly as the integration tests run it: the binary with a generated config.
proxy_note=""
if [ -x "$bin" ]; then
  # Same limits as the PgBouncer above: up to 100 server connections per database/user.
  # BENCH_PORTCULLIS_EXTRA: more [portcullis] lines (e.g. the audit settings), one per line.
  PORTCULLIS_EXTRA="pool_max_size = 100${BENCH_PORTCULLIS_EXTRA:+$'\n'$BENCH_PORTCULLIS_EXTRA}" \
    "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir" >/dev/null
  "$bin" run --config "$tmp/portcullis.ini" 2>"$tmp/portcullis.stderr" >/dev/null &
  proxy_pid=$!
  if ! wait_ready "$proxy_port" 20 || ! kill -0 "$proxy_pid" 2>/dev/null; then
    proxy_note="Portcullis did not become ready: $(tail -n 3 "$tmp/portcullis.stderr" | tr '\n' ' ')"
  fi
else
  proxy_note="no Portcullis binary at $bin (run swift build)"
fi

export PGUSER=app_rw PGPASSWORD=app_rw_pw PGDATABASE=app PGHOST=localhost
export PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt"
echo "bench: initialising pgbench tables (scale $scale)"
pgbench -q -i -s "$scale" -p "$pg_port" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; exit 1; }

# CPU time of a proxy process (all threads), in clock ticks, from /proc/PID/stat (utime+stime).
clk_tck="$(getconf CLK_TCK)"
proxy_process() { case "$1" in pgbouncer) cat "$bdir/pgbouncer.pid" ;; portcullis) echo "$proxy_pid" ;; *) echo "" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

declare -A tps lat cpu all_tps all_lat all_cpu
cell_errors=()
targets=(direct pgbouncer portcullis)
declare -A target_port=([direct]=$pg_port [pgbouncer]=$bouncer_port [portcullis]=$proxy_port)
# The median of the numbers on stdin ("error" when there are none).
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "error"; else print v[int((NR + 1) / 2)] }'; }
# Rounds outermost, so each cell's repetitions are spread over the run (and over whatever
# else the machine is doing); within a round the targets alternate cell by cell.
for round in $(seq 1 "$rounds"); do
  for proto in $protocols; do
    for c in $clients; do
      for target in "${targets[@]}"; do
        [ "$target" = portcullis ] && [ -n "$proxy_note" ] && continue
        j=$(( c < 2 ? c : 2 ))
        echo "bench: round $round, $proto, $target, $c clients, ${seconds}s"
        log="$tmp/$target-$proto-$c-$round.log"
        ppid_="$(proxy_process "$target")"
        before=""; [ -n "$ppid_" ] && before="$(cpu_ticks "$ppid_")"
        if pgbench -n -S -M "$proto" -T "$seconds" -c "$c" -j "$j" -p "${target_port[$target]}" >"$log" 2>&1; then
          failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$log")"
          if [ "${failed:-0}" != 0 ]; then cell_errors+=("$target, $proto, $c clients, round $round: $failed failed transactions"); continue; fi
          if [ -n "$before" ]; then
            after="$(cpu_ticks "$ppid_")"
            txns="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")"
            all_cpu[$target,$proto,$c]+=" $(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n }')"
          fi
          all_tps[$target,$proto,$c]+=" $(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log" | head -n1 | xargs printf '%.0f')"
          all_lat[$target,$proto,$c]+=" $(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log" | head -n1)"
        else
          cell_errors+=("$target, $proto, $c clients, round $round: $(grep -m 3 -E 'error|FATAL' "$log" | tr '\n' ' ')")
        fi
      done
    done
  done
done
for key in "${!all_tps[@]}"; do
  tps[$key]="$(echo "${all_tps[$key]}" | median)"
  lat[$key]="$(echo "${all_lat[$key]:-}" | median)"
done
for key in "${!all_cpu[@]}"; do cpu[$key]="$(echo "${all_cpu[$key]}" | median)"; done
# Portcullis over PgBouncer for one cell (TPS or CPU), two decimals.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# Read-only enforcement cost: the same pgbench -S through Portcullis as the read-write identity
# (statements forwarded unjudged) and as the read-only identity (every statement classified).
# Alternating runs, two each, so drift on a shared machine hits both alike.
declare -A mode_tps mode_cpu
ro_clients="${BENCH_RO_CLIENTS:-16}"
ro_rounds="${BENCH_RO_ROUNDS:-3}"
[ "$connect_only" = 1 ] && ro_rounds=0
if [ -z "$proxy_note" ]; then
  psql -X -q -h "$pgdir" -p "$pg_port" -U postgres -d app -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_ro" >/dev/null
  for round in $(seq 1 "$ro_rounds"); do
    for who in app_rw app_ro; do
      echo "bench: portcullis as $who (round $round), $ro_clients clients, ${seconds}s"
      log="$tmp/mode-$who-$round.log"
      pw="${who}_pw"
      before="$(cpu_ticks "$proxy_pid")"
      if PGUSER=$who PGPASSWORD=$pw pgbench -n -S -T "$seconds" -c "$ro_clients" -j 2 -p "$proxy_port" >"$log" 2>&1; then
        after="$(cpu_ticks "$proxy_pid")"
        txns="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")"
        mode_tps[$who,$round]="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log" | head -n1 | xargs printf '%.0f')"
        mode_cpu[$who,$round]="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "n/a" }')"
      else
        mode_tps[$who,$round]="error"; mode_cpu[$who,$round]="error"
        cell_errors+=("portcullis as $who: $(grep -m 3 -E 'error|FATAL' "$log" | tr '\n' ' ')")
      fi
    done
  done
fi
# Connection setup: pgbench -C (a new TLS connection, SCRAM login and server session for every
# transaction), one client, each target; Portcullis as configured above (the default
# pool_min_idle = 1: one warm spare per pool in use) and, on a second proxy, without spares
# (pool_min_idle = 0: every client gets a server connection opened for it).
declare -A conn_tps conn_ms
conn_targets=(direct pgbouncer portcullis)
if [ -z "$proxy_note" ]; then
  spare_port="$(free_port)"
  PORTCULLIS_EXTRA="pool_max_size = 100"$'\n'"pool_min_idle = 0" \
    "$here/proxy-config.sh" "$tmp/portcullis-spare.ini" "$pgdir" "$pg_port" "$spare_port" "$certdir" >/dev/null
  "$bin" run --config "$tmp/portcullis-spare.ini" 2>"$tmp/portcullis-spare.stderr" >/dev/null &
  spare_pid=$!
  if wait_ready "$spare_port" 20; then
    conn_targets+=(portcullis-nospare)
    target_port[portcullis-nospare]=$spare_port
  fi
fi
declare -A conn_all_tps conn_all_ms
for round in $(seq 1 "$connect_rounds"); do
  for target in "${conn_targets[@]}"; do
    [ "$target" = portcullis ] && [ -n "$proxy_note" ] && continue
    echo "bench: connection setup, $target, ${seconds}s (round $round of $connect_rounds)"
    log="$tmp/connect-$target-$round.log"
    if pgbench -n -S -C -T "$seconds" -c 1 -p "${target_port[$target]}" >"$log" 2>&1; then
      conn_all_tps[$target]+=" $(sed -n 's/^tps = \([0-9.]*\) (including reconnection times)/\1/p' "$log" | head -n1)"
      conn_all_ms[$target]+=" $(sed -n 's/^average connection time = \([0-9.]*\) ms/\1/p' "$log" | head -n1)"
    else
      cell_errors+=("connection setup, $target: $(grep -m 3 -E 'error|FATAL' "$log" | tr '\n' ' ')")
    fi
  done
done
for target in "${conn_targets[@]}"; do
  t="$(echo "${conn_all_tps[$target]:-}" | median)"
  conn_tps[$target]="$( [ "$t" = error ] && echo error || printf '%.0f' "$t")"
  conn_ms[$target]="$(echo "${conn_all_ms[$target]:-}" | median)"
  echo "bench: connection setup, $target: TPS${conn_all_tps[$target]:-} ms${conn_all_ms[$target]:-}"
done
[ -n "${spare_pid:-}" ] && { kill -TERM "$spare_pid" 2>/dev/null; wait "$spare_pid" 2>/dev/null || true; }
if [ "$connect_only" = 1 ]; then
  echo
  echo "Connection setup: \`pgbench -n -S -C -T $seconds -c 1\`, median of $connect_rounds rounds (targets interleaved):"
  printf '| target | TPS incl. connecting | average connection time (ms) |\n| --- | ---: | ---: |\n'
  for t in "${conn_targets[@]}"; do printf '| %s | %s | %s |\n' "$t" "${conn_tps[$t]:-n/a}" "${conn_ms[$t]:-n/a}"; done
  for e in "${cell_errors[@]}"; do echo "error: $e"; done
  exit 0
fi

classifier_bin="$(dirname "$bin")/portcullis-classifier-bench"
classifier_table=""
if [ -x "$classifier_bin" ]; then
  echo "bench: classifier"
  classifier_table="$("$classifier_bin" 20000)"
fi

# Resident memory per idle TLS client: N authenticated psql sessions that sit idle.
idle_clients="${BENCH_IDLE_CLIENTS:-100}"
declare -A idle_mem
# Each measured on a fresh process warmed with one session: after the runs above, memory freed
# by earlier sessions would be reused by these and hide their cost (it read 0.1 KiB per client).
restart_fresh() {
  case $1 in
    pgbouncer)
      kill -TERM "$(cat "$bdir/pgbouncer.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do [ -f "$bdir/pgbouncer.pid" ] && kill -0 "$(cat "$bdir/pgbouncer.pid")" 2>/dev/null || break; sleep 0.1; done
      "$here/pgbouncer-start.sh" "$bdir" "$pg_port" "$bouncer_port" "127.0.0.1,::1" "$certdir" >/dev/null || return 1 ;;
    portcullis)
      [ -n "$proxy_note" ] && return 1
      kill -TERM "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null || true
      "$bin" run --config "$tmp/portcullis.ini" 2>>"$tmp/portcullis.stderr" >/dev/null &
      proxy_pid=$!
      wait_ready "$proxy_port" 20 || return 1 ;;
  esac
  psql -X -q -p "${target_port[$1]}" -c "SELECT 1" >/dev/null 2>&1 || true
  sleep 1
}
for target in pgbouncer portcullis; do
  restart_fresh "$target" || { idle_mem[$target]="n/a"; continue; }
  ppid_="$(proxy_process "$target")"
  [ -n "$ppid_" ] && kill -0 "$ppid_" 2>/dev/null || { idle_mem[$target]="n/a"; continue; }
  base="$(rss_kib "$ppid_")"
  sleepers=()
  for _ in $(seq 1 "$idle_clients"); do
    (sleep 29.7 | psql -X -q -p "${target_port[$target]}" -v ON_ERROR_STOP=1 >/dev/null 2>&1) &
    sleepers+=($!)
  done
  deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    n="$(psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_rw' AND state = 'idle'")"
    [ "$n" -ge "$idle_clients" ] && break
    sleep 0.5
  done
  sleep 1
  loaded="$(rss_kib "$ppid_")"
  idle_mem[$target]="$(awk -v a="$base" -v b="$loaded" -v n="$idle_clients" 'BEGIN { printf "%.1f", (b - a) / n }')"
  pkill -f "sleep 29.7" 2>/dev/null || true
  for p in "${sleepers[@]}"; do wait "$p" 2>/dev/null || true; done
  sleep 2
done

mkdir -p "$(dirname "$out")"
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);"
  echo "$(postgres_version="$(/usr/lib/postgresql/15/bin/postgres --version)"; echo "$postgres_version"), $(pgbouncer --version | head -n1), OpenSSL $(openssl version | awk '{print $2}')."
  echo "pgbench, PostgreSQL, PgBouncer and Portcullis all share this machine's cores, so the"
  echo "numbers compare the paths with each other; they are not absolute capacity figures."
  echo "The cluster runs with fsync=off (scripts/pg-cluster.sh); -S is read-only anyway."
  echo
  echo "Each cell: transactions per second (excluding connection setup) / average latency in ms, the median"
  echo "of $rounds runs (rounds outermost, targets alternating within a round); the last column is"
  echo "Portcullis' TPS over PgBouncer's. Every client connects once over TLS with sslmode=verify-full and SCRAM-SHA-256."
  echo
  printf '| protocol | clients |'; for t in "${targets[@]}"; do printf ' %s |' "$t"; done; echo ' portcullis / pgbouncer |'
  printf '| --- | ---: |'; for _ in "${targets[@]}"; do printf ' ---: |'; done; echo ' ---: |'
  for proto in $protocols; do
    for c in $clients; do
      printf '| %s | %s |' "$proto" "$c"
      for t in "${targets[@]}"; do printf ' %s / %s |' "${tps[$t,$proto,$c]:-n/a}" "${lat[$t,$proto,$c]:-n/a}"; done
      printf ' %s |\n' "$(ratio "${tps[portcullis,$proto,$c]:-}" "${tps[pgbouncer,$proto,$c]:-}")"
    done
  done
  echo
  echo "Proxy CPU per transaction (µs, utime+stime of the proxy process from /proc over each run / its transactions; medians):"
  echo
  printf '| protocol | clients | pgbouncer | portcullis | portcullis / pgbouncer |\n| --- | ---: | ---: | ---: | ---: |\n'
  for proto in $protocols; do
    for c in $clients; do
      printf '| %s | %s | %s | %s | %s |\n' "$proto" "$c" "${cpu[pgbouncer,$proto,$c]:-n/a}" "${cpu[portcullis,$proto,$c]:-n/a}" \
        "$(ratio "${cpu[portcullis,$proto,$c]:-}" "${cpu[pgbouncer,$proto,$c]:-}")"
    done
  done
  echo
  echo "Connection setup: \`pgbench -n -S -C -T $seconds -c 1\` (every transaction on a new TLS connection with SCRAM;"
  echo "portcullis: the default, one warm spare server connection per pool in use; portcullis-nospare: a second Portcullis with \`pool_min_idle = 0\`):"
  echo
  printf '| target | TPS incl. connecting | average connection time (ms) |\n| --- | ---: | ---: |\n'
  for t in "${conn_targets[@]}"; do printf '| %s | %s | %s |\n' "$t" "${conn_tps[$t]:-n/a}" "${conn_ms[$t]:-n/a}"; done
  echo
  echo "Resident memory per idle TLS client ($idle_clients authenticated idle psql sessions, VmRSS delta / clients):"
  echo "pgbouncer ${idle_mem[pgbouncer]} KiB, portcullis ${idle_mem[portcullis]} KiB."
  echo "Not like for like: PgBouncer gives a client a server connection at its first query, so an idle"
  echo "client costs it one TLS session; Portcullis opens the server connection at login (to hand back the"
  echo "server's own ParameterStatus values and real backend PID), so each idle client holds two TLS sessions."
  echo "Measured by hand on this machine (80 idle sessions, one loop, RSS delta, counting OpenSSL's allocations"
  echo "through CRYPTO_set_mem_functions): 7.4 KiB per session with no TLS on either leg; each TLS leg adds"
  echo "about 26 KiB of RSS, of which about 14 KiB are live OpenSSL 3 allocations per SSL object (record buffers"
  echo "are already released while idle)."
  echo
  echo "## Read-only enforcement"
  echo
  echo "pgbench -S through Portcullis, $ro_clients clients, ${seconds}s per run, $ro_rounds rounds, runs alternated (rw, ro, rw, ro, ...):"
  echo "as the read-write identity \`app_rw\` (statements forwarded as they are) and as the read-only identity"
  echo "\`app_ro\` (every Query/Parse classified with libpg_query; cache keyed by a literal-masked or normalized text)."
  echo "Each cell: TPS / proxy CPU µs per transaction."
  echo
  printf '| identity |'; for r in $(seq 1 "$ro_rounds"); do printf ' run %s |' "$r"; done; printf ' mean TPS | mean CPU µs/txn |\n'
  printf '| --- |'; for r in $(seq 1 "$ro_rounds"); do printf ' ---: |'; done; printf ' ---: | ---: |\n'
  declare -A mean_tps mean_cpu
  for who in app_rw app_ro; do
    printf '| %s |' "$who"
    sum=0; csum=0; n=0
    for r in $(seq 1 "$ro_rounds"); do
      printf ' %s / %s |' "${mode_tps[$who,$r]:-n/a}" "${mode_cpu[$who,$r]:-n/a}"
      case "${mode_tps[$who,$r]:-x}" in (*[!0-9]*|"") ;; (*) sum=$((sum + ${mode_tps[$who,$r]})); n=$((n + 1)); csum="$(awk -v a="$csum" -v b="${mode_cpu[$who,$r]}" 'BEGIN { print a + b }')" ;; esac
    done
    if [ "$n" -gt 0 ]; then
      mean_tps[$who]=$((sum / n)); mean_cpu[$who]="$(awk -v a="$csum" -v n="$n" 'BEGIN { printf "%.1f", a / n }')"
    else
      mean_tps[$who]=0; mean_cpu[$who]="n/a"
    fi
    printf ' %s | %s |\n' "${mean_tps[$who]}" "${mean_cpu[$who]}"
  done
  echo
  if [ "${mean_tps[app_rw]}" -gt 0 ]; then
    echo "Read-only mean TPS relative to read-write: $(awk -v a="${mean_tps[app_ro]}" -v b="${mean_tps[app_rw]}" 'BEGIN { printf "%.1f%%", 100 * a / b }') (target: at most 5 % cost);"
    echo "proxy CPU per transaction read-only vs read-write: ${mean_cpu[app_ro]} vs ${mean_cpu[app_rw]} µs."
    echo "Identical runs differ by several percent on this shared 2-core machine; the CPU figure is the steadier one."
    echo
  fi
  if [ -n "$classifier_table" ]; then
    echo "Classifier, ns per call (\`.build/release/portcullis-classifier-bench 20000\`, one core, same run):"
    echo "cold = parse + unpack + tree walk each time; cached = literal-masked key (else \`pg_query_normalize\`) + dictionary lookup;"
    echo "cached + catalog = cached, then the catalog check against a snapshot of 1,000 user functions, 200 operators, 50 flagged types and 20 restricted relations."
    echo
    echo "$classifier_table"
    echo
  fi
  echo "- direct: PostgreSQL 15 with \`ssl=on\`, \`hostssl ... scram-sha-256\`."
  echo "- pgbouncer: PgBouncer session pooling, \`client_tls_sslmode=require\`, \`server_tls_sslmode=verify-full\`."
  echo "- portcullis: \`portcullis run --config\` with a config from scripts/proxy-config.sh (upstream \`sslmode=verify-full\`)."
  echo "- Portcullis binary: \`${bin#"$repo"/}\` (\`make bench\` builds it with \`swift build -c release\`)."
  if [ -n "$proxy_note" ]; then echo "- portcullis: not measured — $proxy_note"; fi
  for e in "${cell_errors[@]}"; do echo "- error in $e"; done
  echo
  echo "Command per cell (scale $scale, initialised with \`pgbench -i -s $scale\`):"
  echo
  echo '```'
  echo "PGSSLMODE=verify-full PGSSLROOTCERT=certs-example/generated/ca.crt PGHOST=localhost PGUSER=app_rw PGDATABASE=app \\"
  echo "  pgbench -n -S -M PROTOCOL -T $seconds -c CLIENTS -j min(CLIENTS,2) -p PORT"
  echo '```'
} >"$out"
# Sub-benchmarks append their own sections (each starts and stops what it needs).
# BENCH_BACKUP=0 skips the backup one (scripts/bench-backup.sh).
if [ "${BENCH_BACKUP:-1}" != 0 ]; then
  echo "bench: backups (scripts/bench-backup.sh)"
  { echo; PORTCULLIS_BIN="$bin" "$here/bench-backup.sh"; } >>"$out" || echo "- the backup benchmark failed" >>"$out"
fi
# BENCH_AUDIT=0 skips the audit-stream one (scripts/bench-audit.sh).
if [ "${BENCH_AUDIT:-1}" != 0 ]; then
  echo "bench: audit stream (scripts/bench-audit.sh)"
  { echo; PORTCULLIS_BIN="$bin" "$here/bench-audit.sh"; } >>"$out" || echo "- the audit benchmark failed" >>"$out"
fi
# BENCH_SCALE_RUN=0 skips the scale one (scripts/bench-scale.sh: many clients and 10,000 idle
# clients on 20 server connections, and the soak; BENCH_SOAK=0 skips only the soak).
if [ "${BENCH_SCALE_RUN:-1}" != 0 ]; then
  echo "bench: scale and soak (scripts/bench-scale.sh)"
  { echo; PORTCULLIS_BIN="$bin" "$here/bench-scale.sh"; } >>"$out" || echo "- the scale benchmark failed" >>"$out"
fi
echo "bench: wrote $out"
cat "$out"
