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
	"github.com/berth-lb/berth/balancer/health"
	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/internal/matcher"
)

// observations are what the agent measures about targets: for a draining
// target, when its deregistration delay ends and how many requests are still
// in flight to it; for a target this node checks, the health check's verdict.
type observations interface {
	drainDeadline(id string, delay time.Duration) time.Time
	inFlight(id string) int64
	checked(id string) (health.Result, bool)
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
	// checks are the health checks this node runs: its own targets'.
	checks []health.Target
	// failOpen names the groups that have targets but none healthy: they
	// route to all of them, as ALB does.
	failOpen []string
	// delays are the deregistration delays of this node's targets (their
	// first group's), for the drains API.
	delays map[string]time.Duration
	// terminate are draining targets whose delay ended in a group with
	// connection-termination: their remaining connections are closed.
	terminate []string
}

// groupSpec is a group's policy with where it came from.
type groupSpec struct {
	config.Group
	source string
}

// compile merges the config file, the static targets, this host's discovered
// targets and the fleet's into the balancer's config. It is a pure function of
// its inputs.
func compile(cfg *config.Config, local discovery.State, remote []discovery.Target, obs observations, now time.Time) desired {
	d := desired{delays: map[string]time.Duration{}}
	all := append(slices.Clip(local.Targets), remote...)
	specs := groupSpecs(cfg, all, &d)
	for _, t := range local.Targets {
		if len(t.Groups) > 0 {
			d.delays[t.ID] = specs[t.Groups[0]].DeregistrationDelay
		}
	}

	members := map[string][]balancer.TargetConfig{}
	for _, name := range sortedKeys(cfg.Static) {
		for _, addr := range cfg.Static[name] {
			t := discovery.Target{ID: "static/" + name + "/" + addr, Node: cfg.Node.Name, Groups: []string{name}, Address: addr, Weight: 1}
			if r, ok := obs.checked(t.ID); ok {
				t.Health, t.HealthReason = r.State, r.Reason
			} else if checked(t, specs[name]) {
				t.Health, t.HealthReason = health.Initial, health.ReasonInitial // not checked yet
			}
			d.addCheck(t, specs[name])
			state, reason := targetState(t)
			members[name] = append(members[name], balancer.TargetConfig{ID: t.ID, Address: addr, Serving: state == "healthy", Weight: 1})
			d.targets = append(d.targets, api.Target{ID: t.ID, Group: name, Node: cfg.Node.Name, Address: addr, State: state, Reason: reason, Source: "static"})
		}
	}
	for _, t := range all {
		state, reason := targetState(t)
		source := "docker"
		if t.Node != cfg.Node.Name {
			source = "gossip"
		} else if len(t.Groups) > 0 {
			d.addCheck(t, specs[t.Groups[0]])
		}
		for _, g := range t.Groups {
			if state == "draining" {
				delay := specs[g].DeregistrationDelay
				expired := !now.Before(obs.drainDeadline(t.ID, delay))
				if expired && specs[g].ConnectionTermination && !slices.Contains(d.terminate, t.ID) {
					d.terminate = append(d.terminate, t.ID)
				}
				// A sticky group keeps a draining target until its delay ends:
				// its sticky clients may come back with another request.
				idle := obs.inFlight(t.ID) == 0 && specs[g].Stickiness == nil
				if idle || expired {
					continue // drained: removed from routing and from view
				}
				d.draining = append(d.draining, t.ID)
			}
			members[g] = append(members[g], balancer.TargetConfig{ID: t.ID, Address: t.Address, Serving: state == "healthy", Draining: state == "draining", Suspect: t.Suspect, Weight: t.Weight})
			d.targets = append(d.targets, api.Target{
				ID: t.ID, Group: g, Node: t.Node, Address: t.Address, LocalOnly: t.LocalOnly,
				State: state, Reason: reason, Suspect: t.Suspect, Container: t.ContainerName, Source: source,
			})
		}
	}
	d.failOpenWhereNoneHealthy(members)
	d.protocolConflicts(all, specs)

	for _, name := range sortedKeys(specs) {
		spec := specs[name]
		d.balancer.Groups = append(d.balancer.Groups, balancer.GroupConfig{
			Name: name, Targets: members[name], Algorithm: spec.Algorithm,
			ConnectTimeout: spec.ConnectTimeout, ResponseTimeout: spec.ResponseTimeout,
			ProxyProtocol:     spec.ProxyProtocol == "v2",
			SlowStart:         spec.SlowStart,
			AnomalyMitigation: spec.AnomalyMitigation,
			Stickiness:        stickiness(spec.Stickiness),
			Protocol:          spec.Protocol,
		})
		states := map[string]int{}
		for _, t := range d.targets {
			if t.Group == name {
				states[t.State]++
			}
		}
		d.groups = append(d.groups, api.Group{
			Name: name, Algorithm: spec.Algorithm, Protocol: spec.Protocol, DeregistrationDelay: spec.DeregistrationDelay.String(),
			Targets: len(members[name]), States: states, FailOpen: slices.Contains(d.failOpen, name),
		})
	}

	d.balancer.AccessLog = cfg.Log.Access
	d.rules = map[string][]api.Rule{}
	labelRules := labelRulesByListener(all, &d)
	for _, l := range cfg.Listeners {
		lc := balancer.ListenerConfig{Name: l.Name, Protocol: l.Protocol, Address: l.Address, IdleTimeout: l.IdleTimeout, RedirectToHTTPS: l.RedirectToHTTPS, XForwardedFor: l.XForwardedFor,
			MaxConnections: l.MaxConnections}
		if l.MaxConnections == 0 {
			lc.MaxConnections = balancer.NoConnectionLimit
		}
		for _, c := range l.Certificates {
			lc.Certificates = append(lc.Certificates, balancer.Certificate{CertFile: c.Cert, KeyFile: c.Key})
		}
		taken := map[int]bool{}
		for _, r := range l.Rules {
			lc.Rules = append(lc.Rules, rule(r))
			taken[r.Priority] = true
		}
		var unnumbered []discovery.Rule
		for _, r := range labelRules[l.Name] {
			if l.Protocol == config.ProtocolTCP || l.Protocol == config.ProtocolUDP || (l.Protocol == config.ProtocolTLS && len(r.Paths)+len(r.Methods)+len(r.Headers)+len(r.Queries)+len(r.SourceIPs) > 0) {
				d.conflicts = append(d.conflicts, "listener "+l.Name+": a label rule of group "+r.Group+" does not fit a "+l.Protocol+" listener (tcp and udp have no rules, tls rules match host only); it is ignored")
				continue
			}
			if r.Priority == 0 {
				unnumbered = append(unnumbered, r)
				continue
			}
			if taken[r.Priority] {
				d.conflicts = append(d.conflicts, "listener "+l.Name+": a label rule of group "+r.Group+" has priority "+itoa(r.Priority)+", which the config file or a newer container already uses; it is ignored")
				continue
			}
			taken[r.Priority] = true
			lc.Rules = append(lc.Rules, labelRule(r))
		}
		numbered, dropped := numberUnnumbered(unnumbered)
		shadowing := map[string]string{} // conditions to the group of the first rule with them
		for _, r := range numbered {
			if first, ok := shadowing[conditionsKey(r)]; ok {
				d.conflicts = append(d.conflicts, "listener "+l.Name+": label rules of groups "+first+" and "+r.Group+" have the same conditions and no priority; "+first+"'s is evaluated first, so "+r.Group+"'s never matches: give one a priority")
			} else {
				shadowing[conditionsKey(r)] = r.Group
			}
			lc.Rules = append(lc.Rules, labelRule(r))
		}
		if len(dropped) > 0 {
			d.conflicts = append(d.conflicts, "listener "+l.Name+": "+itoa(len(dropped))+" label rules without a priority are ignored: a listener takes "+itoa(maxUnnumbered)+"; give the rules priorities")
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
			if t.Settings.SlowStart != 0 {
				if spec.Algorithm == "least_outstanding_requests" || spec.Algorithm == "source_hash" {
					d.conflicts = append(d.conflicts, "group "+name+": label slow-start does not work with algorithm "+spec.Algorithm+"; it is ignored")
				} else {
					spec.SlowStart = t.Settings.SlowStart
				}
			}
			if t.Settings.Protocol != "" {
				spec.Protocol = t.Settings.Protocol
				spec.Health.Protocol = config.HealthProtocol(spec.Protocol)
			}
			if t.Settings.ProxyProtocol != "" {
				spec.ProxyProtocol = t.Settings.ProxyProtocol
			}
			spec.ConnectionTermination = t.Settings.ConnectionTermination
			spec.Health = mergeHealth(spec.Health, t.Settings.Health)
			if st := t.Settings.Stickiness; st.Type != "" {
				spec.Stickiness = &config.Stickiness{Type: st.Type, Cookie: st.Cookie, Duration: st.Duration}
			}
			specs[name] = spec
		}
	}
	// A group a listener forwards to exists before its first target: the
	// route answers 503 meanwhile, never 404, and the agent starts.
	for _, name := range forwardedGroups(cfg) {
		if _, ok := specs[name]; !ok {
			specs[name] = groupSpec{config.DefaultGroup(), "default"}
		}
	}
	return specs
}

