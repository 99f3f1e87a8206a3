#!/usr/bin/env bash
# bench-tls.sh: HTTPS (HTTP/1.1 over TLS) and HTTP/2 (h2 by ALPN) throughput of berth
# beside HAProxy, the same certificate (ECDSA P-256), the same backend (bin/example-app),
# each proxy pinned to core 0 and h2load to core 1. Loopback only. Prints one table;
# scripts/bench.sh writes it into docs/benchmarks.md.
#   BENCH_SECONDS (default 6), BENCH_CLIENTS (default 50), BENCH_STREAMS (h2, default 10).
#   BERTH_BIN (default bin/berth): the berth under test; BERTH_B: a second berth binary,
#   measured interleaved with the first in the same run (an A/B: "berth" is A, "berth-B" is B).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-6} clients=${BENCH_CLIENTS:-50} streams=${BENCH_STREAMS:-10}
out=$(mktemp -d /tmp/berth-bench-tls.XXXXXX)
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT
scripts/ensure-tools.sh h2load=nghttp2-client haproxy=haproxy
[[ -x bin/berth && -x bin/example-app ]] || make --no-print-directory build >/dev/null
berth_bin=${BERTH_BIN:-bin/berth} berth_b=${BERTH_B:-}
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pin() { if command -v taskset >/dev/null && (($(nproc) > 1)); then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
# spawn CORE LOG COMMAND...: COMMAND pinned to CORE in the background, its PID in $pids. Not
# `pin ... &`: that backgrounds a subshell running the function, whose PID the trap would
# kill, leaving the proxy running after the script.
spawn() {
  if command -v taskset >/dev/null && (($(nproc) > 1)); then taskset -c "$1" "${@:3}" >"$2" 2>&1 &
  else "${@:3}" >"$2" 2>&1 & fi
  pids="$pids $!"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
cat "$out/cert.pem" "$out/key.pem" >"$out/haproxy.pem"

backend=$(freeport)
PORT=$backend bin/example-app >"$out/backend.log" 2>&1 &
pids="$pids $!"

# start_berth NAME BINARY: starts a berth from BINARY; its address is in $addr.
start_berth() {
  addr=127.0.0.1:$(freeport)
  cat >"$out/$1.yaml" <<CONF
node: {name: bench, advertise: 127.0.0.1}
# Its own agent, not an upgrade of another benchmark's (same node name): no hand-over.
upgrade: {socket: ""}
docker: {enabled: false}
cluster: {enabled: false}
admin: {listen: 127.0.0.1:0}
log: {access: "off"}
listeners:
  - name: secure
    protocol: https
    address: $addr
    certificates: [{cert: $out/cert.pem, key: $out/key.pem}]
    default: {forward: bench}
static:
  bench: [127.0.0.1:$backend]
CONF
  spawn 0 "$out/$1.log" "$2" agent --config "$out/$1.yaml" --log-level warn
}
start_berth berth "$berth_bin"
berth=$addr berth_b_addr=""
if [[ -n $berth_b ]]; then start_berth berth-b "$berth_b" && berth_b_addr=$addr; fi

haproxy=127.0.0.1:$(freeport)
cat >"$out/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind $haproxy ssl crt $out/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$backend
CONF
spawn 0 "$out/haproxy.log" haproxy -f "$out/haproxy.cfg"

for addr in "$berth" "$haproxy" $berth_b_addr; do
  for _ in $(seq 100); do curl -fsk -o /dev/null "https://$addr/" && break; sleep 0.1; done
done

# run NAME ADDR MODE: requests/s by h2load (MODE h1: HTTP/1.1 over TLS; h2: HTTP/2).
run() {
  local flags=(-c "$clients" -D "$seconds" --warm-up-time 1)
  if [[ $3 == h1 ]]; then flags+=(--h1); else flags+=(-m "$streams"); fi
  pin 1 h2load "${flags[@]}" "https://$2/" >"$out/$1-$3.txt" 2>&1
  awk '/^finished in/ { gsub(",", "", $4); print $4 }' "$out/$1-$3.txt"
}
printf '%-8s %-22s %14s %10s\n' proxy protocol 'requests/s' 'vs HAProxy'
for mode in h1 h2; do
  b=$(run berth "$berth" "$mode") h=$(run haproxy "$haproxy" "$mode")
  [[ -z $berth_b ]] || bb=$(run berth-b "$berth_b_addr" "$mode")
  label=$([[ $mode == h1 ]] && echo "HTTPS (HTTP/1.1, TLS)" || echo "HTTP/2 (TLS, ALPN h2)")
  printf '%-8s %-22s %14.0f %10s\n' HAProxy "$label" "$h" 1.00x
  printf '%-8s %-22s %14.0f %9.2fx\n' berth "$label" "$b" "$(echo "$b / $h" | bc -l)"
  [[ -z $berth_b ]] || printf '%-8s %-22s %14.0f %9.2fx\n' berth-B "$label" "$bb" "$(echo "$bb / $h" | bc -l)"
done
echo "h2load -c $clients -D ${seconds}s (HTTP/2: -m $streams streams per connection), one core per proxy"
