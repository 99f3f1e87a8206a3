#!/usr/bin/env bash
# core-busy.sh COMMAND...: runs COMMAND (its output passes through), sampling how busy
# cores 0 and 1 are every half second, then prints one line: the median busy share of
# each over the samples in which both were more than half busy, i.e. while a proxy
# served vs-peers' load (client and backends on core 0, the proxy on core 1; the direct
# rounds, set-up and pauses leave core 1 idle and are not counted). A core near 100 %
# is what bounds the figures above it: on core 0 the client's side, not the proxy.
set -euo pipefail
samples=$(mktemp /tmp/core-busy.XXXXXX)
# busy and total clock ticks of cpu0 and cpu1: "busy0 total0 busy1 total1"
ticks() { awk '$1 == "cpu0" || $1 == "cpu1" { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", t - $5 - $6, t } END { print "" }' /proc/stat; }
sample() {
  local prev now
  prev=$(ticks)
  while sleep 0.5; do
    now=$(ticks)
    echo "$prev $now" | awk '{ d0 = $6 - $2; d1 = $8 - $4; if (d0 > 0 && d1 > 0) printf "%.3f %.3f\n", ($5 - $1) / d0, ($7 - $3) / d1 }' >>"$samples"
    prev=$now
  done
}
sample &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true; rm -f "$samples"' EXIT
status=0
"$@" || status=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
awk '$1 > 0.5 && $2 > 0.5 { c0[n] = $1; c1[n] = $2; n++ }
  function median(a, n,   i, j, t) {
    for (i = 1; i < n; i++) for (j = i; j > 0 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
  }
  END {
    if (n == 0) { print "cores busy: no half second with both cores loaded"; exit }
    printf "cores busy while a proxy served (median of %d half seconds): core 0 (client, backends) %.0f %%, core 1 (proxy) %.0f %%\n", n, 100 * median(c0, n), 100 * median(c1, n)
  }' "$samples"
exit "$status"
