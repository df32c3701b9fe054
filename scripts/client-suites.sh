#!/usr/bin/env bash
# The psycopg 3 and asyncpg test suites against PostgreSQL 15 directly, through Portcullis in session
# mode and through Portcullis in transaction mode (TLS with verify-full on both legs; a fresh cluster
# for each mode), compared test by test (docs/TRANSACTION_POOLING.md).
#
#   scripts/client-suites.sh [SUITE ...]     SUITE: psycopg | asyncpg (default: both)
#
# Exit status 1 when a test passes directly but not in session mode, or passes in session mode but
# not in transaction mode and is not listed in KNOWN_TX_DIFFERENCES below (each listed with its
# reason in docs/TRANSACTION_POOLING.md), or when the proxy exits during a run. Tests in FLAKY
# (failing now and then directly too) never count.
#
# What is tested, and where it comes from:
# - psycopg: Debian's python3-psycopg (3.1.7, scripts/install-deps.sh) with the tests of the same
#   release. Neither its PyPI sdist nor its wheel ships the tests; they are taken from Debian's
#   source package (`apt-get source psycopg3`), or from PSYCOPG_TESTS, a directory holding a
#   checkout of the psycopg repository at tag 3.1.7 (its tests/ and pyproject.toml). Without either
#   the suite is skipped with a message.
# - asyncpg: 0.32.0 from PyPI (the wheel), its tests from the sdist (`pip download --no-binary`).
#   With PGHOST set its suite uses the running server instead of starting its own (a few tests
#   always start clusters of their own and so never go through the proxy).
# Test tools (pytest 7.2, pytest-asyncio 0.20, pytest-timeout, pproxy, psycopg-pool 3.1.5) go into a
# virtualenv in $SUITES_CACHE (default run/client-suites-cache) that sees the system's psycopg.
# Knobs: PORTCULLIS_BIN (default .build/debug/portcullis), SUITES_OUT (default a new
# /tmp/portcullis-suites.* directory: junit XML, logs), MODES (default "direct session
# transaction"), SUITES_PORT_BASE (default 55600), TX_POOL_SIZE (default 10), TEST_TIMEOUT
# (seconds per test, default 120), SUITES_FULL=1 (psycopg's `slow` and `timing` tests too) or
# PSYCOPG_MARKERS (a pytest -m expression instead of "not slow and not timing").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
portcullis="${PORTCULLIS_BIN:-$repo/.build/debug/portcullis}"
cache="${SUITES_CACHE:-$repo/run/client-suites-cache}"
certdir="$repo/certs-example/generated"
# shellcheck source=scripts/superuser-proxy.sh
. "$here/superuser-proxy.sh"
port_base="${SUITES_PORT_BASE:-55600}"
tx_pool="${TX_POOL_SIZE:-10}"
test_timeout="${TEST_TIMEOUT:-120}"
read -r -a modes <<<"${MODES:-direct session transaction}"
suites=("$@"); [ ${#suites[@]} -gt 0 ] || suites=(psycopg asyncpg)

# Test ids (as in the junit XML: classname::name) that pass in session mode and fail in
# transaction mode for a reason listed in docs/TRANSACTION_POOLING.md (backend PIDs that are not
# the client's, pg_prepared_statements showing the server connection's statements, idle pooled
# connections holding a database, timing). Keep the two lists equal.
KNOWN_TX_DIFFERENCES="${KNOWN_TX_DIFFERENCES:-}
  tests.pool.test_pool::test_broken_reconnect tests.pool.test_pool::test_active_close
  tests.pool.test_pool::test_check tests.pool.test_pool::test_reset_broken
  tests.pool.test_pool_async::test_broken_reconnect tests.pool.test_pool_async::test_active_close
  tests.pool.test_pool_async::test_check tests.pool.test_pool_async::test_reset_broken
  tests.pool.test_null_pool::test_its_no_pool_at_all tests.pool.test_null_pool::test_reset_broken
  tests.pool.test_null_pool::test_broken_reconnect tests.pool.test_null_pool::test_active_close
  tests.pool.test_null_pool_async::test_its_no_pool_at_all tests.pool.test_null_pool_async::test_reset_broken
  tests.pool.test_null_pool_async::test_broken_reconnect tests.pool.test_null_pool_async::test_active_close
  tests.test_listeners.TestListeners::test_listen_01 tests.test_listeners.TestListeners::test_listen_02 tests.test_listeners.TestListeners::test_listen_notletters
  tests.test_pool.TestPool::test_pool_min_size_restored_after_idle_connection_loss
  tests.test_prepared::test_dont_prepare tests.test_prepared::test_evict_lru_deallocate
  tests.test_prepared_async::test_evict_lru_deallocate
  tests.test_pipeline::test_auto_prepare tests.test_pipeline_async::test_auto_prepare
  tests.test_introspection.TestIntrospection::test_introspection_sticks_for_ps
  tests.pool.test_pool::test_max_lifetime tests.pool.test_pool_async::test_max_lifetime
  tests.pool.test_null_pool::test_max_lifetime tests.pool.test_null_pool_async::test_max_lifetime"
# Tests that fail now and then in every mode, directly too (timing; asyncpg's tear-down
# catching a stray connection_lost): never counted against a mode.
FLAKY="${FLAKY:-}
  tests.test_execute.TestExecuteMany::test_executemany_server_failure_during_writes
  tests.test_pool.TestPool::test_pool_config_persistence
  tests.test_pipeline::test_errors_raised_on_commit tests.test_pipeline_async::test_errors_raised_on_commit"

log() { echo "client-suites: $*" >&2; }
[ -x "$portcullis" ] || { log "no $portcullis (swift build first)"; exit 2; }
[ -s "$certdir/ca.crt" ] || { log "no certificates (certs-example/generate.sh $certdir)"; exit 2; }
mkdir -p "$cache"
venv="$cache/venv"
py="$venv/bin/python"

# --- Tools and suites ----------------------------------------------------------------------------
if [ ! -x "$py" ] || ! "$py" -c 'import pytest_asyncio, pytest_timeout, asyncpg, psycopg_pool' 2>/dev/null; then
  log "making the virtualenv in $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q "pytest==7.2.0" "pytest-asyncio==0.20.3" "pytest-timeout==2.1.0" \
    "pproxy==2.7.8" "psycopg-pool==3.1.5" "asyncpg==0.32.0" >&2
fi
psycopg_version="$("$py" -c 'import psycopg; print(psycopg.__version__)')"

suite_dir() { # SUITE -> directory with tests/ (and pyproject.toml for psycopg), or empty
  case "$1" in
    asyncpg)
      local d="$cache/asyncpg-0.32.0"
      if [ ! -d "$d/tests" ]; then
        (cd "$cache" && pip download -q --no-deps --no-binary asyncpg "asyncpg==0.32.0" -d sdist) >&2
        rm -rf "$d.tmp"; mkdir -p "$d.tmp"
        tar xzf "$cache/sdist/asyncpg-0.32.0.tar.gz" -C "$d.tmp"
        mkdir -p "$d"; mv "$d.tmp/asyncpg-0.32.0/tests" "$d/tests"; rm -rf "$d.tmp"
      fi
      echo "$d" ;;
    psycopg)
      if [ -n "${PSYCOPG_TESTS:-}" ]; then
        [ -d "$PSYCOPG_TESTS/tests" ] && echo "$PSYCOPG_TESTS"
        return 0
      fi
      local d="$cache/psycopg-$psycopg_version"
      if [ ! -d "$d/tests" ]; then
        rm -rf "$cache/deb-src"; mkdir -p "$cache/deb-src"
        if (cd "$cache/deb-src" && apt-get source -qq --download-only psycopg3) >&2 2>&1; then
          local t; t="$(compgen -G "$cache/deb-src/psycopg3_*.orig.tar.*" | head -n1)"
          mkdir -p "$d"; tar xf "$t" -C "$d" --strip-components=1 --wildcards '*/tests' '*/pyproject.toml'
        else
          log "psycopg: its tests are in no PyPI file, and Debian's source package (psycopg3) could not be fetched;"
          log "         set PSYCOPG_TESTS to a checkout of the psycopg repository at tag $psycopg_version"
          return 0
        fi
      fi
      echo "$d" ;;
  esac
}

