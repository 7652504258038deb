#!/usr/bin/env bash
# Installs the real components the tests start: Debian's CNCF distribution registry, skopeo,
# SoftHSM2 with OpenSC's pkcs11-tool, and PostgreSQL's server binaries when none are present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
want=(docker-registry skopeo softhsm2 opensc)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  want+=(postgresql)
fi
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package may start a system registry on :5000; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop docker-registry >/dev/null 2>&1 || true; fi
# sigstore-js (tests/js), the independent verifier the transparency-log tests run, from its lock
# file. Node.js comes with the machine; Debian's is the fallback.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
js="$(cd "$(dirname "$0")/.." && pwd)/tests/js"
if ! cmp -s "$js/package-lock.json" "$js/node_modules/.installed-lock.json"; then
  npm ci --prefix "$js" --no-audit --no-fund --loglevel=error
  cp "$js/package-lock.json" "$js/node_modules/.installed-lock.json"
fi
