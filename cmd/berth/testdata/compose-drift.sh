#!/bin/sh
# A compose whose `up` creates containers of another definition than the
# file's (VERSION=drifted), as a deploy changing the service at the same time
# would. TestRolloutFromAnyState runs berth rollout with it:
#   BERTH_COMPOSE="sh testdata/compose-drift.sh docker compose"
for arg; do
	if [ "$arg" = up ]; then
		export VERSION=drifted
	fi
done
exec "$@"
