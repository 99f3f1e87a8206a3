#!/usr/bin/env bash
# bench-tls.sh: HTTPS (HTTP/1.1 over TLS) and HTTP/2 (h2 by ALPN) throughput of berth
# beside HAProxy, the same certificate (ECDSA P-256), the same backend (nginx),
# each proxy pinned to core 0, h2load and the backend to core 1. Loopback only. Prints one table;
# scripts/bench.sh writes it into docs/benchmarks.md.
#   BENCH_SECONDS (default 6), BENCH_CLIENTS (default 50), BENCH_STREAMS (h2, default 10),
#   BENCH_ROUNDS (default 3): rounds in a rotating order, of which the medians are shown.
#   BENCH_PERF=1: also each proxy's syscalls and context switches per request (perf stat).
#   BERTH_BIN (default bin/berth): the berth under test; BERTH_B: a second berth binary,
#   measured interleaved with the first in the same run (an A/B: "berth" is A, "berth-B" is B).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-6} clients=${BENCH_CLIENTS:-50} streams=${BENCH_STREAMS:-10} rounds=${BENCH_ROUNDS:-3}
out=$(mktemp -d /tmp/berth-bench-tls.XXXXXX)
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT
scripts/ensure-tools.sh h2load=nghttp2-client haproxy=haproxy nginx=nginx
[[ -x bin/berth ]] || make --no-print-directory build >/dev/null
berth_bin=${BERTH_BIN:-bin/berth} berth_b=${BERTH_B:-} perf=${BENCH_PERF:-}
if [[ -n $perf ]]; then scripts/ensure-tools.sh perf=linux-perf; fi
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pin() { if command -v taskset >/dev/null && (($(nproc) > 1)); then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
# spawn CORE LOG COMMAND...: COMMAND pinned to CORE in the background, its PID in $pids and
# $spawned. Not `pin ... &`: that backgrounds a subshell running the function, whose PID
# the trap would kill, leaving the proxy running after the script.
spawn() {
  if command -v taskset >/dev/null && (($(nproc) > 1)); then taskset -c "$1" "${@:3}" >"$2" 2>&1 &
  else "${@:3}" >"$2" 2>&1 & fi
  spawned=$!
  pids="$pids $spawned"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
cat "$out/cert.pem" "$out/key.pem" >"$out/haproxy.pem"

backend=$(freeport)
# nginx answering "ok", with the client, as vs-peers has its backends: the proxy's core
# is the proxy's alone and saturates (a Go backend on the client's core saturated that
# core first; on the proxy's, it took a third of it).
cat >"$out/backend.conf" <<CONF
worker_processes 1; daemon off; pid $out/backend.pid; error_log $out/backend.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$backend; location / { return 200 "ok\n"; } } }
CONF
spawn 1 "$out/backend.log" nginx -c "$out/backend.conf"

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
berth=$addr berth_pid=$spawned berth_b_addr="" berth_b_pid=""
if [[ -n $berth_b ]]; then start_berth berth-b "$berth_b" && berth_b_addr=$addr berth_b_pid=$spawned; fi

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
haproxy_pid=$spawned

for addr in "$berth" "$haproxy" $berth_b_addr; do
  for _ in $(seq 100); do curl -fsk -o /dev/null "https://$addr/" && break; sleep 0.1; done
done

