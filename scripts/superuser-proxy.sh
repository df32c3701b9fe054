# Sourced by pg-regress.sh and client-suites.sh (not run on its own): a Portcullis in front of
# a test cluster that admits the cluster's superuser `postgres` (read-write, SCRAM-SHA-256 with
# the server's own verifier, TLS verify-full to the server) in one pool mode, as the client
# suites need it.
#
#   start_superuser_proxy CONFIG LOG MODE PGDIR PG_PORT PROXY_PORT POOL_SIZE WAIT_TIMEOUT
#
# Uses $portcullis (the binary) and $certdir; sets proxy_pid; returns once a psql through the
# proxy answers (or after 10 s, for the caller's own check of proxy_pid to report).
start_superuser_proxy() {
  local config="$1" logfile="$2" mode="$3" pgdir="$4" pg_port="$5" proxy_port="$6" pool_size="$7" wait_timeout="$8"
  local verifier
  verifier="$(psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres \
                -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")"
  umask 077
  cat >"$config" <<INI
[portcullis]
listen_addresses = 127.0.0.1
listen_port = $proxy_port
host_auth_method = scram-sha-256
local_auth_method = reject
log_level = info
pool_mode = $mode
pool_max_size = $pool_size
pool_wait_timeout = $wait_timeout

[tls]
client_tls = require
client_tls_cert_file = $certdir/server.crt
client_tls_key_file = $certdir/server.key

[databases]
* = host=127.0.0.1 port=$pg_port sslmode=verify-full sslrootcert=$certdir/ca.crt

[identities]
postgres = mode=read-write password='$verifier' server_user=postgres server_password='postgres_pw'
INI
  umask 022
  "$portcullis" run --config "$config" >"$logfile" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 100); do
    PGPASSWORD=postgres_pw PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt" \
      psql -X -q -h 127.0.0.1 -p "$proxy_port" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
}
