#!/usr/bin/env bash
# bench-sut.sh LISTEN BACKENDS [RULES]: runs berth in the foreground as vs-peers' system
# under test: one HTTP listener on LISTEN forwarding to the static targets BACKENDS
# (comma-separated host:port), Docker discovery off. The listener carries rules that the
# benchmark's requests (host 127.0.0.1, path /) do not match, so every request is looked
# up in all of them before the default action forwards it: the worst case of rule matching.
# Without RULES, 100 rules as a real config has them (an exact and a wildcard host and a
# path each); with RULES, that many in the shape of a platform with a rule per app
# (issue #14): RULES/2 exact hosts, then RULES/2 path prefixes.
set -euo pipefail
listen=$1 backends=$2 many=${3:-}
# exec below replaces this shell, so the file is named by port and overwritten next time.
conf=/tmp/berth-bench-${listen##*:}.yaml
cat > "$conf" <<CONF
node: {name: bench, advertise: 127.0.0.1}
# Its own agent, not an upgrade of another benchmark's (same node name): no hand-over.
upgrade: {socket: ""}
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
$(if [[ -z $many ]]; then
  for i in $(seq 1 100); do
    echo "      - {priority: $i, host: [\"svc$i.example.com\", \"*.svc$i.internal\"], path: [\"/api/v$i/*\"], forward: bench}"
  done
else
  awk -v n="$many" 'BEGIN { for (i = 1; i <= n; i++) if (i <= n / 2) printf "      - {priority: %d, host: [\"svc%d.example.com\"], forward: bench}\n", i, i
    else printf "      - {priority: %d, path: [\"/api/v%d/*\"], forward: bench}\n", i, i }'
fi)
static:
  bench: [${backends}]
CONF
exec "$(dirname "$0")/../bin/berth" agent --config "$conf" --log-level warn
