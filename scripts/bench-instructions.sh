#!/usr/bin/env bash
# User-space instructions per transaction, counted by callgrind: a figure that does not move
# with the machine's load (timings on this 2-core VM spread ±15 % between runs), for comparing
# builds of Portcullis step by step. Not part of `make test` or `make bench`; needs valgrind.
#
# Usage: scripts/bench-instructions.sh [BINARY...]   (default: the release build)
# Environment: MODE (transaction | session, default transaction), CLIENTS (16), TX (300
# transactions per client, measured after a warm-up of 200 per client), PROTO (simple |
# extended | prepared), POOL (pool_max_size per loop, 20), AS_USER (app_rw | app_ro: who runs the
# measured pgbench; app_ro goes through the read-only gate), KEEP (a directory: the callgrind
# output of each binary is copied there, for callgrind_annotate).
#
# Each binary runs under `valgrind --tool=callgrind` (debug info stripped into a copy first:
# valgrind 3.19 cannot read Swift's DWARF 5), counters zeroed after the warm-up and dumped
# after the measured pgbench -S run; the count covers every thread of the proxy, the TLS
# handshakes of pgbench's connections included (the same in every run).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ $# -gt 0 ] || set -- "$bin"
tmp="$(mktemp -d /tmp/portcullis-instructions.XXXXXX)"; chmod 0755 "$tmp"
pgdir="$tmp/pg"; pg_port="$(free_port)"; pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; "$here/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >/dev/null
export PGUSER=app_rw PGPASSWORD=app_rw_pw PGDATABASE=app PGHOST=localhost PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt"
pgbench -q -i -s 1 -p "$pg_port" >/dev/null 2>&1
clients="${CLIENTS:-16}"; tx="${TX:-300}"; proto="${PROTO:-simple}"
echo "| binary | mode | protocol | user | clients | transactions | instructions | per transaction |"
echo "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
for b in "$@"; do
  name="$(basename "$b")"
  strip --strip-debug -o "$tmp/$name" "$b"
  proxy_port="$(free_port)"
  PORTCULLIS_EXTRA="workers = 2
pool_mode = ${MODE:-transaction}
pool_max_size = ${POOL:-20}
max_client_connections = 5000" "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir" >/dev/null
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$name.%p" "$tmp/$name" run --config "$tmp/portcullis.ini" 2>>"$tmp/valgrind.log" >/dev/null &
  pid=$!
  wait_ready "$proxy_port" 120 || { tail -n 5 "$tmp/valgrind.log" >&2; exit 1; }
  export PGUSER="${AS_USER:-app_rw}" PGPASSWORD="${AS_USER:-app_rw}_pw"
  pgbench -n -S -t 200 -c "$clients" -j 2 -M "$proto" -p "$proxy_port" >/dev/null 2>&1 || true
  callgrind_control -z "$pid" >/dev/null 2>&1
  out="$(pgbench -n -S -t "$tx" -c "$clients" -j 2 -M "$proto" -p "$proxy_port" 2>&1)"
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  txns="$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')"
  ir="$(callgrind_annotate "$(ls "$tmp/cg.$name.$pid".* | head -n1)" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$(ls "$tmp/cg.$name.$pid".* | head -n1)" "$KEEP/callgrind.$name.${AS_USER:-app_rw}.out"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${MODE:-transaction}" "$proto" "${AS_USER:-app_rw}" "$clients" "$txns" "$ir" "$((ir / txns))"
done
