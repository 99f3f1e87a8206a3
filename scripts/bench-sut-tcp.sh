#!/usr/bin/env bash
# bench-sut-tcp.sh LISTEN BACKENDS: runs berth in the foreground as vs-peers' system
# under test in tcp mode: one TCP listener on LISTEN forwarding to the static targets
# BACKENDS (comma-separated host:port), Docker discovery and the access log off (the
# HAProxy and nginx peers log nothing either).
set -euo pipefail
listen=$1 backends=$2
# exec below replaces this shell, so the file is named by port and overwritten next time.
conf=/tmp/berth-bench-tcp-${listen##*:}.yaml
cat > "$conf" <<CONF
node: {name: bench, advertise: 127.0.0.1}
# Its own agent, not an upgrade of another benchmark's (same node name): no hand-over.
upgrade: {socket: ""}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: 127.0.0.1:0}
log: {access: "off"}
listeners:
  - name: tcp
    protocol: tcp
    address: $listen
    default: {forward: bench}
static:
  bench: [${backends}]
CONF
exec "$(dirname "$0")/../bin/berth" agent --config "$conf" --log-level warn
