#!/usr/bin/env bash
# Runs every `go test -fuzz` target of the module for FUZZTIME each (default
# 3m), one after the other. The seeds in each package's testdata/fuzz run in
# plain `go test` (make test); this explores beyond them. A failing input is
# written to testdata/fuzz/<target>/ by go test: commit it with the fix.
#   scripts/fuzz.sh [PACKAGE...]      (default: ./...)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3m}
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(./...)

status=0
for pkg in $(go list "${packages[@]}"); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $target for $fuzztime"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			status=1
		fi
	done
done
exit $status
