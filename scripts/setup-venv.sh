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
# uv installs the requirements in ~14 s where pip takes ~45 s (docs/dependencies.md); pip
# stays the fallback should uv not install or not reach the index. --compile-bytecode as
# pip does: uv leaves it out by default, and with PYTHONDONTWRITEBYTECODE set (as on CI)
# every `baremetal` run of the compat tests then compiled openstackclient anew (those
# files took twice as long).
if ! { .venv/bin/pip install --quiet --disable-pip-version-check uv==0.13.9 &&
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r "$req"; }; then
  echo "metalplane: uv failed; installing with pip" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
fi
cp "$req" .venv/.requirements-stamp
