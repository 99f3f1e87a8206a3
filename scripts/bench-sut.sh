#!/usr/bin/env bash
# bench-sut.sh LISTEN BACKENDS: runs berth in the foreground as vs-peers' system
# under test: one HTTP listener on LISTEN forwarding to the static targets BACKENDS
# (comma-separated host:port), Docker discovery off. The listener carries 100 rules
# that the benchmark's requests do not match (host and path conditions, as a real
# config has), so every request is checked against all of them before the default
# action forwards it: the worst case of rule matching.
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
    # make bench holds 10,000 idle connections, the default limit: allow them all.
    max-connections: 20000
    rules:
$(for i in $(seq 1 100); do
  echo "      - {priority: $i, host: [\"svc$i.example.com\", \"*.svc$i.internal\"], path: [\"/api/v$i/*\"], forward: bench}"
done)
static:
  bench: [${backends}]
CONF
exec "$(dirname "$0")/../bin/berth" agent --config "$conf" --log-level warn
