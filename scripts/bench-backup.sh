#!/usr/bin/env bash
# The backup benchmark (called by scripts/bench.sh, or alone): `portcullis backup run`
# through a running Portcullis against plain tooling straight to PostgreSQL over TLS,
#   pg_dump -Fc -Z 0 | zstd -3 | openssl enc -aes-256-ctr
# on the same data at two sizes (about 40 MB and 200 MB of dump), with wall time,
# throughput and peak RSS (/usr/bin/time -v), and the peak RSS of `backup restore`.
# Prints a Markdown section on stdout (bench.sh appends it to docs/BENCHMARKS.md);
# progress goes to stderr.
#
# Environment: BENCH_BACKUP_HOP (internal, the default: pg_dump reaches the proxy through
# its internal endpoint, the 0600 Unix socket of `internal_socket_directory`, as a deployment
# following docs/BACKUP.md does; tls: over TCP with sslmode=verify-full to listen_port),
# PORTCULLIS_BIN (default: the release build), BENCH_BACKUP_ROWS (default
# "400000 2000000": rows of the table, ~44 and ~225 MiB of dump), BENCH_BACKUP_ROUNDS
# (default 3; runs alternate plain, portcullis, plain, ...), BENCH_BACKUP_JOBS (default 2;
# empty = skip): the directory format, `backup run --format directory --jobs N` against
# `pg_dump -Fd -j N -Z 0` then each file through the same zstd | openssl, BENCH_BACKUP_PARTS
# (default "custom directory"; either alone measures only that table).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/bench-common.sh"
sizes="${BENCH_BACKUP_ROWS:-400000 2000000}"
rounds="${BENCH_BACKUP_ROUNDS:-3}"
hop="${BENCH_BACKUP_HOP:-internal}"
jobs="${BENCH_BACKUP_JOBS-2}"
parts="${BENCH_BACKUP_PARTS:-custom directory}"
[ -n "$jobs" ] || parts="${parts//directory/}"
has_part() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log() { echo "bench-backup: $*" >&2; }

if [ ! -x "$bin" ]; then
  echo "## Backups"; echo; echo "Not measured: no Portcullis binary at \`${bin#"$repo"/}\`."; exit 0
fi
for tool in zstd openssl pg_dump pg_restore /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "## Backups"; echo; echo "Not measured: $tool is missing."; exit 0; }
done

now() { date +%s.%N; }
# Peak RSS in kB from a /usr/bin/time -v report: the largest single process of what it ran
# and waited for (getrusage RUSAGE_CHILDREN), i.e. max over pg_dump/zstd/openssl for the
# pipeline, over portcullis and its pg_dump for ours.
peak_rss() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

tmp="$(mktemp -d /tmp/portcullis-bench-backup.XXXXXX)"
chmod 0755 "$tmp"
pgdir="$tmp/pg"
pg_port="$(free_port)"
proxy_port="$(free_port)"
proxy_pid=""
cleanup() {
  set +e
  if [ -n "$proxy_pid" ]; then
    kill -TERM "$proxy_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$proxy_pid" 2>/dev/null
  fi
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

"$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >&2
su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pg_port" -U postgres "$@"; }
su_psql -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bk_ro') THEN CREATE ROLE bk_ro LOGIN PASSWORD 'bk_ro_pw'; END IF; END \$\$; GRANT pg_read_all_data TO bk_ro;" >&2
verifier="$(psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d postgres -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bk_ro'")"

# Portcullis with a [backup] section; pg_dump reaches it over TCP with verify-full, as the
# read-only identity, and it reaches PostgreSQL with verify-full.
"$bin" keygen --output "$tmp/secret.key" >/dev/null
PORTCULLIS_EXTRA="secret_key_file = $tmp/secret.key" \
  "$here/proxy-config.sh" "$tmp/portcullis.ini" "$pgdir" "$pg_port" "$proxy_port" "$certdir" >/dev/null
