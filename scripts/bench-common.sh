# Sourced by the bench scripts after they set `here` (this folder): the repository root as the
# working directory, the example certificates, the binary under test, and two helpers.
# shellcheck shell=bash
repo="$(cd "$here/.." && pwd)"
cd "$repo"
certdir="$repo/certs-example/generated"
bin="${PORTCULLIS_BIN:-$repo/.build/release/portcullis}"

# A free TCP port on 127.0.0.1 (the kernel's choice).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready PORT SECONDS: 0 once something accepts PostgreSQL connections on 127.0.0.1:PORT.
# Without PGPASSWORD pg_isready stops at the password request: with it, libpq would log in
# and a pooler would open a server connection (Portcullis: a pool of its own, application_name
# pg_isready) that a benchmark's counts would then include.
wait_ready() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    env -u PGPASSWORD pg_isready -q -h 127.0.0.1 -p "$1" -t 2 && return 0
    sleep 0.2
  done
  return 1
}

# cluster_ticks PGDATA: CPU clock ticks (user + system) the cluster has used: the postmaster's
# own and those of the children it reaped (cutime, cstime), plus every live child's. A backend
# that exits between two readings is counted once, in its parent's cumulative times.
cluster_ticks() {
  local pm live
  pm="$(head -n1 "$1/postmaster.pid" 2>/dev/null)" || { echo 0; return; }
  # Backends come and go while /proc is read: a stat file that vanished after the glob is
  # skipped (awk alone stops at it, and under pipefail that ended a whole make bench).
  # The command name in field 2 may contain spaces: fields are counted after its ")".
  live="$( { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk -v pm="$pm" '{ sub(/^.*\) /, ""); if ($2 == pm) t += $12 + $13 } END { print t + 0 }')"
  echo $((live + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")))
}
