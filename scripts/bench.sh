#!/usr/bin/env bash
# bench.sh: berth's benchmarks, run by `make bench`. Loopback only.
#   1. Go benchmarks of the data plane (-benchmem), 5 runs each, medians; the rule index's
#      at 1 to 100,000 rules, 3 short runs each.
#   2. ../shared/bench/vs-peers in http mode: berth beside HAProxy and nginx, one pinned core each;
#      again with 10,000 rules loaded (scripts/bench-sut.sh ... 10000; the peers have none);
#      then in tcp mode (scripts/bench-tcp.sh, its own block of docs/benchmarks.md); each
#      run says how busy the client's and the proxy's cores were (scripts/core-busy.sh);
#      then HTTPS and HTTP/2 beside HAProxy with h2load, rotating rounds (scripts/bench-tls.sh).
#   3. Resident memory of berth with 10,000 idle keep-alive client connections.
# The figures are written between the bench markers of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$out"; [[ -n ${pids:-} ]] && kill $pids 2>/dev/null || true' EXIT
rounds=${BENCH_ROUNDS:-3} seconds=${BENCH_SECONDS:-6}
vs_peers=${VS_PEERS:-../shared/bench/vs-peers}

# median_benchmarks FILE: one line per benchmark with the median of each of its figures
# (ns/op, B/op, allocs/op and any the benchmark reports itself, such as heap-bytes).
median_benchmarks() {
  awk '/^Benchmark/ { k = $1; r = ++n[k]; for (i = 3; i < NF; i += 2) { if (!((k, $(i + 1)) in seen)) { seen[k, $(i + 1)] = 1; units[k] = units[k] " " $(i + 1) }; v[k, $(i + 1), r] = $i } }
    function med(k, u, c,   i, j, t, a) { for (i = 1; i <= c; i++) a[i] = v[k, u, i] + 0
      for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
    END { for (k in n) { line = sprintf("%-44s", k); m = split(substr(units[k], 2), us, " ")
      for (i = 1; i <= m; i++) line = line sprintf(" %12.0f %s", med(k, us[i], n[k]), us[i]); print line } }' "$1" | sort
}

scripts/ensure-tools.sh haproxy=haproxy nginx=nginx wrk=wrk h2load=nghttp2-client
make --no-print-directory build >/dev/null
go build -o "$out/idleconns" ./internal/bench/idleconns

# The rule index's benchmarks at up to 100,000 rules run on their own, shorter.
rule_benchmarks='BenchmarkMatchRequestRules|BenchmarkCompileRules'
echo "== go benchmarks" >&2
go test -run '^$' -bench . -skip "$rule_benchmarks" -benchmem -count 5 ./balancer/... | tee "$out/go.txt" >&2

echo "== rule index, 1 to 100,000 rules" >&2
go test -run '^$' -bench "$rule_benchmarks" -benchmem -benchtime 200ms -count 3 ./balancer/rules | tee "$out/rules.txt" >&2

echo "== vs-peers http ($rounds rounds of ${seconds}s)" >&2
scripts/core-busy.sh "$vs_peers" --mode http --rounds "$rounds" --seconds "$seconds" -- scripts/bench-sut.sh {LISTEN} {BACKENDS} | tee "$out/vs-peers.txt" >&2

echo "== vs-peers http with 10,000 rules loaded" >&2
scripts/core-busy.sh "$vs_peers" --mode http --rounds "$rounds" --seconds "$seconds" -- scripts/bench-sut.sh {LISTEN} {BACKENDS} 10000 | tee "$out/vs-peers-rules.txt" >&2

echo "== vs-peers tcp" >&2
scripts/bench-tcp.sh

echo "== https and http/2 (h2load)" >&2
scripts/bench-tls.sh | tee "$out/tls.txt" >&2

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
# HAProxy beside it, at 9,000 connections: it reserves two descriptors per
# connection and the descriptor limit here (20,000) allows no more.
hap_listen=127.0.0.1:$(freeport)
cat > "$out/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9500
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind $hap_listen
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$backend
CONF
haproxy -f "$out/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
hap_pid=$!
pids="$pids $hap_pid"
for _ in $(seq 50); do curl -fs -o /dev/null "http://$hap_listen/" && break; sleep 0.1; done
"$out/idleconns" -addr "$hap_listen" -pid "$hap_pid" -n 9000 | tee "$out/idle-haproxy.txt" >&2

{
  echo "<!-- bench:begin (written by scripts/bench.sh; do not edit by hand) -->"
  echo "Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), commit $(git describe --always --dirty)."
  echo
  echo "vs-peers, http mode, $rounds rounds of ${seconds}s, medians (\`make bench\`):"
  echo '```'
  cat "$out/vs-peers.txt"
  echo '```'
  echo "The same with 10,000 rules loaded (5,000 exact hosts, 5,000 path prefixes; HAProxy and nginx have none):"
  echo '```'
  cat "$out/vs-peers-rules.txt"
  echo '```'
  echo "HTTPS and HTTP/2 beside HAProxy, same certificate, nginx backend, $rounds rotating rounds, medians (scripts/bench-tls.sh):"
  echo '```'
  cat "$out/tls.txt"
  echo '```'
  echo "Memory with idle keep-alive client connections (one request each, then idle), berth:"
  echo '```'
  cat "$out/idle.txt"
  echo '```'
  echo "HAProxy, same backend and client:"
  echo '```'
  cat "$out/idle-haproxy.txt"
  echo '```'
  echo "Go benchmarks (\`go test -run '^\$' -bench . -benchmem -count 5 ./balancer/...\`), medians of 5 runs:"
  echo '```'
  median_benchmarks "$out/go.txt"
  echo '```'
  echo "Rule index (\`go test -run '^\$' -bench '$rule_benchmarks' -benchmem -benchtime 200ms -count 3 ./balancer/rules\`), medians of 3 runs:"
  echo '```'
  median_benchmarks "$out/rules.txt"
  echo '```'
  echo "<!-- bench:end -->"
} | scripts/write-block.py bench docs/benchmarks.md
echo "figures written to docs/benchmarks.md" >&2
