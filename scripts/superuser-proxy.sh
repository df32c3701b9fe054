# Sourced by pg-regress.sh and client-suites.sh (not run on its own): a Portcullis in front of
# a test cluster that admits the cluster's superuser `postgres` (read-write, SCRAM-SHA-256 with
# the server's own verifier, TLS verify-full to the server) in one pool mode, as the client
# suites need it.
#
#   start_superuser_proxy CONFIG LOG MODE PGDIR PG_PORT PROXY_PORT POOL_SIZE WAIT_TIMEOUT [EXTRA]
#
# EXTRA: more lines for the [portcullis] section (settings that differ from the defaults).
#   stop_superuser_proxy MODE
#
# Uses $portcullis (the binary), $certdir, $out and the caller's log(); start sets proxy_pid
# and returns once a psql through the proxy answers (or after 10 s: the stop reports a proxy
# that is not running).
start_superuser_proxy() {
  local config="$1" logfile="$2" mode="$3" pgdir="$4" pg_port="$5" proxy_port="$6" pool_size="$7" wait_timeout="$8"
  local extra="${9:-}"
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
$extra

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

# stop_superuser_proxy MODE: notes in $out/MODE.proxy-exit when the proxy had exited on its own
# during the run (a crash the suites' results alone might not show), then stops it.
stop_superuser_proxy() {
  local mode="$1"
  if ! kill -0 "$proxy_pid" 2>/dev/null; then
    log "$mode: PORTCULLIS EXITED during the run (see $out/$mode-portcullis.log)"
    echo exited >"$out/$mode.proxy-exit"
  fi
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=""
}
