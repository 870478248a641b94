#!/usr/bin/env bash
# Starts the local stack as the README says (npm start) on spare ports, checks that it
# serves the Ironic v1 document, and stops it with SIGINT (what Ctrl-C sends).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
if curl -fsS -m 1 http://127.0.0.1:16385/v1 >/dev/null 2>&1; then echo "smoke: port 16385 is already served by something else" >&2; exit 1; fi
setsid npm start -- --api-port 16385 --ws-port 16386 --moto-port 14566 >"$log" 2>&1 &
pid=$!
trap 'kill -INT -- "-$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fsS -m 2 http://127.0.0.1:16385/v1 -o /tmp/metalplane-smoke-v1.json 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "smoke: npm start exited" >&2; exit 1; }
  sleep 0.5
done
grep -q '"id":"v1"' /tmp/metalplane-smoke-v1.json || { cat "$log"; echo "smoke: /v1 not served" >&2; exit 1; }
# Ctrl-C signals the terminal's whole process group (npm and its node child): do the same.
kill -INT -- "-$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
if kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "smoke: did not stop on SIGINT" >&2; exit 1; fi
trap - EXIT
grep -q 'stopping the local stack' "$log" || { cat "$log"; echo "smoke: no clean stop" >&2; exit 1; }
if curl -fsS -m 1 http://127.0.0.1:16385/v1 >/dev/null 2>&1; then echo "smoke: still serving after stop" >&2; exit 1; fi
echo "smoke: npm start served /v1 and stopped cleanly"
