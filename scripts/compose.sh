#!/usr/bin/env bash
# Runs Docker Compose with whichever flavour this machine has: the `docker
# compose` v2 plugin when it works, else the `docker-compose` v1 program
# (installed with apt-get when neither is present). Arguments pass through.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
	exec docker compose "$@"
fi

if ! command -v docker-compose >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "compose: neither 'docker compose' nor 'docker-compose' is installed; installing docker-compose with apt-get" >&2
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2
	else
		echo "compose: neither 'docker compose' nor 'docker-compose' is installed; install one of them (https://docs.docker.com/compose/install/)" >&2
		exit 1
	fi
fi

exec docker-compose "$@"