upstream="host=127.0.0.1 port=$pg_port sslmode=verify-full sslrootcert=$certdir/ca.crt"
{
  echo "bk_ro = mode=read-only password='$verifier' server_user=bk_ro server_password='bk_ro_pw'"
  echo
  echo "[backup]"
  echo "directory = $tmp/store"
  echo "identity = bk_ro"
  echo "password = bk_ro_pw"
  if [ "$hop" = tls ]; then
    echo "host = localhost"
  else
    echo "internal_socket_directory = $tmp/internal"
  fi
  echo "compression_level = 3"
} >>"$tmp/portcullis.ini"
# The [databases] entries for the bench databases go before [identities].
for rows in $sizes; do
  sed -i "/^\[identities\]/i bench_$rows = $upstream dbname=bench_$rows" "$tmp/portcullis.ini"
done
"$bin" run --config "$tmp/portcullis.ini" 2>"$tmp/portcullis.stderr" >/dev/null &
proxy_pid=$!
if ! wait_ready "$proxy_port" 30 || ! kill -0 "$proxy_pid" 2>/dev/null; then
  echo "## Backups"; echo; echo "Not measured: Portcullis did not start: $(tail -n 3 "$tmp/portcullis.stderr" | tr '\n' ' ')"; exit 0
fi

