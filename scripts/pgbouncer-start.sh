#!/usr/bin/env bash
# PgBouncer for the benchmarks (bench.sh, bench-profile.sh): session mode, TLS on both legs
# (verify-full to the server), SCRAM for app_rw, as the benchmarks compare it with Portcullis.
#
#   scripts/pgbouncer-start.sh DIR PG_PORT LISTEN_PORT LISTEN_ADDR CERTDIR
#
# PgBouncer refuses to run as root; it runs as postgres from files postgres owns in DIR
# (created 0700), daemonised, its pid in DIR/pgbouncer.pid. Exits once it accepts
# connections, or 1 with the end of its log.
set -euo pipefail
bdir="$1" pg_port="$2" bouncer_port="$3" listen_addr="$4" certdir="$5"
install -d -o postgres -g postgres -m 0700 "$bdir"
install -o postgres -g postgres -m 0600 "$certdir/server.crt" "$certdir/server.key" "$certdir/ca.crt" "$bdir/"
printf '"app_rw" "app_rw_pw"\n' >"$bdir/userlist.txt"
cat >"$bdir/pgbouncer.ini" <<INI
[databases]
app = host=localhost port=$pg_port dbname=app
[pgbouncer]
listen_addr = $listen_addr
listen_port = $bouncer_port
unix_socket_dir = $bdir
pidfile = $bdir/pgbouncer.pid
logfile = $bdir/pgbouncer.log
auth_type = scram-sha-256
auth_file = $bdir/userlist.txt
pool_mode = session
max_client_conn = 300
default_pool_size = 100
client_tls_sslmode = require
client_tls_cert_file = $bdir/server.crt
client_tls_key_file = $bdir/server.key
client_tls_ca_file = $bdir/ca.crt
server_tls_sslmode = verify-full
server_tls_ca_file = $bdir/ca.crt
INI
chown postgres:postgres "$bdir/userlist.txt" "$bdir/pgbouncer.ini"
chmod 0600 "$bdir/userlist.txt"
runuser -u postgres -- pgbouncer -d "$bdir/pgbouncer.ini"
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p "$bouncer_port" -t 2 && exit 0
  sleep 0.2
done
tail -n 5 "$bdir/pgbouncer.log" >&2
echo "pgbouncer did not start" >&2
exit 1
