#!/usr/bin/env bash
# Generates the development PKI used by `make run`, `make test` and `make bench`.
#
#   certs-example/generate.sh [OUTDIR]     (default: certs-example/generated)
#
# Idempotent: when every file is present, the chain verifies and nothing expires within a
# day, it does nothing. Otherwise it regenerates the whole set (a half-made set is useless).
# Uses only the OpenSSL CLI (3.0): P-256 keys, SHA-256 signatures.
# FOR DEVELOPMENT ONLY: the CA key sits next to the certificates.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/generated}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# name -> "signer|subject CN|SAN|extended key usage"
leaves=(
  "server|ca|localhost|DNS:localhost,IP:127.0.0.1,IP:::1|serverAuth"
  "wrong-host|ca|wrong.example|DNS:wrong.example|serverAuth"
  "upstream|ca|localhost|DNS:localhost,IP:127.0.0.1,IP:::1|serverAuth"
  "upstream-wrong-name|ca|not-localhost.example|DNS:not-localhost.example|serverAuth"
  "agent|ca|agent||clientAuth"
  "alice|ca|alice||clientAuth"
  "rogue|rogue-ca|agent||clientAuth"
)
all_files=(ca.crt ca.key rogue-ca.crt rogue-ca.key expired.crt expired.key)
for spec in "${leaves[@]}"; do
  name="${spec%%|*}"
  all_files+=("$name.crt" "$name.key")
done

is_valid() {
  local f
  for f in "${all_files[@]}"; do
    [ -s "$out/$f" ] || return 1
  done
  openssl x509 -in "$out/ca.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  for spec in "${leaves[@]}"; do
    IFS='|' read -r name signer _ <<<"$spec"
    openssl verify -CAfile "$out/$signer.crt" "$out/$name.crt" >/dev/null 2>&1 || return 1
    openssl x509 -in "$out/$name.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  done
  # expired.crt must be signed by the CA and be expired.
  openssl x509 -in "$out/expired.crt" -noout -checkend 0 >/dev/null 2>&1 && return 1
  return 0
}

if is_valid; then
  echo "generate.sh: certificates in $out are present and valid"
  exit 0
fi

echo "generate.sh: generating development certificates into $out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

new_key() { # file
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 0600 "$1"
}

make_ca() { # name subject
  new_key "$out/$1.key"
  openssl req -x509 -new -sha256 -key "$out/$1.key" -days 3650 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$out/$1.crt"
}

make_ca ca "/O=Portcullis Dev/CN=Portcullis Dev CA"
make_ca rogue-ca "/O=Rogue/CN=Rogue Dev CA"

for spec in "${leaves[@]}"; do
  IFS='|' read -r name signer cn san eku <<<"$spec"
  new_key "$out/$name.key"
  openssl req -new -sha256 -key "$out/$name.key" -subj "/CN=$cn" -out "$work/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    echo "authorityKeyIdentifier=keyid"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } >"$work/$name.ext"
  openssl x509 -req -sha256 -in "$work/$name.csr" -CA "$out/$signer.crt" -CAkey "$out/$signer.key" \
    -CAcreateserial -CAserial "$work/$signer.srl" -days 825 -extfile "$work/$name.ext" \
    -out "$out/$name.crt" 2>/dev/null
done

# An expired client certificate (CN=agent) signed by the dev CA. OpenSSL 3.0's `x509 -req`
# cannot set dates in the past, but `openssl ca` takes explicit -startdate/-enddate.
new_key "$out/expired.key"
openssl req -new -sha256 -key "$out/expired.key" -subj "/CN=agent" -out "$work/expired.csr"
mkdir -p "$work/ca-db"
: >"$work/ca-db/index.txt"
cat >"$work/ca.cnf" <<CNF
[ ca ]
default_ca = dev
[ dev ]
database = $work/ca-db/index.txt
new_certs_dir = $work/ca-db
serial = $work/ca-db/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
[ client_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
CNF
openssl rand -hex 16 >"$work/ca-db/serial"
openssl ca -batch -notext -config "$work/ca.cnf" -cert "$out/ca.crt" -keyfile "$out/ca.key" \
  -startdate 20200101000000Z -enddate 20210101000000Z -extensions client_ext \
  -in "$work/expired.csr" -out "$out/expired.crt" 2>/dev/null

chmod 0600 "$out"/*.key
chmod 0644 "$out"/*.crt

if ! is_valid; then
  echo "generate.sh: generated set failed validation" >&2
  exit 1
fi
echo "generate.sh: done"
