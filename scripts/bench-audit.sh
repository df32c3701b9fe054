#!/usr/bin/env bash
# The audit-stream benchmark (called by scripts/bench.sh, or alone): pgbench -S through
# Portcullis with the audit stream off, to journald (all fields, and `audit_journald_fields =
# compact`) and to a JSON lines file — every transaction one audited statement — in alternating
# rounds against one cluster, with TPS, the proxy's CPU per transaction (utime+stime of all its
# threads, the writer included) and journald's own; then how many events a second the writer
# thread sustains into each sink (portcullis-audit-bench). Prints a Markdown section on stdout; progress goes to stderr.
#
# Environment: PORTCULLIS_BIN (default: the release build), BENCH_AUDIT_SECONDS (default 10),
# BENCH_AUDIT_CLIENTS (default 16), BENCH_AUDIT_ROUNDS (default 3); BENCH_QUICK=1 (quick mode:
# 5 s runs, unless BENCH_AUDIT_SECONDS says otherwise); BENCH_AUDIT_MODES (default
# "off journald journald-compact json", a subset to measure fewer); BENCH_AUDIT_PERF=DIR records each run's
# proxy with `perf record -g` into DIR/MODE-ROUND.data (for `perf report -i`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
writer_bin="$(dirname "$bin")/portcullis-audit-bench"
if [ "${BENCH_QUICK:-0}" != 0 ]; then seconds="${BENCH_AUDIT_SECONDS:-5}"; else seconds="${BENCH_AUDIT_SECONDS:-10}"; fi
clients="${BENCH_AUDIT_CLIENTS:-16}"
rounds="${BENCH_AUDIT_ROUNDS:-3}"
perf_dir="${BENCH_AUDIT_PERF:-}"
log() { echo "bench-audit: $*" >&2; }

echo "## Audit stream"
echo
if [ ! -x "$bin" ]; then echo "Not measured: no Portcullis binary at \`${bin#"$repo"/}\`."; exit 0; fi
"$here/start-journald.sh" >&2 || { echo "Not measured: journald could not be started."; exit 0; }

tmp="$(mktemp -d /tmp/portcullis-bench-audit.XXXXXX)"
chmod 0755 "$tmp"
pgdir="$tmp/pg"
pg_port="$(free_port)"
proxy_pid=""
cleanup() {
  set +e
  [ -n "$proxy_pid" ] && { kill -TERM "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; }
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >/dev/null
export PGUSER=app_rw PGPASSWORD=app_rw_pw PGDATABASE=app PGHOST=localhost
export PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt"
pgbench -q -i -s 10 -p "$pg_port" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; exit 1; }
clk_tck="$(getconf CLK_TCK)"

declare -A tps cpu jcpu
read -r -a modes <<<"${BENCH_AUDIT_MODES:-off journald journald-compact json}"
# journald's own CPU per transaction (its utime+stime over the run), to show what the
# journald sink costs beyond the proxy.
# (The journald of this mount namespace: another in a systemd container is not ours.)
journald_ticks() {
  local pid ns
  ns="$(readlink /proc/self/ns/mnt)"
  for pid in $(pgrep -x systemd-journal || true); do
    if [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ]; then awk '{print $14 + $15}' "/proc/$pid/stat"; return; fi
  done
  echo 0
}
for round in $(seq 1 "$rounds"); do
  for mode in "${modes[@]}"; do
    port="$(free_port)"
    case $mode in
      off) extra="audit = off" ;;
      journald) extra=$'audit = on\naudit_sinks = journald' ;;
      journald-compact) extra=$'audit = on\naudit_sinks = journald\naudit_journald_fields = compact' ;;
      json) extra=$'audit = on\naudit_sinks = json:'"$tmp/audit.json" ;;
    esac
    PORTCULLIS_EXTRA="pool_max_size = 100"$'\n'"$extra" \
      "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$port" "$certdir" >/dev/null
    "$bin" run --config "$tmp/portcullis.ini" 2>"$tmp/proxy.stderr" >/dev/null &
    proxy_pid=$!
    for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$port" -t 1 && break; sleep 0.2; done
    log "audit $mode, round $round, $clients clients, ${seconds}s"
    perf_pid=""
    if [ -n "$perf_dir" ]; then
      mkdir -p "$perf_dir"
      perf record -g -p "$proxy_pid" -o "$perf_dir/$mode-$round.data" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    before="$(awk '{print $14 + $15}' "/proc/$proxy_pid/stat")"
    jbefore="$(journald_ticks)"
    # Bounded: with a sink that stays down, backpressure holds the clients (by design).
    if out="$(timeout $((seconds + 60)) pgbench -n -S -T "$seconds" -c "$clients" -j 2 -p "$port" 2>&1)"; then
      after="$(awk '{print $14 + $15}' "/proc/$proxy_pid/stat")"
      jafter="$(journald_ticks)"
      txns="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
      tps[$mode,$round]="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out" | head -n1 | xargs printf '%.0f')"
      cpu[$mode,$round]="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "n/a" }')"
      jcpu[$mode,$round]="$(awk -v t=$((jafter - jbefore)) -v hz="$clk_tck" -v n="${txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "n/a" }')"
    else
      tps[$mode,$round]="error"; cpu[$mode,$round]="error"; jcpu[$mode,$round]="error"
    fi
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null || true; fi
    kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""
    rm -f "$tmp/audit.json"
  done
