package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-lb/berth/agent/admin"
	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/discovery"
)

// withDrains marks the targets `berth drain` drains.
func (a *Agent) withDrains(targets []discovery.Target) []discovery.Target {
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	live := map[string]bool{}
	for i := range targets {
		live[targets[i].ID] = true
		if a.manualDrains[targets[i].ID] {
			targets[i].Draining = true
		}
	}
	for id := range a.manualDrains {
		if !live[id] {
			delete(a.manualDrains, id) // the container is gone: nothing left to drain
		}
	}
	return targets
}

// matching returns this node's targets that ref names: a target ID, or a
// container by ID (a prefix of at least 4 characters) or name.
func (a *Agent) matching(ref string) []discovery.Target {
	ref = strings.TrimPrefix(strings.TrimSpace(ref), "/")
	var out []discovery.Target
	if len(ref) == 0 {
		return nil
	}
	for _, t := range a.view.Load().local {
		containerID := strings.SplitN(strings.TrimPrefix(t.ID, t.Node+"/"), "/", 2)[0]
		if t.ID == ref || t.ContainerName == ref || len(ref) >= 4 && (strings.HasPrefix(t.ContainerID, ref) || strings.HasPrefix(containerID, ref)) {
			out = append(out, t)
		}
	}
	return out
}

// Drain implements admin.Source: it drains the targets ref names across the
// fleet and returns their drains.
func (a *Agent) Drain(ref string) ([]api.Drain, error) {
	targets := a.matching(ref)
	if len(targets) == 0 {
		return nil, fmt.Errorf("agent: %q: %w: no target of this node has that ID or container; ask the agent on the container's own host (--admin)", ref, admin.ErrNotFound)
	}
	a.drainMu.Lock()
	ids := make([]string, len(targets))
	for i, t := range targets {
		a.manualDrains[t.ID] = true
		ids[i] = t.ID
	}
	a.drainMu.Unlock()
	a.log.Info("agent: drain requested", "ref", ref, "targets", ids)
	select {
	case a.kick <- struct{}{}:
	default:
	}
	// The control loop publishes the drain within milliseconds; answer with
	// the drains as soon as they show.
	deadline := time.Now().Add(2 * time.Second)
	for {
		drains := a.drainsOf(ids)
		if len(drains) == len(ids) || time.Now().After(deadline) {
			return drains, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Undrain implements admin.Source: the targets ref names serve again.
func (a *Agent) Undrain(ref string) error {
	targets := a.matching(ref)
	a.drainMu.Lock()
	found := false
	for _, t := range targets {
		if a.manualDrains[t.ID] {
			delete(a.manualDrains, t.ID)
			found = true
		}
	}
	a.drainMu.Unlock()
	if !found {
		return fmt.Errorf("agent: %q: %w among the targets drained with berth drain (a stopping container's drain cannot be undone)", ref, admin.ErrNotFound)
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
	return nil
}

// Drains implements admin.Source: every draining target of this node.
func (a *Agent) Drains() []api.Drain {
	return a.drainsOf(nil)
}

// drainsOf returns the drains of the given targets (nil: all of them).
func (a *Agent) drainsOf(ids []string) []api.Drain {
	v := a.view.Load()
	now := time.Now()
	var out []api.Drain
	for _, t := range v.local {
		if !t.Draining || ids != nil && !slices.Contains(ids, t.ID) {
			continue
		}
		a.drainMu.Lock()
		started, ok := a.drainsSince[t.ID]
		requested := a.manualDrains[t.ID]
		a.drainMu.Unlock()
		if !ok {
			continue
		}
		d := api.Drain{Target: t.ID, Container: t.ContainerName, Started: started, Deadline: started.Add(v.desired.delays[t.ID]),
			InFlight: a.lb.InFlight(t.ID), Nodes: 1, Reported: 1, Requested: requested}
		if a.cluster != nil && !t.LocalOnly {
			remote, reported, members := a.cluster.DrainProgress(t.ID)
			d.InFlight += remote
			d.Nodes += members
			d.Reported += reported
		}
		switch {
		case d.InFlight == 0 && d.Reported == d.Nodes:
			d.Done, d.Outcome = true, "drained"
		case !now.Before(d.Deadline):
			d.Done, d.Outcome = true, "delay_ended"
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y api.Drain) int { return strings.Compare(x.Target, y.Target) })
	return out
}
