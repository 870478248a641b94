#!/usr/bin/env bash
# Starts the local stack as the README says (npm start) on spare ports, checks that it
# serves the Ironic v1 document, and stops it with SIGINT (what Ctrl-C sends).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
log=$work/start.log
v1=$work/v1.json
trap 'rm -rf "$work"' EXIT
if curl -fsS -m 1 http://127.0.0.1:16385/v1 >/dev/null 2>&1; then echo "smoke: port 16385 is already served by something else" >&2; exit 1; fi
setsid npm start -- --api-port 16385 --ws-port 16386 --moto-port 14566 --agent-status-port 19469 >"$log" 2>&1 &
pid=$!
trap 'kill -INT -- "-$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do
  if curl -fsS -m 2 http://127.0.0.1:16385/v1 -o "$v1" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "smoke: npm start exited" >&2; exit 1; }
  sleep 0.5
done
grep -q '"id":"v1"' "$v1" || { cat "$log"; echo "smoke: /v1 not served" >&2; exit 1; }
# The agent of site `local` is up (a conductor, alive) and runs a command end to end.
auth="admin:$(cat .local/admin-password)"
api() { curl -fsS -m 5 -u "$auth" -H 'X-OpenStack-Ironic-API-Version: 1.82' -H 'Content-Type: application/json' "$@"; }
alive=""
for _ in $(seq 1 60); do
  alive=$(api http://127.0.0.1:16385/v1/conductors | python3 -c 'import json,sys; print(",".join(c["hostname"] for c in json.load(sys.stdin)["conductors"] if c["alive"]))' || true)
  [ -n "$alive" ] && break
  sleep 0.5
done
[ -n "$alive" ] || { cat "$log"; echo "smoke: no alive agent in /v1/conductors" >&2; exit 1; }
node=$(api -X POST http://127.0.0.1:16385/v1/nodes -d '{"driver":"fake-hardware","name":"smoke"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
command=$(api -X POST "http://127.0.0.1:16385/v1/nodes/$node/commands" -d '{"action":"noop","args":{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
status=""
for _ in $(seq 1 40); do
  status=$(api "http://127.0.0.1:16385/v1/nodes/$node/commands/$command" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = succeeded ] && break
  sleep 0.25
done
[ "$status" = succeeded ] || { cat "$log"; echo "smoke: the agent did not run the command (status: $status)" >&2; exit 1; }
echo "smoke: agent $alive ran command $command"
curl -fsS -m 2 http://127.0.0.1:19469/healthz >/dev/null || { echo "smoke: agent /healthz failed" >&2; exit 1; }
# The node goes through power and the provision cycle on the fake hardware.
state() { api "http://127.0.0.1:16385/v1/nodes/$node" | python3 -c "import json,sys; n=json.load(sys.stdin); print(n['$1'] if n['reservation'] is None else 'busy')"; }
await() { for _ in $(seq 1 100); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.2; done; cat "$log"; echo "smoke: node never showed $1 = $2" >&2; exit 1; }
api -X PUT "http://127.0.0.1:16385/v1/nodes/$node/states/power" -d '{"target":"power on"}'
await power_state 'power on'
for step in manage:manageable provide:available active:active deleted:available; do
  api -X PUT "http://127.0.0.1:16385/v1/nodes/$node/states/provision" -d "{\"target\":\"${step%%:*}\"}"
  await provision_state "${step#*:}"
done
echo "smoke: node $node powered on, then manageable, available, active and available again"
# Ctrl-C signals the terminal's whole process group (npm and its node child): do the same.
kill -INT -- "-$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
if kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "smoke: did not stop on SIGINT" >&2; exit 1; fi
trap 'rm -rf "$work"' EXIT
grep -q 'stopping the local stack' "$log" || { cat "$log"; echo "smoke: no clean stop" >&2; exit 1; }
if curl -fsS -m 1 http://127.0.0.1:16385/v1 >/dev/null 2>&1; then echo "smoke: still serving after stop" >&2; exit 1; fi
echo "smoke: npm start served /v1 and stopped cleanly"
