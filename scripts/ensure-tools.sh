#!/usr/bin/env bash
# Installs the programs the tests and benchmarks run as real processes when
# they are not on PATH, so that a clean machine needs no manual step.
#   scripts/ensure-tools.sh [COMMAND=PACKAGE|COMMAND=go:MODULE/PATH@VERSION...]
# A Debian package is installed with apt-get; a go: tool with go install, into
# $(go env GOBIN), else $(go env GOPATH)/bin, where the tests look for it too.
# Without arguments: what `make test` needs (h2load drives HTTP/2 through berth
# in balancer/h2load_test.go, h2spec checks its conformance in
# balancer/h2spec_test.go, chromium drives the dashboard in agent/admin and
# agent/dashboard_integration_test.go). scripts/bench.sh names the peers it
# measures.
set -euo pipefail

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
	tools=(h2load=nghttp2-client h2spec=go:github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible chromium=chromium)
fi

gobin() {
	local dir
	dir=$(go env GOBIN)
	[ -n "$dir" ] || dir="$(go env GOPATH | cut -d: -f1)/bin"
	echo "$dir"
}

missing=() packages=() modules=()
for tool in "${tools[@]}"; do
	command=${tool%%=*} source=${tool#*=}
	case $source in
	go:*)
		if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "$(gobin)/$command" ]; then
			modules+=("${source#go:}")
		fi
		;;
	*)
		if ! command -v "$command" >/dev/null 2>&1; then
			missing+=("$command")
			packages+=("$source")
		fi
		;;
	esac
done

for module in ${modules[@]+"${modules[@]}"}; do
	echo "ensure-tools: go install $module (into $(gobin))" >&2
	if ! go install "$module"; then
		echo "ensure-tools: go install $module failed (it needs the Go module proxy); install it yourself" >&2
		exit 1
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
