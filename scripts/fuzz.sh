#!/usr/bin/env bash
# Fuzzing (docs/FUZZING.md): the libFuzzer targets of Fuzz/ and the network fuzzer.
#
#   scripts/fuzz.sh short [TARGET...]   bounded run for `make test` (FUZZ_SECONDS default 20 each)
#   scripts/fuzz.sh long  [TARGET...]   `make fuzz` (FUZZ_SECONDS default 300 each)
#   scripts/fuzz.sh build               only build the fuzz targets
#
# TARGET is startup, frames, scram, access, config, classifier or net (default: all).
# Environment:
#   FUZZ_SECONDS      seconds per libFuzzer target
#   FUZZ_NET_SECONDS  seconds for the network fuzzer (short: 40, long: FUZZ_SECONDS)
#   FUZZ_ASAN=0       build without AddressSanitizer (faster, catches less)
#   FUZZ_MAX_LEN      libFuzzer -max_len (default 4096)
#   FUZZ_SEED         seed for the network fuzzer (default: time)
#   FUZZ_NET_REPLAY   a saved netfuzz-*.jsonl: replay it instead of fuzzing
#   FUZZ_NET_SKIP     round kinds the network fuzzer leaves out (preauth,flood)
#
# Crashes fail the run and stay in Fuzz/.work/crashes/<target>/ (libFuzzer's crash-*, leak-*,
# timeout-*, oom-* files; the network fuzzer's netfuzz-*.jsonl). The corpus a run grows goes to
# Fuzz/.work/corpus/<target>/ (git-ignored); the committed seeds in Fuzz/Corpus/<target>/ are
# only read. A summary with executions per target is in Fuzz/.work/summary.txt.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export PATH="$PATH:/opt/swift/usr/bin"
mode="${1:-short}"; shift || true
all_targets=(startup frames scram access config classifier)
case "$mode" in
  short) seconds="${FUZZ_SECONDS:-20}"; net_seconds="${FUZZ_NET_SECONDS:-40}" ;;
  long)  seconds="${FUZZ_SECONDS:-300}"; net_seconds="${FUZZ_NET_SECONDS:-$seconds}" ;;
  build) seconds=0; net_seconds=0 ;;
  *) echo "usage: $0 short|long|build [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}" net)

work="$repo/Fuzz/.work"
mkdir -p "$work"
summary="$work/summary.txt"
: >"$summary"

# Swift's own crash backtracer would take the signal before libFuzzer's handler, which is what
# writes the crashing input to disk.
export SWIFT_BACKTRACE=enable=no
sanitizers=(--sanitize=fuzzer)
scratch="$repo/Fuzz/.build/fuzzer"
if [ "${FUZZ_ASAN:-1}" != 0 ]; then
  # SwiftPM passes `-sanitize=fuzzer -sanitize=address` to swiftc, which keeps only the last
  # one for compiling (no coverage instrumentation: libFuzzer would fuzz blind). The combined
  # flag after them wins; the two --sanitize options still make the link pull in both runtimes
  # and compile the C targets with AddressSanitizer.
  sanitizers+=(--sanitize=address -Xswiftc -sanitize=fuzzer,address)
  scratch="$repo/Fuzz/.build/fuzzer-asan"
  # Leaks are reported (a proxy runs for months); the odd-sized allocations of the C parser
  # are fine with the default allocator settings.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
fi

needs_libfuzzer=0
for t in "${targets[@]}"; do [ "$t" != net ] && needs_libfuzzer=1; done
if [ "$mode" = build ] || [ "$needs_libfuzzer" = 1 ]; then
  # Optimised as the shipped binary is (bounds, overflow and precondition checks stay on);
  # -enable-testing for the targets' @testable imports.
  echo "fuzz: building the fuzz targets (${sanitizers[*]})"
  # ld.gold warns about every ASan helper symbol; only the rest is shown.
  mkdir -p "$work/logs"
  (cd "$repo/Fuzz" && swift build -c release -Xswiftc -enable-testing "${sanitizers[@]}" --scratch-path "$scratch") \
    >"$work/logs/build.log" 2>&1
  build_status=$?
  grep -v -e "ld.gold: warning: Cannot export local symbol" -e "^\[[0-9]*/[0-9]*\]" "$work/logs/build.log"
  if [ "$build_status" -ne 0 ]; then echo "fuzz: build failed (see $work/logs/build.log)" >&2; exit 1; fi
fi
[ "$mode" = build ] && exit 0

status=0
failed=()

binary_name() { # startup -> FuzzStartup, scram -> FuzzSCRAM
  case "$1" in
    scram) echo FuzzSCRAM ;;
    *) echo "Fuzz$(tr '[:lower:]' '[:upper:]' <<<"${1:0:1}")${1:1}" ;;
  esac
}

