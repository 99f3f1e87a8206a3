package agent

import (
	"cmp"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/balancer"
	"github.com/berth-lb/berth/discovery"
)

// drainClock tells, for a draining target, when its deregistration delay ends
// and how many requests are still in flight to it.
type drainClock interface {
	drainDeadline(id string, delay time.Duration) time.Time
	inFlight(id string) int64
}

// desired is what one compilation produces: the balancer's config and the view
// the admin API shows.
type desired struct {
	balancer balancer.Config
	groups   []api.Group
	targets  []api.Target // counters are filled in when served
	rules    map[string][]api.Rule
	// draining holds the IDs of draining targets still routed: the agent
	// re-compiles while any remain, to drop them when they finish.
	draining []string
	// conflicts are label disagreements worth a log line.
	conflicts []string
}

// groupSpec is a group's policy with where it came from.
type groupSpec struct {
	config.Group
	source string
}

// compile merges the config file, the static targets, this host's discovered
// targets and the fleet's into the balancer's config. It is a pure function of
// its inputs.
func compile(cfg *config.Config, local discovery.State, remote []discovery.Target, clock drainClock, now time.Time) desired {
	var d desired
	all := append(slices.Clip(local.Targets), remote...)
	specs := groupSpecs(cfg, all, &d)

	members := map[string][]balancer.TargetConfig{}
	for _, name := range sortedKeys(cfg.Static) {
		for _, addr := range cfg.Static[name] {
			id := "static/" + name + "/" + addr
			members[name] = append(members[name], balancer.TargetConfig{ID: id, Address: addr, Serving: true, Weight: 1})
			d.targets = append(d.targets, api.Target{ID: id, Group: name, Node: cfg.Node.Name, Address: addr, State: "healthy", Source: "static"})
		}
	}
	for _, t := range all {
		state := targetState(t)
		source := "docker"
		if t.Node != cfg.Node.Name {
			source = "gossip"
		}
		for _, g := range t.Groups {
			if state == "draining" {
				delay := specs[g].DeregistrationDelay
				if clock.inFlight(t.ID) == 0 || !now.Before(clock.drainDeadline(t.ID, delay)) {
					continue // drained: removed from routing and from view
				}
				d.draining = append(d.draining, t.ID)
			}
			members[g] = append(members[g], balancer.TargetConfig{ID: t.ID, Address: t.Address, Serving: state == "healthy", Weight: t.Weight})
			d.targets = append(d.targets, api.Target{
				ID: t.ID, Group: g, Node: t.Node, Address: t.Address, LocalOnly: t.LocalOnly,
				State: state, Container: t.ContainerName, Source: source,
			})
		}
	}

	for _, name := range sortedKeys(specs) {
		spec := specs[name]
		d.balancer.Groups = append(d.balancer.Groups, balancer.GroupConfig{
			Name: name, Targets: members[name], Algorithm: spec.Algorithm,
			ConnectTimeout: spec.ConnectTimeout, ResponseTimeout: spec.ResponseTimeout,
		})
		states := map[string]int{}
		for _, t := range d.targets {
			if t.Group == name {
				states[t.State]++
			}
		}
		d.groups = append(d.groups, api.Group{
			Name: name, Algorithm: spec.Algorithm, DeregistrationDelay: spec.DeregistrationDelay.String(),
			Targets: len(members[name]), States: states,
		})
	}

	d.rules = map[string][]api.Rule{}
	labelRules := labelRulesByListener(all, &d)
	for _, l := range cfg.Listeners {
		lc := balancer.ListenerConfig{Name: l.Name, Address: l.Address, IdleTimeout: l.IdleTimeout}
		taken := map[int]bool{}
		for _, r := range l.Rules {
			lc.Rules = append(lc.Rules, balancer.Rule{Priority: r.Priority, Hosts: r.Host, Paths: r.Path, Source: "config", Action: action(r.Action)})
			taken[r.Priority] = true
		}
		for _, r := range labelRules[l.Name] {
			if taken[r.Priority] {
				d.conflicts = append(d.conflicts, "listener "+l.Name+": a label rule of group "+r.Group+" has priority "+itoa(r.Priority)+", which the config file or a newer container already uses; it is ignored")
				continue
			}
			taken[r.Priority] = true
			lc.Rules = append(lc.Rules, balancer.Rule{Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths, Source: "labels", Action: balancer.Action{Forward: r.Group}})
		}
		if l.Default != nil {
			lc.Default = action(*l.Default)
		}
		d.balancer.Listeners = append(d.balancer.Listeners, lc)
		for _, r := range lc.Rules {
			d.rules[l.Name] = append(d.rules[l.Name], api.Rule{Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths, Action: describeAction(r.Action), Source: r.Source})
		}
		sort.Slice(d.rules[l.Name], func(i, j int) bool { return d.rules[l.Name][i].Priority < d.rules[l.Name][j].Priority })
	}
	for listener := range labelRules {
		if !slices.ContainsFunc(cfg.Listeners, func(l config.Listener) bool { return l.Name == listener }) {
			d.conflicts = append(d.conflicts, "a container's berth.rule.listener names listener "+listener+", which the config does not define; its rules are ignored")
		}
	}
	sort.Slice(d.targets, func(i, j int) bool {
		if d.targets[i].Group != d.targets[j].Group {
			return d.targets[i].Group < d.targets[j].Group
		}
		return d.targets[i].ID < d.targets[j].ID
	})
	return d
}

