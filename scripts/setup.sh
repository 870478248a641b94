#!/usr/bin/env bash
# Makes this machine ready to run the local stack and the tests; idempotent and quick
# when everything is there (runs before `npm start` and `npm test`).
#   - Debian packages from scripts/debian-packages.txt (installed when missing, as root)
#   - the Python virtualenv with moto server (scripts/setup-venv.sh)
#   - the second AWS emulator engines in .engines/ (scripts/setup-engines.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/debian-packages.txt)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "metalplane: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "metalplane: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "metalplane: installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
bash scripts/setup-venv.sh
# The second AWS emulator engines (ElasticMQ, dynalite) the adapters' tests also run on.
bash scripts/setup-engines.sh
