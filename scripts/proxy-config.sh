#!/usr/bin/env bash
# Writes a portcullis config that fronts a cluster made by scripts/pg-cluster.sh.
#
#   scripts/proxy-config.sh OUTFILE PGDIR PGPORT PROXYPORT [CERTDIR]
#
# The client-side SCRAM verifiers are read from the cluster's own pg_authid (over the Unix
# socket, as postgres), so a client uses the same password for app_rw/app_ro on both legs.
# Extra `[portcullis]` settings can be passed as KEY=VALUE lines in PORTCULLIS_EXTRA.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
[ $# -ge 4 ] || { echo "usage: $0 OUTFILE PGDIR PGPORT PROXYPORT [CERTDIR]" >&2; exit 2; }
out="$1"; pgdir="$2"; pgport="$3"; proxyport="$4"
certdir="$(cd "${5:-$repo/certs-example/generated}" && pwd)"

verifier() {
  local v
  v="$(psql -X -A -t -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pgport" -U postgres -d postgres \
        -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$1'")"
  case "$v" in
    SCRAM-SHA-256\$*) printf '%s' "$v" ;;
    *) echo "proxy-config: role $1 has no SCRAM verifier" >&2; exit 1 ;;
  esac
}
rw="$(verifier app_rw)"
ro="$(verifier app_ro)"
upstream="host=127.0.0.1 port=$pgport sslmode=verify-full sslrootcert=$certdir/ca.crt"

mkdir -p "$(dirname "$out")"
umask 077
cat >"$out" <<INI
; Written by scripts/proxy-config.sh — development settings.
[portcullis]
listen_addresses = 127.0.0.1, ::1
listen_port = $proxyport
login_timeout = 60s
local_auth_method = trust
host_auth_method = scram-sha-256
log_level = info
${PORTCULLIS_EXTRA:-}

[tls]
client_tls = require
client_tls_cert_file = $certdir/server.crt
client_tls_key_file = $certdir/server.key
client_tls_ca_file = $certdir/ca.crt

[databases]
app = $upstream dbname=app
postgres = $upstream dbname=postgres

[identities]
app_rw = mode=read-write password='$rw' server_user=app_rw server_password='app_rw_pw'
app_ro = mode=read-only password='$ro' server_user=app_ro server_password='app_ro_pw'
INI
echo "proxy-config: wrote $out (listen port $proxyport -> PostgreSQL port $pgport)"