out="${SUITES_OUT:-$(mktemp -d /tmp/portcullis-suites.XXXXXX)}"
mkdir -p "$out"; chmod 0755 "$out"

proxy_pid=""
pgdir=""
suite_pid=""
cleanup() {
  [ -n "$suite_pid" ] && kill "$suite_pid" 2>/dev/null || true
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null || true
  [ -n "$pgdir" ] && "$here/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

run_suite() { # SUITE MODE PORT
  local suite="$1" mode="$2" port="$3" dir
  dir="$(suite_dir "$suite")"
  [ -n "$dir" ] || { echo "skipped" >"$out/$suite-$mode.status"; return 0; }
  local dsn="host=127.0.0.1 port=$port user=postgres password=postgres_pw dbname=${suite}_test sslmode=verify-full sslrootcert=$certdir/ca.crt"
  log "$suite, $mode: running on port $port"
  local started=$SECONDS
  # -p no:randomly: the same order in every mode. Each run has its own cache directory (psycopg's
  # conftest keeps a crash marker there). pytest runs in the background so that a signal reaches
  # this shell's trap at once.
  local select=()
  [ "$suite" = psycopg ] && [ "${SUITES_FULL:-0}" != 1 ] && select=(-m "${PSYCOPG_MARKERS:-not slow and not timing}")
  (cd "$dir" && exec env PSYCOPG_TEST_DSN="$dsn" \
     PGHOST=127.0.0.1 PGPORT="$port" PGUSER=postgres PGPASSWORD=postgres_pw PGDATABASE="${suite}_test" \
     PGSSLMODE=verify-full PGSSLROOTCERT="$certdir/ca.crt" \
     timeout 3000 "$py" -m pytest -q -p no:randomly -o cache_dir="$out/.pytest-cache-$suite-$mode" \
       "${select[@]}" --timeout="$test_timeout" --junitxml="$out/$suite-$mode.xml" -rfE tests) \
    >"$out/$suite-$mode.log" 2>&1 &
  suite_pid=$!
  wait "$suite_pid" || true
  suite_pid=""
  echo "$((SECONDS - started))" >"$out/$suite-$mode.seconds"
  tail -n 1 "$out/$suite-$mode.log" >&2
}

run_mode() {
  local mode="$1" n="$2"
  local pg_port=$((port_base + 2 * n)) proxy_port=$((port_base + 2 * n + 1))
  pgdir="$out/$mode-pgdata"
  rm -rf "$pgdir"
  "$here/pg-cluster.sh" start "$pgdir" "$pg_port" "$certdir" >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pg_port" -U postgres -d postgres \
    -c 'CREATE DATABASE psycopg_test' -c 'CREATE DATABASE asyncpg_test'
  local port="$pg_port"
  if [ "$mode" != direct ]; then
    local pool_size=60
    [ "$mode" = transaction ] && pool_size="$tx_pool"
    start_superuser_proxy "$out/$mode.ini" "$out/$mode-portcullis.log" "$mode" "$pgdir" "$pg_port" "$proxy_port" "$pool_size" 60s
    port="$proxy_port"
  fi
  for suite in "${suites[@]}"; do run_suite "$suite" "$mode" "$port"; done
  [ "$mode" = direct ] || stop_superuser_proxy "$mode"
  "$here/pg-cluster.sh" stop "$pgdir" >/dev/null
  pgdir=""
}

# The modes run side by side, each with its own cluster and proxy: much of the suites' time is
# spent waiting (pool and timeout tests sleep), so this costs little more than the slowest mode.
# SUITES_VERDICT_ONLY=1 with SUITES_OUT of an earlier run only compares its results again.
[ "${SUITES_VERDICT_ONLY:-0}" = 1 ] && modes_to_run=() || modes_to_run=("${modes[@]}")
for mode in "${modes_to_run[@]}"; do
  case "$mode" in direct|session|transaction) ;; *) log "unknown mode $mode"; exit 2 ;; esac