done

median() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.1f", (a[NR/2] + a[NR/2+1]) / 2 }'; }
echo "pgbench -S, $clients clients over TLS (verify-full both legs), ${seconds} s per run, $rounds rounds"
echo "alternating ${modes[*]}; every transaction is one audited statement (full text)."
echo "CPU is the proxy process's (event loops and the audit writer thread); journald's own CPU,"
echo "on the same two cores, is not in it but is in the TPS (and in its own column)."
echo
printf '| audit | TPS per round | median TPS | vs off | proxy CPU µs/txn (median) | journald CPU µs/txn (median) |\n| --- | --- | ---: | ---: | ---: | ---: |\n'
off_median="$(median $(for r in $(seq 1 "$rounds"); do echo "${tps[off,$r]}"; done))"
for mode in "${modes[@]}"; do
  list=""; tl=(); cl=(); jl=()
  for r in $(seq 1 "$rounds"); do
    list="$list${list:+ · }${tps[$mode,$r]}"; tl+=("${tps[$mode,$r]}"); cl+=("${cpu[$mode,$r]}"); jl+=("${jcpu[$mode,$r]}")
  done
  m="$(median "${tl[@]}")"
  ratio="$(awk -v a="$m" -v b="$off_median" 'BEGIN { if (b > 0 && a > 0) printf "%.0f %%", 100 * a / b; else print "n/a" }')"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$mode" "$list" "$m" "$ratio" "$(median "${cl[@]}")" "$(median "${jl[@]}")"
done
echo
if [ -x "$writer_bin" ]; then
  log "writer throughput"
  echo "Events a second the audit writer thread sustains (\`portcullis-audit-bench N SINK\`: one producer"
  echo "thread submits N pgbench-like statement records to a queue of 10,000, the clock runs until all are written):"
  echo
  echo "| sink | events | seconds | events/s |"
  echo "| --- | ---: | ---: | ---: |"
  "$writer_bin" 200000 "json:$tmp/writer.json" || echo "| JSON lines file | failed | | |"
  "$writer_bin" 100000 journald || echo "| journald | failed | | |"
  "$writer_bin" 100000 journald:compact || echo "| journald (compact fields) | failed | | |"
  echo
fi
echo "Commands: \`scripts/bench-audit.sh\` (part of \`make bench\`); per run"
echo "\`pgbench -n -S -T $seconds -c $clients -j 2\` against Portcullis with \`audit = off\`, \`audit_sinks = journald\`"
echo "(with \`audit_journald_fields = compact\` for journald-compact) or \`audit_sinks = json:FILE\`."
