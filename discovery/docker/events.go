package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
)

// inspectFunc inspects one container; it returns an error satisfying cerrdefs.IsNotFound
// when the container is gone.
type inspectFunc func(ctx context.Context, id string) (containerInfo, error)

// eventKind groups event actions for the stats: "health_status: healthy" and its
// siblings count as "health_status", so the metric has a bounded set of labels.
func eventKind(action events.Action) string {
	kind, _, _ := strings.Cut(string(action), ":")
	return kind
}

// applyEvent applies one container event to the state. Only a start (or rename) costs an
// inspection; the other actions carry all they need. An error means Docker could not
// be asked, and the state is unchanged.
func applyEvent(ctx context.Context, s *hostState, msg events.Message, inspect inspectFunc) error {
	if msg.Type != events.ContainerEventType {
		return nil
	}
	id := msg.Actor.ID
	switch action := string(msg.Action); {
	case action == string(events.ActionStart):
		return refresh(ctx, s, id, inspect)
	case action == string(events.ActionRename):
		if !s.known(id) {
			return nil
		}
		return refresh(ctx, s, id, inspect)
	case action == string(events.ActionKill):
		s.kill(id, msg.Actor.Attributes["signal"])
	case action == string(events.ActionDie), action == string(events.ActionStop), action == string(events.ActionDestroy):
		s.remove(id)
	case strings.HasPrefix(action, string(events.ActionHealthStatus)):
		status := strings.TrimSpace(strings.TrimPrefix(action, string(events.ActionHealthStatus)+":"))
		if status == action || status == "" {
			// Without the status in the action, only an inspection tells it.
			if !s.known(id) {
				return nil
			}
			return refresh(ctx, s, id, inspect)
		}
		s.health(id, status)
	}
	// pause and unpause are ignored on purpose: a paused container keeps its target,
	// and health checks find out that it does not answer.
	return nil
}

func refresh(ctx context.Context, s *hostState, id string, inspect inspectFunc) error {
	info, err := inspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		s.remove(id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("docker: inspect container %s: %w", shortID(id), err)
	}
	s.upsert(info)
	return nil
}
