#!/usr/bin/env bash
# A real systemd as PID 1 of a container, for testing conf/portcullis.service and
# conf/portcullis.socket on machines whose own PID 1 is not systemd (docs/SYSTEMD.md).
#
#   scripts/systemd-container.sh build                 root file system, once (cached)
#   scripts/systemd-container.sh start NAME [--bind-ro=SRC[:DST]]...
#                                                      boot it; returns once systemd is up
#   scripts/systemd-container.sh exec NAME CMD [ARG]... run CMD inside (stdin passed through)
#   scripts/systemd-container.sh leader NAME           PID (host view) of the container's systemd
#   scripts/systemd-container.sh stop NAME             halt it (idempotent)
#   scripts/systemd-container.sh stop-all              halt every container this script started
#   scripts/systemd-container.sh stop-orphans          halt those whose starting process is gone
#
# The root is a minimal Debian 12 made by debootstrap from the machine's own Debian mirror,
# with systemd and the shared libraries portcullis links (libpq5, libssl3, libsystemd0, libcurl4,
# libzstd1); the Swift runtime is /opt/swift bind-mounted read-only. It is cached under
# $PORTCULLIS_SYSTEMD_CACHE (default /var/cache/portcullis-systemd): building it takes about
# two minutes, booting it a few seconds. Each boot is `systemd-nspawn --volatile=overlay`: the
# cached tree stays read-only, every change made inside lands in a tmpfs and is gone at stop.
# The container shares the host's network namespace, so a service in it listens on the
# host's 127.0.0.1 and reaches a PostgreSQL cluster started on the host.
#
# Needs root, systemd-nspawn (package systemd-container) and debootstrap; `build` installs
# both when missing. Exit status 2 means "cannot be done on this machine" (the reason on stderr).
set -euo pipefail

CACHE=${PORTCULLIS_SYSTEMD_CACHE:-/var/cache/portcullis-systemd}
ROOT=$CACHE/bookworm
STATE=/run/portcullis-systemd
# Changing this list rebuilds the root (the stamp records it).
PACKAGES=systemd,systemd-sysv,dbus,libpq5,libssl3,libsystemd0,libzstd1,libcurl4,libstdc++6,procps,iproute2
STAMP="packages=$PACKAGES"
CONTAINER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "systemd-container: $*" >&2; exit 2; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# The Debian mirror apt uses on this machine (deb822 or one-line sources), else deb.debian.org.
mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | awk '{print $2}' | grep -v security | head -1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | grep -v security | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build() {
  need_root
  if [ -f "$ROOT/.portcullis-stamp" ] && [ "$(cat "$ROOT/.portcullis-stamp")" = "$STAMP" ]; then
    echo "systemd-container: root cached at $ROOT"
    return 0
  fi
  local missing=()
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || die "cannot install ${missing[*]}"
  fi
  mkdir -p "$CACHE"
  local tmp="$ROOT.tmp"
  rm -rf "$tmp" "$ROOT"
  echo "systemd-container: debootstrap bookworm from $(mirror) into $ROOT (about two minutes)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1; then
    tail -20 "$CACHE/debootstrap.log" >&2
    die "debootstrap failed (log: $CACHE/debootstrap.log)"
  fi
  # No console login prompts; an empty machine-id: each boot gets a transient one (no first-boot wizard).
  : >"$tmp/etc/machine-id"
  ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
  ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"
  echo "$STAMP" >"$tmp/.portcullis-stamp"
  mv "$tmp" "$ROOT"
  echo "systemd-container: root ready at $ROOT"
}

valid_name() { [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,40}$ ]] || die "bad container name '$1'"; }

nspawn_pid() { cat "$STATE/$1/nspawn.pid" 2>/dev/null || true; }

