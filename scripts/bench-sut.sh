#!/usr/bin/env bash
# bench-sut.sh LISTEN BACKENDS: runs berth in the foreground as vs-peers' system
# under test: one HTTP listener on LISTEN forwarding to the static targets BACKENDS
# (comma-separated host:port), Docker discovery off.
set -euo pipefail
listen=$1 backends=$2
# exec below replaces this shell, so the file is named by port and overwritten next time.
conf=/tmp/berth-bench-${listen##*:}.yaml
cat > "$conf" <<CONF
node: {name: bench, advertise: 127.0.0.1}
docker: {enabled: false}
admin: {listen: 127.0.0.1:0}
listeners:
  - name: web
    protocol: http
    address: $listen
    default: {forward: bench}
static:
  bench: [${backends}]
CONF
exec "$(dirname "$0")/../bin/berth" agent --config "$conf" --log-level warn
