#!/usr/bin/env bash
# Makes sure both compose flavours berth rollout is tested with run here
# (cmd/berth/rollout_states_integration_test.go): the Compose v2 plugin
# (`docker compose`) and docker-compose v1 (Debian's package). Quick when both
# are there; `make test` runs it.
#
# A missing plugin is built from the Go module proxy with go install (a large
# build: about 3 minutes on two busy cores) and copied to
# ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose, where the docker CLI
# looks for plugins. A plugin that is already there, of any version, is kept.
set -euo pipefail

version=v2.29.7
plugin="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"

if ! docker compose version >/dev/null 2>&1; then
	echo "ensure-compose: docker compose is missing; building Compose $version with go install into $plugin (a few minutes)" >&2
	gobin=$(mktemp -d /tmp/berth-ensure-compose.XXXXXX)
	trap 'rm -rf "$gobin"' EXIT
	if ! GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath \
		-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
		"github.com/docker/compose/v2/cmd@$version"; then
		echo "ensure-compose: go install github.com/docker/compose/v2/cmd@$version failed (it needs the Go module proxy); install the Compose plugin yourself: https://docs.docker.com/compose/install/" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$plugin")"
	install -m 0755 "$gobin/cmd" "$plugin"
	if ! docker compose version >&2; then
		echo "ensure-compose: $plugin is installed but docker compose does not run; is this docker CLI older than 19.03 (no plugins)?" >&2
		exit 1
	fi
fi

"$(dirname "$0")/ensure-tools.sh" docker-compose=docker-compose
