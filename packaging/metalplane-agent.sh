#!/bin/sh
# metalplane-agent: the site agent on the Node.js runtime this package ships
# (/usr/lib/metalplane-agent/node). Paths are found from this script's own place, so the
# tree also runs unpacked under another root (the package test does that).
#
# Memory (docs/agent.md, "Footprint"; measured by `npm run bench -- dispatch`, row `shipped`):
# - --max-semi-space-size=1: V8's young generation at 1 MiB per semi-space instead of
#   growing to 16 (the agent allocates little and keeps less): ~8 MiB less resident, no
#   measurable change in dispatch latency or TFTP throughput;
# - MALLOC_ARENA_MAX=2: glibc's malloc keeps at most two arenas instead of one per thread
#   that ever allocated (V8's and libuv's workers: up to 8 x 64 MiB reserved), each holding
#   freed memory it never gives back: ~3 MiB less resident.
# An administrator's own MALLOC_ARENA_MAX (systemd `Environment=`) wins.
here=$(dirname "$(readlink -f "$0")")
lib="${here%/bin}/lib/metalplane-agent"
MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export MALLOC_ARENA_MAX
exec "$lib/node" --max-semi-space-size=1 "$lib/agent.mjs" "$@"