// groupSpecs returns the policy of every group that is configured, static or
// discovered. The config file wins; otherwise the labels of the newest
// container of the group; otherwise the defaults.
func groupSpecs(cfg *config.Config, targets []discovery.Target, d *desired) map[string]groupSpec {
	specs := map[string]groupSpec{}
	for name, g := range cfg.Groups {
		specs[name] = groupSpec{g, "config"}
	}
	for name := range cfg.Static {
		if _, ok := specs[name]; !ok {
			specs[name] = groupSpec{config.DefaultGroup(), "default"}
		}
	}
	newestFirst := slices.Clone(targets)
	sort.SliceStable(newestFirst, func(i, j int) bool { return newestFirst[i].Created.After(newestFirst[j].Created) })
	labelled := map[string]discovery.GroupSettings{}
	disagree := map[string]bool{}
	for _, t := range newestFirst {
		for _, name := range t.Groups {
			if prev, ok := labelled[name]; ok {
				if !sameSettings(prev, t.Settings) && !disagree[name] {
					disagree[name] = true
					d.conflicts = append(d.conflicts, "containers of group "+name+" disagree on group labels; the newest container's labels apply")
				}
				continue
			}
			labelled[name] = t.Settings
			if _, ok := specs[name]; ok {
				continue
			}
			spec := groupSpec{config.DefaultGroup(), "labels"}
			if s := t.Settings; s.DeregistrationDelay != nil {
				spec.DeregistrationDelay = *s.DeregistrationDelay
			}
			if t.Settings.Algorithm != "" {
				spec.Algorithm = t.Settings.Algorithm
			}
			spec.Health = mergeHealth(spec.Health, t.Settings.Health)
			specs[name] = spec
		}
	}
	return specs
}

func sameSettings(a, b discovery.GroupSettings) bool {
	sameDelay := (a.DeregistrationDelay == nil) == (b.DeregistrationDelay == nil) &&
		(a.DeregistrationDelay == nil || *a.DeregistrationDelay == *b.DeregistrationDelay)
	return sameDelay && a.Algorithm == b.Algorithm && a.Health == b.Health
}

// labelRulesByListener collects the rules of the containers' labels, once per
// distinct rule (replicas repeat them), newest container first.
func labelRulesByListener(targets []discovery.Target, d *desired) map[string][]discovery.Rule {
	newestFirst := slices.Clone(targets)
	sort.SliceStable(newestFirst, func(i, j int) bool { return newestFirst[i].Created.After(newestFirst[j].Created) })
	out := map[string][]discovery.Rule{}
	seen := map[string]bool{}
	for _, t := range newestFirst {
		for _, r := range t.Rules {
			key := r.Listener + "\x00" + itoa(r.Priority) + "\x00" + r.Group + "\x00" + strings.Join(r.Hosts, ",") + "\x00" + strings.Join(r.Paths, ",")
			if seen[key] {
				continue
			}
			seen[key] = true
			out[r.Listener] = append(out[r.Listener], r)
		}
	}
	return out
}

// targetState is the state shown for a discovered target, with ALB's names.
func targetState(t discovery.Target) string {
	switch {
	case t.Draining:
		return "draining"
	case t.Unreachable:
		return "unavailable"
	case t.DockerHealth == "starting":
		return "initial"
	case t.DockerHealth == "unhealthy":
		return "unhealthy"
	case t.Weight == 0:
		return "unused"
	}
	return "healthy"
}

func action(a config.Action) balancer.Action {
	if a.FixedResponse != nil {
		f := *a.FixedResponse
		return balancer.Action{Fixed: &balancer.FixedResponse{Status: f.Status, ContentType: f.ContentType, Body: f.Body}}
	}
	return balancer.Action{Forward: a.Forward}
}

func describeAction(a balancer.Action) string {
	switch {
	case a.Forward != "":
		return "forward " + a.Forward
	case a.Fixed != nil:
		return "fixed-response " + itoa(a.Fixed.Status)
	}
	return "fixed-response 404"
}

func logConflicts(log *slog.Logger, seen map[string]bool, conflicts []string) map[string]bool {
	next := make(map[string]bool, len(conflicts))
	for _, c := range conflicts {
		if !seen[c] {
			log.Warn("agent: " + c)
		}
		next[c] = true
	}
	return next
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mergeHealth applies the health settings labels declare over the defaults.
func mergeHealth(h config.Health, l discovery.HealthSettings) config.Health {
	h.Protocol = cmp.Or(l.Protocol, h.Protocol)
	h.Path = cmp.Or(l.Path, h.Path)
	h.Port = cmp.Or(l.Port, h.Port)
	h.Interval = cmp.Or(l.Interval, h.Interval)
	h.Timeout = cmp.Or(l.Timeout, h.Timeout)
	h.Healthy = cmp.Or(l.Healthy, h.Healthy)
	h.Unhealthy = cmp.Or(l.Unhealthy, h.Unhealthy)
	h.Matcher = cmp.Or(l.Matcher, h.Matcher)
	return h
}