# cpu_ticks PID: the user and system CPU time PID has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run NAME ADDR PID MODE: "requests/s CPU-µs-per-request syscalls-per-request
# switches-per-request" by h2load (MODE h1: HTTP/1.1 over TLS; h2: HTTP/2); the CPU is the
# proxy's (PID) over the whole run, warm-up included; the syscalls and context switches
# (BENCH_PERF only, else nan) are counted by perf stat from the end of the warm-up.
run() {
  local flags=(-c "$clients" -D "$seconds" --warm-up-time 1) before counter=""
  if [[ $4 == h1 ]]; then flags+=(--h1); else flags+=(-m "$streams"); fi
  before=$(cpu_ticks "$3")
  rm -f "$out/$1-$4.perf"
  if [[ -n $perf ]]; then
    (sleep 1 && exec perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$out/$1-$4.perf" -p "$3") &
    counter=$!
  fi
  pin 1 h2load "${flags[@]}" "https://$2/" >"$out/$1-$4.txt" 2>&1
  if [[ -n $counter ]]; then kill -INT "$counter" 2>/dev/null; wait "$counter" || true; fi
  awk -v ticks=$(($(cpu_ticks "$3") - before)) -v hz="$(getconf CLK_TCK)" -v counts="$out/$1-$4.perf" '
    BEGIN { while ((getline line < counts) > 0) { split(line, f, ","); if (f[3] != "") n[f[3]] = f[1] } }
    /^finished in/ { gsub(",", "", $4); rps = $4 }
    /^requests:/ { done = $2 }
    END {
      per = done > 0 && ("raw_syscalls:sys_enter" in n)
      printf "%s %.1f %s %s", rps, (done > 0 ? ticks * 1e6 / hz / done : 0),
        (per ? sprintf("%.2f", n["raw_syscalls:sys_enter"] / done) : "nan"),
        (per ? sprintf("%.3f", n["context-switches"] / done) : "nan") }' "$out/$1-$4.txt"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# of SAMPLES: the median of a space-separated list.
of() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | median; }
names=(berth haproxy) addrs=("$berth" "$haproxy") procs=("$berth_pid" "$haproxy_pid")
if [[ -n $berth_b ]]; then names+=(berth-B) addrs+=("$berth_b_addr") procs+=("$berth_b_pid"); fi
printf '%-8s %-22s %11s %10s %12s %10s   %s\n' proxy protocol 'requests/s' 'vs HAProxy' 'CPU µs/req' 'vs HAProxy' 'rounds (requests/s)'
for mode in h1 h2; do
  declare -A rps=() cpu=() calls=() switches=()
  # Rotating rounds: each proxy takes every place in the order, so a drift of the
  # shared machine falls on all of them.
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#names[@]}; i++)); do
      k=$(((i + r) % ${#names[@]}))
      read -r x c y z <<<"$(run "${names[$k]}" "${addrs[$k]}" "${procs[$k]}" "$mode")"
      rps[${names[$k]}]+="$x " cpu[${names[$k]}]+="$c " calls[${names[$k]}]+="$y " switches[${names[$k]}]+="$z "
    done
  done
  label=$([[ $mode == h1 ]] && echo "HTTPS (HTTP/1.1, TLS)" || echo "HTTP/2 (TLS, ALPN h2)")
  h=$(of "${rps[haproxy]}") hc=$(of "${cpu[haproxy]}")
  for name in haproxy berth ${berth_b:+berth-B}; do
    m=$(of "${rps[$name]}") mc=$(of "${cpu[$name]}")
    shown=$([[ $name == haproxy ]] && echo HAProxy || echo "$name")
    printf '%-8s %-22s %11.0f %9.2fx %12.1f %9.2fx   %s\n' "$shown" "$label" "$m" "$(echo "$m / $h" | bc -l)" "$mc" "$(echo "$mc / $hc" | bc -l)" "$(printf '%.0f ' ${rps[$name]})"
    [[ -z $perf ]] || printf '%-8s %-22s %11s syscalls/req %s, context switches/req %s (medians)\n' "" "" "" "$(of "${calls[$name]}")" "$(of "${switches[$name]}")"
  done
  unset rps cpu calls switches
done
echo "h2load -c $clients -D ${seconds}s (HTTP/2: -m $streams streams per connection), one core per proxy; medians of $rounds rotating rounds"
echo "CPU µs/req: the proxy's user and system time per request (lower is better; vs HAProxy below 1.00x is less)"
