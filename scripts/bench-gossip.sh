#!/usr/bin/env bash
# bench-gossip.sh: the fleet layer's benchmarks, run by `make bench-gossip`.
# In-process memberlist clusters of 3, 10 and 50 agents on 127.0.0.x:
#   - a target added, then drained, on a random owner: p50/p99 per receiving
#     node, p50/p99 of the time until every node has it, and never-arrived;
#   - a hard kill (no leave) to removal of its targets on every survivor, with
#     berth's production failure detection;
#   - bytes per target in a delta and in a full state;
#   - what an idle cluster costs per agent: CPU, bytes allocated, and the
#     process's garbage collections, per second;
#   - a node cut off (every packet to and from it lost) to its targets marked
#     suspect, and so avoided, on every other node, with production settings;
#   - the failed requests of 200 requests/s through host 3 of the fleet test
#     (three hosts in network namespaces, real agents, default config) while
#     host 2's link is cut: needs root and Docker (scripts/ensure-docker.sh).
# The figures are written between the gossip markers of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/berth-bench-gossip.XXXXXX)
trap 'rm -rf "$out"' EXIT
trials=${GOSSIP_TRIALS:-40} kills=${GOSSIP_KILLS:-5} cuts=${GOSSIP_CUTS:-20} idle=${GOSSIP_IDLE:-5} fleet_cuts=${FLEET_CUTS:-3}

go test -run '^$' -bench 'GossipPropagation|GossipBytes' -benchtime "${trials}x" -timeout 20m ./discovery/gossip/ | tee "$out/propagation.txt" >&2
go test -run '^$' -bench 'GossipDeadNode' -benchtime "${kills}x" -timeout 20m ./discovery/gossip/ | tee "$out/dead.txt" >&2
go test -run '^$' -bench 'GossipHostLoss' -benchtime "${cuts}x" -timeout 30m ./discovery/gossip/ | tee "$out/cut.txt" >&2
go test -run '^$' -bench 'GossipIdleCost' -benchtime "${idle}x" -timeout 20m ./discovery/gossip/ | tee "$out/idle.txt" >&2
touch "$out/fleet.txt"
[ "$fleet_cuts" -eq 0 ] || scripts/ensure-docker.sh
for i in $(seq "$fleet_cuts"); do
  go test -count=1 -v -run 'TestFleet$/host_2_cut' -timeout 10m ./internal/fleettest/ >"$out/fleet-$i.txt" 2>&1 || true
  line=$(grep -o 'load to h3 around the cut: .*' "$out/fleet-$i.txt" || echo "no result: the fleet test did not get to the cut")
  echo "fleet test run $i: $line" | tee -a "$out/fleet.txt" >&2
done

# one row per benchmark: its name, then metric=value pairs
table() { awk '/^Benchmark/ { printf "%s", $1; for (i = 5; i < NF; i += 2) printf "  %s=%s", $(i+1), $i; printf "\n" }' "$@"; }
{
  echo "<!-- gossip:begin (written by scripts/bench-gossip.sh; do not edit by hand) -->"
  echo "Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, commit $(git describe --always --dirty); $trials trials per size, $kills kills per size, $cuts cuts per size, $idle idle windows of 2 s per size, $fleet_cuts fleet-test cuts (\`make bench-gossip\`). Times in ms."
  echo '```'
  table "$out/propagation.txt" "$out/dead.txt" "$out/cut.txt" "$out/idle.txt"
  cat "$out/fleet.txt"
  echo '```'
  echo "<!-- gossip:end -->"
} | scripts/write-block.py gossip docs/benchmarks.md
echo "figures written to docs/benchmarks.md" >&2
