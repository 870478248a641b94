#!/usr/bin/env bash
# Creates the project's Python virtualenv (.venv) with the pinned moto server, the
# AWS emulator the tests and the local stack run against. Idempotent: a venv whose
# requirements stamp matches is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-dev.txt
if [ -x .venv/bin/python ] && cmp -s "$req" .venv/.requirements-stamp; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" .venv/.requirements-stamp