// forwardedGroups lists the groups the config's listeners forward to.
func forwardedGroups(cfg *config.Config) []string {
	var names []string
	add := func(a config.Action) {
		if a.Forward != "" {
			names = append(names, a.Forward)
		}
		for _, wf := range a.ForwardGroups {
			names = append(names, wf.Group)
		}
	}
	for _, l := range cfg.Listeners {
		for _, r := range l.Rules {
			add(r.Action)
		}
		if l.Default != nil {
			add(*l.Default)
		}
	}
	return names
}

func sameSettings(a, b discovery.GroupSettings) bool {
	sameDelay := (a.DeregistrationDelay == nil) == (b.DeregistrationDelay == nil) &&
		(a.DeregistrationDelay == nil || *a.DeregistrationDelay == *b.DeregistrationDelay)
	return sameDelay && a.Algorithm == b.Algorithm && a.SlowStart == b.SlowStart && a.Health == b.Health && a.Stickiness == b.Stickiness &&
		a.Protocol == b.Protocol && a.ProxyProtocol == b.ProxyProtocol && a.ConnectionTermination == b.ConnectionTermination
}

// protocolConflicts reports targets whose groups disagree on the protocol
// spoken to them: a port speaks one, and the balancer speaks TLS to a
// target that any of its groups calls https.
func (d *desired) protocolConflicts(targets []discovery.Target, specs map[string]groupSpec) {
	for _, t := range targets {
		for _, g := range t.Groups[min(1, len(t.Groups)):] {
			if first := t.Groups[0]; specs[g].Protocol != specs[first].Protocol {
				d.conflicts = append(d.conflicts, "target "+t.ID+": group "+first+" speaks "+specs[first].Protocol+" to it and group "+g+" "+specs[g].Protocol+": the balancer speaks https to it in both")
				break
			}
		}
	}
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
			key := ruleKey(r)
			if seen[key] {
				continue
			}
			seen[key] = true
			out[r.Listener] = append(out[r.Listener], r)
		}
	}
	return out
}

