#!/usr/bin/env bash
# `make run`: a demo cluster behind Portcullis, in the foreground. Ctrl-C stops both.
#
# Ports: PostgreSQL on $DEMO_PG_PORT (5433), Portcullis on $DEMO_PROXY_PORT (6432).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
pg_port="${DEMO_PG_PORT:-5433}"
proxy_port="${DEMO_PROXY_PORT:-6432}"
certdir="$repo/certs-example/generated"
export PATH="$PATH:/opt/swift/usr/bin"

"$here/install-deps.sh"
"$repo/certs-example/generate.sh" "$certdir"
swift build
bin="${PORTCULLIS_BIN:-$(swift build --show-bin-path)/portcullis}"

# The data directory must be reachable by the postgres OS user; a checkout under /root is not.
mkdir -p "$repo/run"
pgdir="$repo/run/pgdata"
if ! runuser -u postgres -- test -x "$repo/run"; then
  pgdir="/tmp/portcullis-demo-$(id -u)/pgdata"
  mkdir -p "$(dirname "$pgdir")"
  chmod 0755 "$(dirname "$pgdir")"
  echo "run-demo: $repo is not reachable by the postgres user; using $pgdir"
fi

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
if ! "$here/pg-cluster.sh" status "$pgdir" >/dev/null 2>&1 && port_busy "$pg_port"; then
  echo "run-demo: port $pg_port is in use; set DEMO_PG_PORT" >&2; exit 1
fi
if port_busy "$proxy_port"; then
  echo "run-demo: port $proxy_port is in use; set DEMO_PROXY_PORT" >&2; exit 1
fi

"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir"
proxy_pid=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$proxy_pid" ] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill -TERM "$proxy_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$proxy_pid" 2>/dev/null || true
  fi
  "$here/pg-cluster.sh" stop "$pgdir" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$here/proxy-config.sh" "$repo/run/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir"

echo
echo "Portcullis is starting on port $proxy_port (PostgreSQL behind it on $pg_port). Connect with"
echo "(password app_rw_pw; or user=app_ro with password app_ro_pw for the read-only identity):"
echo
echo "psql \"host=localhost port=$proxy_port dbname=app user=app_rw sslmode=verify-full sslrootcert=$certdir/ca.crt\""
echo
echo "Press Ctrl-C to stop Portcullis and the demo cluster."
echo

"$bin" run --config "$repo/run/portcullis.ini" &
proxy_pid=$!
set +e
wait "$proxy_pid"
status=$?
set -e
proxy_pid=""
echo "run-demo: portcullis exited with status $status"
exit "$status"
