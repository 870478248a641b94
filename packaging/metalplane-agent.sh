#!/bin/sh
# metalplane-agent: the site agent on the Node.js runtime this package ships
# (/usr/lib/metalplane-agent/node). Paths are found from this script's own place, so the
# tree also runs unpacked under another root (the package test does that).
here=$(dirname "$(readlink -f "$0")")
lib="${here%/bin}/lib/metalplane-agent"
exec "$lib/node" "$lib/agent.mjs" "$@"