// targetState is a target's state, with ALB's names, and a reason code when
// it receives no new traffic.
func targetState(t discovery.Target) (state, reason string) {
	switch {
	case t.Draining:
		return "draining", "Target.DeregistrationInProgress"
	case t.DockerHealth == "starting":
		return "initial", "Docker.HealthStarting"
	case t.DockerHealth == "unhealthy":
		return "unhealthy", "Docker.Unhealthy"
	case t.Health == health.Initial || t.Health == health.Unhealthy:
		return t.Health, t.HealthReason
	case t.Weight == 0:
		return "unused", "Target.WeightZero"
	}
	return "healthy", ""
}

// addCheck adds the health check of a target this node owns, by its group's
// policy; nothing when the group's checks are disabled.
func (d *desired) addCheck(t discovery.Target, spec groupSpec) {
	if !checked(t, spec) {
		return
	}
	h := spec.Health
	m, err := matcher.Parse(h.Matcher)
	if err != nil {
		d.conflicts = append(d.conflicts, "group "+t.Groups[0]+": health matcher: "+err.Error())
		return
	}
	d.checks = append(d.checks, health.Target{ID: t.ID, Address: t.Address, Check: health.Check{
		Protocol: h.Protocol, Path: h.Path, Port: h.Port, Interval: h.Interval, Timeout: h.Timeout,
		Healthy: h.Healthy, Unhealthy: h.Unhealthy, Matcher: m,
	}})
}

