#!/usr/bin/env bash
# Installs the programs the tests and benchmarks run as real processes when
# they are not on PATH, so that a clean machine needs no manual step.
#   scripts/ensure-tools.sh [COMMAND=PACKAGE...]
# Without arguments: what `make test` needs (h2load drives HTTP/2 through berth
# in balancer/h2load_test.go). scripts/bench.sh names the peers it measures.
set -euo pipefail

# command=Debian package that provides it
tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
	tools=(h2load=nghttp2-client)
fi

missing=() packages=()
for tool in "${tools[@]}"; do
	if ! command -v "${tool%%=*}" >/dev/null 2>&1; then
		missing+=("${tool%%=*}")
		packages+=("${tool#*=}")
	fi
done
if [ ${#packages[@]} -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-tools: ${missing[*]} not found and apt-get is not there to install ${packages[*]}; install them yourself" >&2
	exit 1
fi

# Not root: sudo without a prompt (CI has no terminal); when sudo is missing or
# wants a password, its error is in the output shown below.
run_as_root=()
[ "$(id -u)" -eq 0 ] || run_as_root=(sudo -n)

echo "ensure-tools: installing ${packages[*]} (for ${missing[*]})${run_as_root:+ with sudo -n}" >&2
log=$(mktemp /tmp/berth-ensure-tools.XXXXXX)
trap 'rm -f "$log"' EXIT
if ! { "${run_as_root[@]}" apt-get update &&
	"${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
	echo "ensure-tools: installing ${packages[*]} failed (install them yourself, or run as root); the last lines of its output:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi

for tool in "${missing[@]}"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "ensure-tools: ${packages[*]} installed but $tool is still not on PATH" >&2
		exit 1
	fi
done
