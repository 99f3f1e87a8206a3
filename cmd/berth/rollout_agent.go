package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/berth-lb/berth/agent/api"
)

// agentLabel marks the berth agent's own compose service (deploy/compose*.yaml,
// docker-compose.yml): berth rollout then replaces it by a hand-over.
const agentLabel = "org.berth-lb.agent"

// isAgent reports whether a container runs the berth agent: it carries
// agentLabel, or runs `berth agent`.
func isAgent(info container.InspectResponse) bool {
	if info.Config != nil && info.Config.Labels[agentLabel] == "true" {
		return true
	}
	return filepath.Base(info.Path) == "berth" && len(info.Args) > 0 && info.Args[0] == "agent"
}

// agentService reports whether the running containers are berth agents.
func (r *rollout) agentService(ctx context.Context, running []containerRef) (bool, error) {
	agents := 0
	for _, c := range running {
		info, err := r.docker.ContainerInspect(ctx, c.id)
		if err != nil {
			return false, fmt.Errorf("docker: inspect %s: %w", c.name, err)
		}
		if isAgent(info) {
			agents++
		}
	}
	switch {
	case agents == 0:
		return false, nil
	case agents != len(running) || len(running) != 1:
		return false, fmt.Errorf("%s/%s runs %d container(s), %d of them berth agents: an agent's service runs one agent per host, which berth rollout replaces by a hand-over", r.project, r.service, len(running), agents)
	}
	return true, nil
}

// rollAgent replaces the agent of this host, the one berth rollout talks to:
// the new container takes the old one's listening sockets over
// upgrade.socket (docs/rollout.md, "Upgrading the agent"), and the old one
// drains and exits. Its restart policy is set to no meanwhile, so Docker
// does not start it again when it exits; a roll back restores it.
func (r *rollout) rollAgent(ctx context.Context, old containerRef, hash string) error {
	before, err := r.agentStarted()
	if err != nil {
		return err
	}
	info, err := r.docker.ContainerInspect(ctx, old.id)
	if err != nil {
		return fmt.Errorf("docker: inspect %s: %w", old.name, err)
	}
	restart := info.HostConfig.RestartPolicy
	if _, err := r.docker.ContainerUpdate(ctx, old.id, container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}}); err != nil {
		return fmt.Errorf("docker: keep %s from restarting once it hands over: %w", old.name, err)
	}
	r.progress.say("rolling out the agent %s/%s: the new agent takes the listening sockets over from %s", r.project, r.service, old.name)
	fresh, err := r.startNew(ctx, 1, hash)
	if err == nil {
		err = r.waitTakeover(ctx, fresh[0], before)
		if err != nil {
			r.progress.say("rolling back: removing %s; %s keeps serving", fresh[0].name, old.name)
			r.remove(ctx, fresh)
		}
	}
	if err != nil {
		if _, uerr := r.docker.ContainerUpdate(ctx, old.id, container.UpdateConfig{RestartPolicy: restart}); uerr != nil {
			r.progress.say("docker: restore the restart policy of %s (%s): %v", old.name, restart.Name, uerr)
		}
		return fmt.Errorf("rolled back: %w", err)
	}
	// It stops by itself once its requests are done; stopping it waits for that.
	r.remove(ctx, []containerRef{old})
	if err := r.verify(ctx, hash, 1); err != nil {
		return err
	}
	r.progress.done("done: %s/%s now runs %s", r.project, r.service, fresh[0].name)
	return nil
}

// agentStarted is when the agent answering the admin API started.
func (r *rollout) agentStarted() (time.Time, error) {
	body, err := r.admin.get("/api/v1/status", nil)
	if err != nil {
		return time.Time{}, err
	}
	var st api.Status
	if err := r.admin.decode("/api/v1/status", body, &st); err != nil {
		return time.Time{}, err
	}
	return st.Started, nil
}

// waitTakeover waits until the new agent answers the admin API: an agent
// taking over answers it only once it serves, its predecessor until then.
func (r *rollout) waitTakeover(ctx context.Context, fresh containerRef, before time.Time) error {
	deadline := time.Now().Add(r.timeout)
	for {
		info, err := r.docker.ContainerInspect(ctx, fresh.id)
		if err != nil {
			return fmt.Errorf("docker: inspect %s: %w", fresh.name, err)
		}
		if !info.State.Running || info.RestartCount > 0 {
			// A restart policy starts it again at once: its first exit says enough.
			return fmt.Errorf("the new agent %s exited (%s, exit code %d, restarted %d time(s)); see docker logs %s", fresh.name, info.State.Status, info.State.ExitCode, info.RestartCount, fresh.name)
		}
		// While the admin socket passes from one agent to the other, a call
		// may fail: the deadline decides.
		if started, err := r.agentStarted(); err == nil && started.After(before) {
			r.progress.say("the new agent %s serves; the old one drains and exits", fresh.name)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new agent %s did not take over within %s; see docker logs %s", fresh.name, r.timeout, fresh.name)
		}
		r.progress.update("waiting for the new agent %s to take over", fresh.name)
		time.Sleep(drainPoll)
	}
}