// checked reports whether this node checks a target of its own: its group's
// checks are on, and it is not a UDP port (which cannot answer an HTTP or TCP
// check) unless health.port names one that can.
func checked(t discovery.Target, spec groupSpec) bool {
	return spec.Health.Enabled && (!strings.HasSuffix(t.ID, "/udp") || spec.Health.Port != 0)
}

// failOpenWhereNoneHealthy routes to every target of a group that has
// targets but none healthy (all failing their checks): a balancer that
// refuses all traffic because its checks may be wrong helps nobody (ALB's
// fail open). Draining and zero-weight targets stay out.
func (d *desired) failOpenWhereNoneHealthy(members map[string][]balancer.TargetConfig) {
	states := map[string]string{}
	for _, t := range d.targets {
		states[t.ID] = t.State
	}
	for _, name := range sortedKeys(members) {
		ts := members[name]
		if len(ts) == 0 || slices.ContainsFunc(ts, func(t balancer.TargetConfig) bool { return t.Serving }) {
			continue
		}
		opened := false
		for i := range ts {
			if st := states[ts[i].ID]; st == "initial" || st == "unhealthy" {
				ts[i].Serving, opened = true, true
			}
		}
		if opened {
			d.failOpen = append(d.failOpen, name)
		}
	}
}

// rule is a config file rule for the balancer.
func rule(r config.Rule) balancer.Rule {
	br := balancer.Rule{Priority: r.Priority, Hosts: r.Host, Paths: r.Path, Methods: r.Method, SourceIPs: r.SourceIP, Source: "config", Action: action(r.Action)}
	if len(r.Header) > 0 {
		br.Headers = map[string][]string(r.Header)
	}
	for _, q := range r.Query {
		br.Queries = append(br.Queries, balancer.QueryCondition{Key: q.Key, Value: q.Value})
	}
	return br
}

func action(a config.Action) balancer.Action {
	switch {
	case a.FixedResponse != nil:
		f := *a.FixedResponse
		return balancer.Action{Fixed: &balancer.FixedResponse{Status: f.Status, ContentType: f.ContentType, Body: f.Body}}
	case a.Redirect != nil:
		r := *a.Redirect
		return balancer.Action{Redirect: &balancer.Redirect{Status: r.Status, Protocol: r.Protocol, Host: r.Host, Port: r.Port, Path: r.Path, Query: r.Query}}
	case len(a.ForwardGroups) > 0:
		var ws []balancer.WeightedGroup
		for _, g := range a.ForwardGroups {
			ws = append(ws, balancer.WeightedGroup{Group: g.Group, Weight: g.Weight})
		}
		return balancer.Action{WeightedForward: ws, GroupStickiness: a.ForwardStickiness}
	}
	return balancer.Action{Forward: a.Forward}
}

// labelRule is a rule of container labels for the balancer.
func labelRule(r discovery.Rule) balancer.Rule {
	br := balancer.Rule{Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths, Methods: r.Methods, Headers: r.Headers, SourceIPs: r.SourceIPs,
		Source: "labels", Action: balancer.Action{Forward: r.Group}}
	for _, q := range r.Queries {
		br.Queries = append(br.Queries, balancer.QueryCondition{Key: q.Key, Value: q.Value})
	}
	return br
}

func stickiness(s *config.Stickiness) *balancer.Stickiness {
	if s == nil {
		return nil
	}
	return &balancer.Stickiness{Type: s.Type, Cookie: s.Cookie, Duration: s.Duration}
}

func describeAction(a balancer.Action) string {
	switch {
	case a.Forward != "":
		return "forward " + a.Forward
	case len(a.WeightedForward) > 0:
		parts := make([]string, len(a.WeightedForward))
		for i, w := range a.WeightedForward {
			parts[i] = w.Group + ":" + itoa(w.Weight)
		}
		return "forward " + strings.Join(parts, ",")
	case a.Redirect != nil:
		return "redirect " + itoa(a.Redirect.Status)
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
