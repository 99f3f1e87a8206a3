#!/usr/bin/env bash
# Makes sure a Docker daemon answers, starting dockerd in the background when
# none does (CI machines and fresh containers), so that `make test` and
# `make run` need no manual step.
set -euo pipefail

log=/tmp/berth-dockerd.log
wait_seconds=60

if docker info >/dev/null 2>&1; then
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
	echo "ensure-docker: no Docker daemon answers and dockerd is not installed; install Docker (apt-get install docker.io) or start a daemon" >&2
	exit 1
fi

run_as_root=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "ensure-docker: no Docker daemon answers and starting dockerd needs root; start it yourself or run as root" >&2
		exit 1
	fi
	run_as_root=(sudo -n)
fi

echo "ensure-docker: no Docker daemon answers; starting dockerd (log: $log)" >&2
# setsid: the daemon must outlive this script and a Ctrl-C of the make that ran it.
nohup "${run_as_root[@]}" setsid dockerd >"$log" 2>&1 </dev/null &

for _ in $(seq "$wait_seconds"); do
	if docker info >/dev/null 2>&1; then
		echo "ensure-docker: dockerd is up" >&2
		exit 0
	fi
	sleep 1
done

echo "ensure-docker: dockerd did not answer within ${wait_seconds}s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
