#!/usr/bin/env bash
# Installs the Debian 12 packages Portcullis needs to build, test and benchmark.
# Idempotent: asks dpkg first and only touches apt when something is missing.
set -euo pipefail

packages=(
  postgresql-15 postgresql-client-15 postgresql-15-pgaudit
  libssl-dev libpq-dev libsystemd-dev libzstd-dev libpg-query-dev libprotobuf-c-dev libcurl4-openssl-dev
  pgbouncer openssl systemd procps iproute2 python3 python3-psycopg python3-venv gcc util-linux
  systemd-container debootstrap
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

# The postgresql package starts a system cluster on 5432; Portcullis runs its own clusters
# and never needs it, but leaves it alone rather than guessing what the machine is for.
