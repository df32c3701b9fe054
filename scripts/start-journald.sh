#!/usr/bin/env bash
# Starts systemd-journald for the audit tests when none is running (as root; these machines
# have no systemd as PID 1). Idempotent: a running journald is left alone.
set -euo pipefail
# Running means: the socket takes a connection. A journald process alone is not enough: one in
# another mount namespace (a systemd container of another test) leaves this /run's socket
# without a listener, and every send gets ECONNREFUSED.
journal_listens() {
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.connect("/run/systemd/journal/socket")
except OSError:
    sys.exit(1)' 2>/dev/null
}
if [ -S /run/systemd/journal/socket ] && journal_listens; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start-journald: not root; audit tests that need journald will fail" >&2
  exit 1
fi
mkdir -p /run/systemd/journal
rm -f /run/systemd/journal/socket /run/systemd/journal/stdout /run/systemd/journal/dev-log
setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 50); do
  [ -S /run/systemd/journal/socket ] && journal_listens && exit 0
  sleep 0.1
done
echo "start-journald: journald did not come up" >&2
exit 1