declare -A dump_mib plain_s ours_s plain_rss ours_rss restore_rss restore_s ours_runs plain_runs
declare -A dplain_s dours_s dplain_rss dours_rss dplain_runs dours_runs
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for rows in $sizes; do
  db="bench_$rows"
  log "creating $db ($rows rows)"
  su_psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >&2
  su_psql -d "$db" -c "CREATE TABLE t (id bigint PRIMARY KEY, a text, b text);
    INSERT INTO t SELECT g, md5(g::text) || md5((g * 3)::text), md5((g * 7)::text) || ' ' || g FROM generate_series(1, $rows) g;" \
    -c "VACUUM ANALYZE t" >&2
  direct="host=localhost port=$pg_port dbname=$db user=bk_ro sslmode=verify-full sslrootcert=$certdir/ca.crt"
  dump_mib[$rows]="$(psql -X -A -t -h "$pgdir" -p "$pg_port" -U postgres -d "$db" -c "SELECT round(pg_table_size('t') / 1048576.0)")"
  if has_part directory; then
    dplain_list=(); dours_list=()
    for round in $(seq 1 "$rounds"); do
      log "$db round $round: plain tooling, directory format, $jobs jobs"
      rm -rf "$tmp/plaindir"
      start="$(now)"
      PGPASSWORD=bk_ro_pw /usr/bin/time -v -o "$tmp/dplain.time" bash -o pipefail -c \
        "pg_dump -Fd -j $jobs -Z 0 -w --no-sync -f $tmp/plaindir -d '$direct' && for f in $tmp/plaindir/*; do zstd -3 -q -c \"\$f\" | openssl enc -aes-256-ctr -pbkdf2 -pass file:$tmp/secret.key > \"\$f.enc\" && rm \"\$f\" || exit 1; done"
      dplain_list+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
      dplain_rss[$rows]="$(peak_rss "$tmp/dplain.time")"
      rm -rf "$tmp/plaindir"

      log "$db round $round: portcullis backup run --format directory --jobs $jobs"
      start="$(now)"
      /usr/bin/time -v -o "$tmp/dours.time" "$bin" backup run --database "$db" --format directory --jobs "$jobs" --config "$tmp/portcullis.ini" \
        >"$tmp/dours.out" 2>"$tmp/dours.err" || { cat "$tmp/dours.err" >&2; dours_list+=("failed"); continue; }
      dours_list+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
      dours_rss[$rows]="$(peak_rss "$tmp/dours.time")"
      did="$(awk '{print $2}' "$tmp/dours.out")"
      dump_mib[$rows]="$(sed -n 's/.*"plaintext_bytes": \([0-9]*\).*/\1/p' "$tmp/store/$did.json" | head -n 1 | awk '{ printf "%.0f", $1 / 1048576 }')"
      rm -rf "$tmp/store/$did" "$tmp/store/$did".*
    done
    dplain_s[$rows]="$(median "${dplain_list[@]}")"
    dours_s[$rows]="$(median "${dours_list[@]}")"
    dplain_runs[$rows]="${dplain_list[*]}"
    dours_runs[$rows]="${dours_list[*]}"
  fi
  has_part custom || { su_psql -d postgres -c "DROP DATABASE $db" >&2; continue; }
  plain_list=(); ours_list=()
  for round in $(seq 1 "$rounds"); do
    log "$db round $round: plain tooling"
    start="$(now)"
    PGPASSWORD=bk_ro_pw /usr/bin/time -v -o "$tmp/plain.time" bash -o pipefail -c \
      "pg_dump -Fc -Z 0 -w -d '$direct' | zstd -3 -q -c | openssl enc -aes-256-ctr -pbkdf2 -pass file:$tmp/secret.key > $tmp/plain.out"
    plain_list+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
    plain_rss[$rows]="$(peak_rss "$tmp/plain.time")"
    rm -f "$tmp/plain.out"

    log "$db round $round: portcullis backup run"
    start="$(now)"
    /usr/bin/time -v -o "$tmp/ours.time" "$bin" backup run --database "$db" --config "$tmp/portcullis.ini" >"$tmp/ours.out" 2>"$tmp/ours.err" \
      || { cat "$tmp/ours.err" >&2; echo "## Backups"; echo; echo "Not measured: backup run failed: $(tail -n 2 "$tmp/ours.err" | tr '\n' ' ')"; exit 0; }
    ours_list+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
    ours_rss[$rows]="$(peak_rss "$tmp/ours.time")"
    id="$(awk '{print $2}' "$tmp/ours.out")"
  done
  plaintext="$(sed -n 's/.*"plaintext_bytes": \([0-9]*\).*/\1/p' "$tmp/store/$id.json")"
  dump_mib[$rows]="$(awk -v b="$plaintext" 'BEGIN { printf "%.0f", b / 1048576 }')"
  plain_s[$rows]="$(median "${plain_list[@]}")"
  ours_s[$rows]="$(median "${ours_list[@]}")"
  plain_runs[$rows]="${plain_list[*]}"
  ours_runs[$rows]="${ours_list[*]}"

  log "$db: portcullis backup restore"
  su_psql -d postgres -c "DROP DATABASE IF EXISTS ${db}_r" -c "CREATE DATABASE ${db}_r" >&2
  start="$(now)"
  PGPASSWORD=postgres_pw /usr/bin/time -v -o "$tmp/restore.time" "$bin" backup restore "$id" --config "$tmp/portcullis.ini" \
    --target "host=$pgdir port=$pg_port dbname=${db}_r user=postgres" >/dev/null 2>"$tmp/restore.err" \
    || { cat "$tmp/restore.err" >&2; restore_rss[$rows]="failed"; }
  restore_s[$rows]="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
  [ "${restore_rss[$rows]:-}" = failed ] || restore_rss[$rows]="$(peak_rss "$tmp/restore.time")"
  su_psql -d postgres -c "DROP DATABASE IF EXISTS ${db}_r" -c "DROP DATABASE $db" >&2
  rm -f "$tmp"/store/*.pcbk
done

echo "## Backups"
echo
if has_part custom; then
if [ "$hop" = tls ]; then
  echo "\`portcullis backup run\` (pg_dump through the running Portcullis over TLS as a read-only identity,"
else
  echo "\`portcullis backup run\` (pg_dump through the running Portcullis's internal endpoint, its 0600 Unix socket, as a read-only identity; TLS verify-full from the proxy to PostgreSQL;"
fi
echo "then zstd level 3 and AES-256-GCM in 1 MiB chunks into the local store, fsynced) against plain"
echo "tooling straight to PostgreSQL over TLS: \`pg_dump -Fc -Z 0 | zstd -3 | openssl enc -aes-256-ctr\`."
echo "One table of md5 text (\`id bigint, a text, b text\`); $rounds runs each, alternating; the time is the"
echo "median wall time including process and connection start (all runs listed). Peak RSS: \`/usr/bin/time -v\`,"
echo "the largest single process (for the pipeline the largest of pg_dump, zstd and openssl; for ours"
echo "portcullis or its pg_dump child). The restore is \`backup restore\` into a new database (one transaction)."
echo "Generated by scripts/bench-backup.sh on $(date -u '+%Y-%m-%d %H:%M UTC'), binary \`${bin#"$repo"/}\`, $(nproc) cores."
echo
echo "| dump | plain tooling | \`backup run\` | plain / ours (target ≥ 0.9) | throughput ours | peak RSS plain | peak RSS run | peak RSS restore (time) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for rows in $sizes; do
  ratio="$(awk -v p="${plain_s[$rows]}" -v o="${ours_s[$rows]}" 'BEGIN { if (o > 0) printf "%.2f", p / o; else print "n/a" }')"
  rate="$(awk -v m="${dump_mib[$rows]}" -v o="${ours_s[$rows]}" 'BEGIN { if (o > 0) printf "%.0f MiB/s", m / o; else print "n/a" }')"
  printf '| %s MiB | %s s (%s) | %s s (%s) | %s | %s | %s MB | %s MB | %s MB (%s s) |\n' \
    "${dump_mib[$rows]}" "${plain_s[$rows]}" "${plain_runs[$rows]// /, }" "${ours_s[$rows]}" "${ours_runs[$rows]// /, }" \
    "$ratio" "$rate" "$(( ${plain_rss[$rows]:-0} / 1000 ))" "$(( ${ours_rss[$rows]:-0} / 1000 ))" \
    "$([ "${restore_rss[$rows]}" = failed ] && echo failed || echo $(( ${restore_rss[$rows]:-0} / 1000 )))" "${restore_s[$rows]}"
done
echo
echo "Peak RSS of \`backup run\` and \`backup restore\` should not grow with the dump: the dump is streamed"
echo "(1 MiB pieces in bounded hand-offs between the reading, compressing and sealing threads, zstd's"
echo "window, one 1 MiB encryption chunk), never whole in memory or on disk."
fi
if has_part directory; then
echo
echo "### Directory format, $jobs jobs"
echo
echo "\`backup run --format directory --jobs $jobs\` (pg_dump -Fd -j $jobs through the proxy; each file followed as"
echo "pg_dump writes it, compressed and encrypted into its own stored file) against plain tooling straight to"
echo "PostgreSQL: \`pg_dump -Fd -j $jobs -Z 0\`, then each file through \`zstd -3 | openssl enc -aes-256-ctr\`"
echo "(which, unlike ours, keeps the whole plaintext dump on disk until then). The same data as above: one"
echo "table, so pg_dump's jobs cannot split it and -j buys nothing here. $rounds runs each, alternating; medians."
echo
echo "| dump | plain tooling | \`backup run --format directory\` | plain / ours | throughput ours | peak RSS plain | peak RSS ours |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for rows in $sizes; do
  ratio="$(awk -v p="${dplain_s[$rows]}" -v o="${dours_s[$rows]}" 'BEGIN { if (o > 0) printf "%.2f", p / o; else print "n/a" }')"
  rate="$(awk -v m="${dump_mib[$rows]}" -v o="${dours_s[$rows]}" 'BEGIN { if (o > 0) printf "%.0f MiB/s", m / o; else print "n/a" }')"
  printf '| %s MiB | %s s (%s) | %s s (%s) | %s | %s | %s MB | %s MB |\n' \
    "${dump_mib[$rows]}" "${dplain_s[$rows]}" "${dplain_runs[$rows]// /, }" "${dours_s[$rows]}" "${dours_runs[$rows]// /, }" \
    "$ratio" "$rate" "$(( ${dplain_rss[$rows]:-0} / 1000 ))" "$(( ${dours_rss[$rows]:-0} / 1000 ))"
done
fi
