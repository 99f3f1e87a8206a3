#!/usr/bin/env bash
# bench.sh: berth's benchmarks, run by `make bench`. Loopback only.
#   1. Go benchmarks of the data plane (-benchmem), 5 runs each, medians by benchstat when present.
#   2. ../shared/bench/vs-peers in http mode: berth beside HAProxy and nginx, one pinned core each.
#   3. Resident memory of berth with 10,000 idle keep-alive client connections.
# The figures are written between the bench markers of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$out"; [[ -n ${pids:-} ]] && kill $pids 2>/dev/null || true' EXIT
rounds=${BENCH_ROUNDS:-3} seconds=${BENCH_SECONDS:-6}
vs_peers=${VS_PEERS:-../shared/bench/vs-peers}

make --no-print-directory build >/dev/null
go build -o "$out/idleconns" ./internal/bench/idleconns

echo "== go benchmarks" >&2
go test -run '^$' -bench . -benchmem -count 5 ./balancer/... | tee "$out/go.txt" >&2

echo "== vs-peers http ($rounds rounds of ${seconds}s)" >&2
"$vs_peers" --mode http --rounds "$rounds" --seconds "$seconds" -- scripts/bench-sut.sh {LISTEN} {BACKENDS} | tee "$out/vs-peers.txt" >&2

echo "== 10,000 idle client connections" >&2
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
backend=$(freeport)
PORT=$backend bin/example-app >"$out/backend.log" 2>&1 &
pids="$!"
listen=127.0.0.1:$(freeport)
scripts/bench-sut.sh "$listen" "127.0.0.1:$backend" >"$out/sut.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do curl -fs -o /dev/null "http://$listen/" && break; sleep 0.1; done
"$out/idleconns" -addr "$listen" -pid "$(pgrep -f "berth-bench-${listen##*:}.yaml")" -n 10000 | tee "$out/idle.txt" >&2

{
  echo "<!-- bench:begin (written by scripts/bench.sh; do not edit by hand) -->"
  echo "Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), commit $(git describe --always --dirty)."
  echo
  echo "vs-peers, http mode, $rounds rounds of ${seconds}s, medians (\`make bench\`):"
  echo '```'
  cat "$out/vs-peers.txt"
  echo '```'
  echo "Memory with 10,000 idle keep-alive client connections:"
  echo '```'
  cat "$out/idle.txt"
  echo '```'
  echo "Go benchmarks (\`go test -run '^\$' -bench . -benchmem -count 5 ./balancer/...\`):"
  echo '```'
  grep -E '^(Benchmark|goos|cpu)' "$out/go.txt"
  echo '```'
  echo "<!-- bench:end -->"
} > "$out/block.md"
python3 - "$out/block.md" docs/benchmarks.md <<'PY'
import re, sys
block = open(sys.argv[1]).read()
doc = open(sys.argv[2]).read()
new = re.sub(r"<!-- bench:begin.*?<!-- bench:end -->\n?", lambda _: block, doc, flags=re.S)
open(sys.argv[2], "w").write(new if new != doc or "bench:begin" in doc else doc + "\n" + block)
PY
echo "figures written to docs/benchmarks.md" >&2
