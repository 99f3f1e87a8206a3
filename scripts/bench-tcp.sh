#!/usr/bin/env bash
# bench-tcp.sh: berth's L4 benchmark, run by scripts/bench.sh (`make bench`) or alone.
# ../shared/bench/vs-peers in tcp mode: berth's TCP listener beside HAProxy (mode tcp)
# and nginx (stream), one pinned core each, keep-alive HTTP through the L4 proxies plus a
# 512 MiB bulk download. The figures are written between the bench-tcp markers of
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/berth-bench-tcp.XXXXXX)
trap 'rm -rf "$out"' EXIT
rounds=${BENCH_ROUNDS:-3} seconds=${BENCH_SECONDS:-6}
vs_peers=${VS_PEERS:-../shared/bench/vs-peers}

make --no-print-directory build >/dev/null
echo "== vs-peers tcp ($rounds rounds of ${seconds}s)" >&2
scripts/core-busy.sh "$vs_peers" --mode tcp --rounds "$rounds" --seconds "$seconds" -- scripts/bench-sut-tcp.sh {LISTEN} {BACKENDS} | tee "$out/vs-peers.txt" >&2

{
  echo "<!-- bench-tcp:begin (written by scripts/bench-tcp.sh; do not edit by hand) -->"
  echo "Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), commit $(git describe --always --dirty)."
  echo
  echo "vs-peers, tcp mode, $rounds rounds of ${seconds}s, medians (\`scripts/bench-tcp.sh\`, part of \`make bench\`):"
  echo '```'
  cat "$out/vs-peers.txt"
  echo '```'
  echo "<!-- bench-tcp:end -->"
} | scripts/write-block.py bench-tcp docs/benchmarks.md
echo "tcp figures written to docs/benchmarks.md" >&2