run_target() {
  local target="$1" bin corpus seeds crashes log
  bin="$scratch/release/$(binary_name "$target")"
  corpus="$work/corpus/$target"; seeds="$repo/Fuzz/Corpus/$target"; crashes="$work/crashes/$target"
  log="$work/logs/$target.log"
  mkdir -p "$corpus" "$crashes" "$work/logs"
  echo "fuzz: $target for ${seconds}s (log $log)"
  (cd "$crashes" && "$bin" -max_total_time="$seconds" -max_len="${FUZZ_MAX_LEN:-4096}" -timeout=20 \
     -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "$seeds") >"$log" 2>&1
  local rc=$?
  if ! grep -q "inline 8-bit counters" "$log"; then
    echo "fuzz: $target: the binary has no coverage instrumentation (see $log)" | tee -a "$summary"
    status=1; failed+=("$target"); return
  fi
  local execs
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  local artifacts
  artifacts="$(find "$crashes" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$log.start" 2>/dev/null)"
  if [ "$rc" -ne 0 ] || [ -n "$artifacts" ]; then
    echo "fuzz: $target FAILED (exit $rc) after ${execs:-?} executions" | tee -a "$summary"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*Fatal error|.*fuzz property violated)" "$log" | head -5 | sed 's/^/fuzz:   /'
    for a in $artifacts; do
      echo "fuzz:   input: $a"
      echo "fuzz:   reproduce: SWIFT_BACKTRACE=enable=no $bin $a"
      echo "fuzz:   minimize:  SWIFT_BACKTRACE=enable=no $bin -minimize_crash=1 -runs=10000 -exact_artifact_path=$a.min $a"
    done
    status=1; failed+=("$target")
  else
    echo "fuzz: $target ok: ${execs:-?} executions in ${seconds}s, coverage $(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log" | tail -1) edges, corpus $(ls "$corpus" | wc -l) grown + $(ls "$seeds" | wc -l) seeds" | tee -a "$summary"
  fi
}

run_net() {
  local root pgport proxyport bin proxy_pid rc
  bin="${PORTCULLIS_BIN:-$(cd "$repo" && swift build --show-bin-path)/portcullis}"
  if [ ! -x "$bin" ]; then (cd "$repo" && swift build --product portcullis) || { status=1; failed+=(net); return; }; fi
  "$repo/certs-example/generate.sh" "$repo/certs-example/generated" >/dev/null
  # The same layout as the integration harness, so scripts/stop-test-clusters.sh cleans up
  # after a killed run: ROOT/owner.pid, ROOT/*/PG_VERSION, ROOT/*/portcullis.pid.
  root="$(mktemp -d /tmp/portcullis-it.$$.XXXXXX)"
  chmod 0755 "$root"
  echo $$ >"$root/owner.pid"
  mkdir -p "$root/proxy" "$work/logs"
  read -r pgport proxyport < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
  echo "fuzz: net: PostgreSQL on $pgport, Portcullis on $proxyport, ${net_seconds}s (log $work/logs/net.log)"
  if ! "$repo/scripts/pg-cluster.sh" start "$root/pg" "$pgport" >"$work/logs/net-cluster.log" 2>&1; then
    echo "fuzz: net: could not start PostgreSQL (see $work/logs/net-cluster.log)" | tee -a "$summary"
    status=1; failed+=(net); rm -rf "$root"; return
  fi
  # One loop thread, so every fuzzed session shares the sentinel's loop: a stall shows up as
  # sentinel latency, not only a crash.
  PORTCULLIS_EXTRA="workers = 1" "$repo/scripts/proxy-config.sh" "$root/proxy/portcullis.ini" "$root/pg" "$pgport" "$proxyport" >/dev/null
  # The proxy keeps Swift's backtracer (SWIFT_BACKTRACE is only for the libFuzzer targets), so
  # its log shows where it died.
  env -u SWIFT_BACKTRACE "$bin" run --config "$root/proxy/portcullis.ini" >"$work/logs/net-proxy.log" 2>&1 &
  proxy_pid=$!
  echo "$proxy_pid" >"$root/proxy/portcullis.pid"
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $proxyport), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  python3 "$here/netfuzz.py" --port "$proxyport" --ca "$repo/certs-example/generated/ca.crt" --pid "$proxy_pid" \
    --seconds "$net_seconds" ${FUZZ_SEED:+--seed "$FUZZ_SEED"} ${FUZZ_NET_SKIP:+--skip "$FUZZ_NET_SKIP"} ${FUZZ_NET_REPLAY:+--replay "$FUZZ_NET_REPLAY"} \
    --crash-dir "$work/crashes/net" >"$work/logs/net.log" 2>&1
  rc=$?
  if ! kill -0 "$proxy_pid" 2>/dev/null; then
    rc=1; echo "fuzz: net: the proxy exited during the run (see $work/logs/net-proxy.log)"
  fi
  kill -TERM "$proxy_pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$proxy_pid" 2>/dev/null
  wait "$proxy_pid" 2>/dev/null
  "$repo/scripts/pg-cluster.sh" stop "$root/pg" >/dev/null 2>&1
  if [ "$rc" -ne 0 ]; then
    cp "$work/logs/net-proxy.log" "$work/crashes/net/" 2>/dev/null
    echo "fuzz: net FAILED" | tee -a "$summary"; sed 's/^/fuzz:   /' "$work/logs/net.log" | tail -8
    status=1; failed+=(net)
  else
    echo "fuzz: net $(grep -E '^netfuzz: (ok|replayed)' "$work/logs/net.log" | sed 's/^netfuzz: //')" | tee -a "$summary"
  fi
  rm -rf "$root"
}

for t in "${targets[@]}"; do
  case "$t" in
    net) run_net ;;
    startup|frames|scram|access|config|classifier)
      mkdir -p "$work/logs"; touch "$work/logs/$t.log.start"; run_target "$t" ;;
    *) echo "fuzz: unknown target $t" >&2; status=2 ;;
  esac
done

if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $work/crashes/; see docs/FUZZING.md)"
else
  echo "fuzz: all passed (summary in $summary)"
fi
exit "$status"
