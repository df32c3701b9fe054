#!/usr/bin/env bash
# Stops whatever a test process left behind (normally the harness cleans up at exit; this
# catches a test process that was killed). Harness temp dirs are /tmp/portcullis-it.*,
# each with owner.pid naming the test process; roots whose owner is still alive are left
# alone so concurrent test runs do not stop each other's clusters.
# Clusters are ROOT/*/PG_VERSION, proxies write ROOT/*/portcullis.pid.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shopt -s nullglob
for root in "${TMPDIR:-/tmp}"/portcullis-it.*; do
  owner="$(cat "$root/owner.pid" 2>/dev/null)"
  if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
  for pidfile in "$root"/*/portcullis.pid; do
    pid="$(cat "$pidfile" 2>/dev/null)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
  done
  for version in "$root"/*/PG_VERSION; do
    "$here/pg-cluster.sh" stop "$(dirname "$version")" >/dev/null 2>&1
  done
  rm -rf "$root"
done
# systemd containers of the unit tests (SystemdUnitTests) whose test process is gone.
if [ -d /run/portcullis-systemd ]; then "$here/systemd-container.sh" stop-orphans >/dev/null 2>&1; fi
exit 0