done
# Make the virtualenv's and the suites' downloads once, before the modes start.
[ ${#modes_to_run[@]} -eq 0 ] || for suite in "${suites[@]}"; do suite_dir "$suite" >/dev/null; done
mode_pids=()
trap 'for p in "${mode_pids[@]}"; do kill "$p" 2>/dev/null; done; cleanup' EXIT
n=0
for mode in "${modes_to_run[@]}"; do
  ( trap cleanup EXIT; trap 'exit 143' TERM INT; run_mode "$mode" "$n" ) &
  mode_pids+=($!)
  n=$((n + 1))
done
for p in "${mode_pids[@]}"; do wait "$p" || true; done
mode_pids=()

# --- Verdict: per-test outcomes from the junit XML -----------------------------------------------
status=0
for mode in "${modes[@]}"; do [ -f "$out/$mode.proxy-exit" ] && status=1; done
"$py" - "$out" "$KNOWN_TX_DIFFERENCES" "$FLAKY" "${modes[*]}" "${suites[*]}" <<'PY' || status=1
import sys, os, xml.etree.ElementTree as ET
out, known, flaky = sys.argv[1], set(sys.argv[2].split()), set(sys.argv[3].split())
modes, suites = sys.argv[4].split(), sys.argv[5].split()

def outcomes(path):
    res = {}
    for case in ET.parse(path).iter("testcase"):
        tid = f'{case.get("classname")}::{case.get("name")}'
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                kind = "failed"
            elif child.tag == "skipped" and kind == "passed":
                kind = "skipped"
        res[tid] = kind
    return res

bad = False
print("| suite | mode | passed | failed/error | skipped | seconds |")
print("|---|---|---|---|---|---|")
results = {}
for suite in suites:
    for mode in modes:
        xml = os.path.join(out, f"{suite}-{mode}.xml")
        if not os.path.exists(xml):
            print(f"| {suite} | {mode} | not run | | | |")
            continue
        r = results[(suite, mode)] = outcomes(xml)
        secs = open(os.path.join(out, f"{suite}-{mode}.seconds")).read().strip()
        count = lambda k: sum(1 for v in r.values() if v == k)
        print(f"| {suite} | {mode} | {count('passed')} | {count('failed')} | {count('skipped')} | {secs} |")
for suite in suites:
    for base, mode in (("direct", "session"), ("session", "transaction")):
        a, b = results.get((suite, base)), results.get((suite, mode))
        if a is None or b is None:
            continue
        worse = sorted(t for t, k in a.items() if k == "passed" and b.get(t, "missing") != "passed")
        print(f"{suite}: passing in {base} mode, not in {mode} mode: {len(worse) or 'none'}")
        for t in worse:
            if t in flaky:
                print(f"  {t} ({b.get(t, 'missing')}): flaky in every mode (docs/TRANSACTION_POOLING.md)")
                continue
            listed = mode == "transaction" and t in known
            print(f"  {t} ({b.get(t, 'missing')}){': listed in docs/TRANSACTION_POOLING.md' if listed else ''}")
            bad = bad or not listed
        better = sorted(t for t, k in b.items() if k == "passed" and a.get(t) != "passed")
        if better:
            print(f"  (passing in {mode} mode, not in {base} mode: {', '.join(better)})")
sys.exit(1 if bad else 0)
PY
echo "client-suites: output in $out"
exit $status
