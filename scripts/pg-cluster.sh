#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster with TLS, for the demo, the integration tests and benchmarks.
#
#   scripts/pg-cluster.sh start  DIR PORT [CERTDIR] [CERTNAME]
#   scripts/pg-cluster.sh stop   DIR
#   scripts/pg-cluster.sh status DIR
#
# DIR is the data directory (owned by the `postgres` OS user, since initdb refuses root) and also
# the Unix socket directory; the server log is DIR/log/postgresql.log. CERTDIR (default
# certs-example/generated) provides CERTNAME.crt/.key (default `upstream`) and ca.crt.
# Roles: postgres (superuser, 'postgres_pw'), app_rw ('app_rw_pw', owns database app),
# app_ro ('app_ro_pw', SELECT only on app). `start` on a running cluster re-applies the
# settings with a reload and succeeds. Test settings: fsync=off — never use for real data.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin=/usr/lib/postgresql/15/bin

usage() { echo "usage: $0 start DIR PORT [CERTDIR] [CERTNAME] | stop DIR | status DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd="$1"
dir="$2"
case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

is_running() {
  [ -f "$dir/PG_VERSION" ] && as_postgres "$bin/pg_ctl" status -D "$dir" >/dev/null 2>&1
}

psql_local() { # runs SQL as the superuser over the Unix socket (trust)
  psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"
}

case "$cmd" in
  status)
    if is_running; then echo "pg-cluster: running in $dir"; exit 0; fi
    echo "pg-cluster: not running in $dir"; exit 3
    ;;
  stop)
    if is_running; then
      as_postgres "$bin/pg_ctl" stop -D "$dir" -m fast -w -t 60 >/dev/null
      echo "pg-cluster: stopped $dir"
    else
      echo "pg-cluster: not running in $dir"
    fi
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

[ $# -ge 3 ] || usage
port="$3"
certdir="${4:-$repo/certs-example/generated}"
certname="${5:-upstream}"
certdir="$(cd "$certdir" && pwd)"
for f in "$certname.crt" "$certname.key" ca.crt; do
  [ -s "$certdir/$f" ] || { echo "pg-cluster: missing $certdir/$f (run certs-example/generate.sh)" >&2; exit 1; }
done

mkdir -p "$dir"
chown postgres:postgres "$dir"
chmod 0700 "$dir"
if ! as_postgres test -w "$dir"; then
  echo "pg-cluster: the postgres OS user cannot reach $dir (a parent directory is not traversable);" >&2
  echo "            choose a directory under /tmp or make the parents world-executable" >&2
  exit 1
fi

if [ ! -f "$dir/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  echo postgres_pw >"$pwfile"
  chown postgres "$pwfile"
  as_postgres "$bin/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 ||
    { cat "$dir.initdb.log" >&2; rm -f "$pwfile"; exit 1; }
  rm -f "$pwfile" "$dir.initdb.log"
  echo "include_if_exists = 'portcullis.conf'" >>"$dir/postgresql.conf"
fi

install -o postgres -g postgres -m 0600 "$certdir/$certname.crt" "$dir/server.crt"
install -o postgres -g postgres -m 0600 "$certdir/$certname.key" "$dir/server.key"
install -o postgres -g postgres -m 0600 "$certdir/ca.crt" "$dir/ca.crt"
install -d -o postgres -g postgres -m 0700 "$dir/log"

cat >"$dir/portcullis.conf" <<CONF
# Written by scripts/pg-cluster.sh on every start.
listen_addresses = '127.0.0.1,::1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
fsync = off
synchronous_commit = off
full_page_writes = off
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d/%a '
client_connection_check_interval = 1s
CONF
cat >"$dir/pg_hba.conf" <<HBA
# Written by scripts/pg-cluster.sh on every start.
# TYPE    DATABASE USER ADDRESS       METHOD
local     all      all                trust
hostssl   all      all  127.0.0.1/32  scram-sha-256
hostssl   all      all  ::1/128       scram-sha-256
hostnossl all      all  all           reject
HBA
chown postgres:postgres "$dir/portcullis.conf" "$dir/pg_hba.conf"

if is_running; then
  as_postgres "$bin/pg_ctl" reload -D "$dir" >/dev/null
  echo "pg-cluster: already running in $dir (settings reloaded)"
else
  as_postgres "$bin/pg_ctl" start -D "$dir" -w -t 60 -l "$dir/log/postgresql.log" >/dev/null ||
    { tail -n 30 "$dir/log/postgresql.log" >&2; exit 1; }
  echo "pg-cluster: started in $dir on port $port"
fi

psql_local <<'SQL'
ALTER ROLE postgres PASSWORD 'postgres_pw';
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_rw') THEN
    CREATE ROLE app_rw LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_ro') THEN
    CREATE ROLE app_ro LOGIN;
  END IF;
END
$$;
ALTER ROLE app_rw PASSWORD 'app_rw_pw';
ALTER ROLE app_ro PASSWORD 'app_ro_pw';
SELECT 'CREATE DATABASE app OWNER app_rw' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')
\gexec
SQL
psql_local -d app <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO app_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw IN SCHEMA public GRANT SELECT ON TABLES TO app_ro;
ALTER SCHEMA public OWNER TO app_rw;
SQL