alive() { local pid; pid=$(nspawn_pid "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

leader() {
  local pid child
  pid=$(nspawn_pid "$1")
  [ -n "$pid" ] || die "container $1 is not running"
  # nspawn's only remaining child is the container's PID 1.
  child=$(pgrep -P "$pid" | head -1 || true)
  [ -n "$child" ] || die "container $1 has no PID 1 (yet)"
  echo "$child"
}

# Without systemd as PID 1 nobody gives the container a cgroup of its own: make one per
# container (in every hierarchy nspawn uses), so that two containers never share one.
cgroup_dirs() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "/sys/fs/cgroup/portcullis-$1"
  else
    for h in systemd unified; do
      [ -d "/sys/fs/cgroup/$h" ] && echo "/sys/fs/cgroup/$h/portcullis-$1"
    done
  fi
  return 0
}

remove_cgroups() {
  local dir
  for dir in $(cgroup_dirs "$1"); do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

start() {
  need_root
  local name=$1; shift
  valid_name "$name"
  [ -f "$ROOT/.portcullis-stamp" ] || die "no root at $ROOT: run '$0 build' first"
  command -v systemd-nspawn >/dev/null || die "no systemd-nspawn: run '$0 build' first"
  alive "$name" && die "container $name is already running"
  local binds=(--bind-ro=/opt/swift)
  [ -d /opt/swift ] || binds=()
  local arg
  for arg in "$@"; do
    case $arg in
      --bind-ro=*|--bind=*) binds+=("$arg") ;;
      *) die "unknown option $arg" ;;
    esac
  done
  local dir=$STATE/$name
  rm -rf "$dir"; mkdir -p "$dir"
  echo "$PPID" >"$dir/owner.pid"   # for stop-orphans (a killed test run)
  local register=(--register=no --keep-unit)
  local cgroups=""
  if [ "$(cat /proc/1/comm)" = systemd ]; then
    register=(--register=no)   # nspawn asks the host's systemd for a scope of its own
  else
    remove_cgroups "$name"
    cgroups=$(cgroup_dirs "$name" | tr '\n' ' ')
    local cg; for cg in $cgroups; do mkdir -p "$cg"; done
  fi
  # The subshell moves itself into the container's cgroups, records its PID and becomes nspawn.
  (
    for cg in $cgroups; do echo "$BASHPID" >"$cg/cgroup.procs"; done
    echo "$BASHPID" >"$dir/nspawn.pid"
    exec setsid systemd-nspawn -q -D "$ROOT" -M "$name" "${register[@]}" --volatile=overlay \
      --console=pipe "${binds[@]}" -b
  ) </dev/null >"$dir/console.log" 2>&1 &
  local waited=0 pid=""
  while [ $waited -lt 60 ]; do
    alive "$name" && pid=$(pgrep -P "$(nspawn_pid "$name")" | head -1 || true)
    [ -n "$pid" ] && break
    alive "$name" || [ ! -f "$dir/nspawn.pid" ] || { cat "$dir/console.log" >&2; die "systemd-nspawn exited during start"; }
    sleep 0.2; waited=$((waited + 1))
  done
  [ -n "$pid" ] || { cat "$dir/console.log" >&2; die "container $name did not start"; }
  # Boot finished (every start job done): "running", or "degraded" if some unit failed.
  # First until systemd answers on its private socket, then until the boot is finished.
  local state=""
  for _ in $(seq 1 300); do
    state=$(nsenter -t "$pid" -a env -i PATH=$CONTAINER_PATH systemctl is-system-running 2>&1 || true)
    case $state in initializing|starting|running|degraded) break ;; esac
    alive "$name" || break
    sleep 0.1
  done
  state=$(timeout 60 nsenter -t "$pid" -a env -i PATH=$CONTAINER_PATH systemctl is-system-running --wait 2>&1 || true)
  case $state in
    running|degraded) echo "$pid" ;;
    *) cat "$dir/console.log" >&2; stop "$name"; die "systemd in container $name did not finish booting: $state" ;;
  esac
}

exec_in() {
  local name=$1; shift
  local pid; pid=$(leader "$name")
  exec nsenter -t "$pid" -a env -i PATH=$CONTAINER_PATH LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

stop() {
  local name=$1 pid
  valid_name "$name"
  pid=$(nspawn_pid "$name")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true      # nspawn asks the container's systemd to halt
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  remove_cgroups "$name"
  rm -rf "${STATE:?}/$name"
}

case ${1:-} in
  build) build ;;
  start) [ $# -ge 2 ] || die "usage: $0 start NAME [--bind-ro=SRC[:DST]]..."; shift; start "$@" ;;
  exec) [ $# -ge 3 ] || die "usage: $0 exec NAME CMD [ARG]..."; shift; exec_in "$@" ;;
  leader) [ $# -eq 2 ] || die "usage: $0 leader NAME"; leader "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop NAME"; stop "$2" ;;
  stop-all)
    for d in "$STATE"/*/; do [ -d "$d" ] && stop "$(basename "$d")"; done
    exit 0 ;;
  stop-orphans)
    for d in "$STATE"/*/; do
      [ -d "$d" ] || continue
      owner=$(cat "$d/owner.pid" 2>/dev/null || true)
      if [ -z "$owner" ] || ! kill -0 "$owner" 2>/dev/null; then stop "$(basename "$d")"; fi
    done
    exit 0 ;;
  *) echo "usage: $0 build | start NAME [--bind-ro=SRC[:DST]]... | exec NAME CMD... | leader NAME | stop NAME | stop-all | stop-orphans" >&2
     exit 64 ;;
esac
