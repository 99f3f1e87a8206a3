// Package balancer is berth's data plane. The agent describes the desired
// routing in a Config and calls Apply; the balancer compiles it into an
// immutable route per listener and swaps it in atomically, so the request path
// reads routing without a lock. Listeners and per-target state (balancer/pool:
// in-flight counts, pooled connections, counters) outlive snapshots: a change
// never drops a connection.
//
// This package is the kernel: Config and its validation, Apply (balancer.go,
// and httproute.go for the HTTP rules and actions), the listeners' lifecycle
// (listener.go, handover.go), and the glue to the two fronts that serve their
// connections: httpfront.go to balancer/httpfront (HTTP/1.1 and HTTP/2) and
// l4front.go to balancer/l4 (TCP, TLS, UDP). The rooms below it each have one
// job and import nothing of it: httpfront, l4, pool (targets and picking),
// stats (shared counters), h2conn (HTTP/2 connection plumbing), certstore
// (certificates), accesslog, rules (rule matching), http1 (the codec) and
// health (active checks); docs/architecture.md has the map. Nothing here
// imports agent/ or cmd/.
package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/certstore"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/httpfront/h2front"
	"github.com/berth-lb/berth/balancer/idlepark"
	"github.com/berth-lb/berth/balancer/l4"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/balancer/stats"
)

// Defaults for zero durations in a Config.
const (
	DefaultIdleTimeout     = 60 * time.Second
	DefaultConnectTimeout  = h2front.DefaultConnectTimeout
	DefaultResponseTimeout = 60 * time.Second
)

// Balancer serves the listeners of the current Config.
type Balancer struct {
	log *slog.Logger

	mu        sync.Mutex // held by writers: Apply and Shutdown
	listeners map[string]*listener
	targets   map[string]*pool.Target
	hosts     map[string]*pool.Host // by the host part of target addresses
	stats     map[[2]string]*stats.Route
	// tlsTargets holds the IDs of the targets that Apply's config speaks TLS to.
	tlsTargets map[string]bool
	closed     bool
	// accessDest is the Config.AccessLog the access log was opened for.
	accessDest string

	shuttingDown atomic.Bool
	// access is the access log; nil when off.
	access atomic.Pointer[accesslog.Logger]
	// accessDropped counts access-log lines dropped on a full queue.
	accessDropped atomic.Uint64
	// certs are the certificate stores of terminating listeners, by listener name.
	certs map[string]*certstore.Store
	// upstreams are the HTTP/2 path's transports to targets.
	upstreams h2front.Transports
	// inherited are the sockets a predecessor handed over (handover.go).
	inherited inheritedSockets
}

// New returns a balancer with no listener; Apply starts them.
func New(log *slog.Logger) *Balancer {
	if log == nil {
		log = slog.Default()
	}
	return &Balancer{
		log:       log,
		listeners: map[string]*listener{},
		targets:   map[string]*pool.Target{},
		hosts:     map[string]*pool.Host{},
		stats:     map[[2]string]*stats.Route{},
		certs:     map[string]*certstore.Store{},
	}
}

// route is the immutable routing of one listener: the HTTP front's, with
// what the kernel and the L4 front need beside it.
type route struct {
	httpfront.Route
	// maxConns bounds the open client connections (UDP: flows); 0: none.
	maxConns int64
	// l4 is the L4 front's view of this route on tcp, tls and udp listeners.
	l4 *l4.Route
}

// Apply validates cfg, opens listeners it adds, closes those it drops, and
// swaps in the new routing. On error nothing changes.
func (b *Balancer) Apply(cfg Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("balancer: apply after shutdown")
	}
	if err := validate(cfg); err != nil {
		return err
	}

	// A target's pooled connections are shared by its groups, so it speaks
	// one protocol: TLS when any group that lists it asks for it.
	b.tlsTargets = make(map[string]bool)
	for _, gc := range cfg.Groups {
		if gc.Protocol == ProtocolHTTPS {
			for _, tc := range gc.Targets {
				b.tlsTargets[tc.ID] = true
			}
		}
	}
	groups := make(map[string]*pool.Group, len(cfg.Groups))
	seenTargets := make(map[string]bool)
	suspects := make(map[*pool.Target]bool)
	for _, gc := range cfg.Groups {
		g := &pool.Group{
			Name:              gc.Name,
			Algorithm:         gc.Algorithm,
			ConnectTimeout:    orDefault(gc.ConnectTimeout, DefaultConnectTimeout),
			ResponseTimeout:   orDefault(gc.ResponseTimeout, DefaultResponseTimeout),
			ProxyProtocol:     gc.ProxyProtocol,
			SlowStart:         gc.SlowStart,
			AnomalyMitigation: gc.AnomalyMitigation,
			TargetTLS:         gc.Protocol == ProtocolHTTPS,
		}
		var weighted []pool.WeightedTarget
		warm := false // a target of the group served before this change
		for _, tc := range gc.Targets {
			ts := b.targetState(tc)
			seenTargets[tc.ID] = true
			suspects[ts] = suspects[ts] || tc.Suspect
			if tc.Serving {
				weighted = append(weighted, pool.WeightedTarget{T: ts, Weight: max(tc.Weight, 1)})
				warm = warm || ts.Serving.Load()
				g.Suspects = g.Suspects || tc.Suspect
			}
		}
		pool.MarkJoined(weighted, warm)
		g.Serving = pool.Interleave(weighted)
		for _, w := range weighted {
			g.Distinct = append(g.Distinct, w.T)
		}
		sticky, err := b.compileStickiness(gc)
		if err != nil {
			return err
		}
		g.Sticky = sticky
		groups[gc.Name] = g
	}

	certs, err := b.certStores(cfg.Listeners)
	if err != nil {
		return err
	}
	routes := make(map[string]*route, len(cfg.Listeners))
	for _, lc := range cfg.Listeners {
		rt, err := b.compileRoute(lc, groups)
		if err != nil {
			b.dropNewCertStores(certs)
			return err
		}
		if s := certs[lc.Name]; s != nil {
			rt.TLS = s.ServerConfig(alpn(lc.Protocol))
		}
		switch lc.Protocol {
		case ProtocolTCP, ProtocolTLS, ProtocolUDP:
			rt.l4 = rt.l4Route(lc.Protocol)
		}
		routes[lc.Name] = rt
	}

	access := b.access.Load()
	if cfg.AccessLog != b.accessDest {
		var err error
		if access, err = accesslog.Open(cfg.AccessLog, &b.accessDropped); err != nil {
			return err
		}
	}
	opened, err := b.openListeners(cfg.Listeners)
	if err != nil {
		if access != b.access.Load() && access != nil {
			access.Close()
		}
		b.dropNewCertStores(certs)
		return err
	}
	b.swapCertStores(certs)
	if old := b.access.Swap(access); old != access && old != nil {
		old.Close()
	}
	b.accessDest = cfg.AccessLog
	for _, lc := range cfg.Listeners {
		b.listeners[lc.Name].route.Store(routes[lc.Name])
	}
	for name, l := range b.listeners {
		if routes[name] == nil {
			l.close()
			delete(b.listeners, name)
		}
	}
	b.inherited.start(opened)

	// A target is serving when any group lists it as serving; the flag decides
	// whether its pooled connections may be reused.
	servingIDs := make(map[*pool.Target]bool)
	for _, g := range groups {
		for _, t := range g.Serving {
			servingIDs[t] = true
		}
	}
	for id, t := range b.targets {
		serving := servingIDs[t]
		was := t.Serving.Swap(serving)
		if was && !serving {
			t.CloseIdle()
		}
		if suspect := suspects[t]; t.Suspect.Swap(suspect) != suspect && suspect {
			t.Abandon() // its host stopped answering the fleet: so did its connections
		}

		if !seenTargets[id] {
			t.CloseIdle()
			delete(b.targets, id)
		}
	}
	b.groupByHost()
	return nil
}

// groupByHost rebuilds the list of targets of each host, for passive health.
func (b *Balancer) groupByHost() {
	members := map[*pool.Host][]*pool.Target{}
	for _, t := range b.targets {
		members[t.Host] = append(members[t.Host], t)
	}
	for host, h := range b.hosts {
		h.Mu.Lock()
		h.Members = members[h]
		h.Mu.Unlock()
		if members[h] == nil {
			delete(b.hosts, host)
		}
	}
}

// pool.Target returns the state of a target, creating it on first sight. A
// known ID whose address or protocol changed gets a fresh state: its pool is
// useless.
func (b *Balancer) targetState(tc TargetConfig) *pool.Target {
	tls := b.tlsTargets[tc.ID]
	if t, ok := b.targets[tc.ID]; ok && t.Address == tc.Address && t.TLS == tls {
		return t
	} else if ok {
		t.Serving.Store(false)
		t.CloseIdle()
	}
	host, _, _ := net.SplitHostPort(tc.Address)
	h, ok := b.hosts[host]
	if !ok {
		h = &pool.Host{}
		b.hosts[host] = h
	}
	t := &pool.Target{ID: tc.ID, Address: tc.Address, TLS: tls, Host: h}
	b.targets[tc.ID] = t
	return t
}

func (b *Balancer) routeStats(listener, group string) *stats.Route {
	key := [2]string{listener, group}
	s, ok := b.stats[key]
	if !ok {
		s = stats.NewRoute(listener, group)
		b.stats[key] = s
	}
	return s
}

func (b *Balancer) compileRoute(lc ListenerConfig, groups map[string]*pool.Group) (*route, error) {
	idle := DefaultIdleTimeout
	switch lc.Protocol {
	case ProtocolTCP, ProtocolTLS:
		idle = DefaultTCPIdleTimeout
	case ProtocolUDP:
		idle = DefaultUDPIdleTimeout
	}
	rt := &route{Route: httpfront.Route{IdleTimeout: orDefault(lc.IdleTimeout, idle), RedirectPort: lc.RedirectToHTTPS}, maxConns: maxConns(lc)}
	in := make([]rules.Rule, len(lc.Rules))
	scheme, xff, err := httpPolicies(lc)
	if err != nil {
		return nil, fmt.Errorf("balancer: listener %s: %w", lc.Name, err)
	}
	rt.Scheme, rt.XFF = scheme, xff
	for i, r := range lc.Rules {
		in[i] = ruleOf(r, i)
		a, err := b.compileAction(lc.Name, scheme, r.Action, groups)
		if err != nil {
			return nil, fmt.Errorf("balancer: listener %s: rule %d: %w", lc.Name, r.Priority, err)
		}
		a.Priority = r.Priority
		rt.Actions = append(rt.Actions, a)
	}
	table, err := rules.Compile(in)
	if err != nil {
		return nil, fmt.Errorf("balancer: listener %s: %w", lc.Name, err)
	}
	rt.Table = table
	if rt.Fallback, err = b.compileAction(lc.Name, scheme, lc.Default, groups); err != nil {
		return nil, fmt.Errorf("balancer: listener %s: default action: %w", lc.Name, err)
	}
	return rt, nil
}

func (b *Balancer) compileAction(listener, scheme string, a Action, groups map[string]*pool.Group) (httpfront.Action, error) {
	set := 0
	for _, on := range []bool{a.Forward != "", len(a.WeightedForward) > 0, a.Redirect != nil, a.Fixed != nil} {
		if on {
			set++
		}
	}
	switch {
	case set > 1:
		return httpfront.Action{}, errors.New("an action either forwards, redirects or answers a fixed response, only one of them")
	case a.GroupStickiness != 0 && len(a.WeightedForward) == 0:
		return httpfront.Action{}, errors.New("group stickiness needs a weighted forward")
	case len(a.WeightedForward) > 0:
		return b.compileWeighted(listener, a.WeightedForward, a.GroupStickiness, groups)
	case a.Redirect != nil:
		ra, err := httpfront.CompileRedirect(a.Redirect, scheme)
		if err != nil {
			return httpfront.Action{}, err
		}
		return httpfront.Action{Redirect: ra, Code: ra.Status, Stats: b.routeStats(listener, "")}, nil
	case a.Forward != "":
		g, ok := groups[a.Forward]
		if !ok {
			return httpfront.Action{}, fmt.Errorf("forwards to unknown group %q", a.Forward)
		}
		return httpfront.Action{Group: g, Stats: b.routeStats(listener, a.Forward)}, nil
	case a.Fixed != nil:
		return httpfront.FixedAction(a.Fixed, b.routeStats(listener, ""))
	default:
		return httpfront.NotFound(b.routeStats(listener, "")), nil
	}
}

func validate(cfg Config) error {
	var errs []error
	names := map[string]bool{}
	addrs := map[string]string{}
	for _, l := range cfg.Listeners {
		if l.Name == "" {
			errs = append(errs, errors.New("balancer: a listener has no name"))
		} else if names[l.Name] {
			errs = append(errs, fmt.Errorf("balancer: two listeners are named %q", l.Name))
		}
		names[l.Name] = true
		if l.MaxConnections < NoConnectionLimit {
			errs = append(errs, fmt.Errorf("balancer: listener %s: max connections %d: use a positive limit, 0 for the default or NoConnectionLimit", l.Name, l.MaxConnections))
		}
		errs = append(errs, validateL4(l)...)
		if other, ok := addrs[l.Address]; ok {
			errs = append(errs, fmt.Errorf("balancer: listeners %s and %s both use address %s", other, l.Name, l.Address))
		}
		addrs[l.Address] = l.Name
	}
	groups := map[string]bool{}
	for _, g := range cfg.Groups {
		if groups[g.Name] {
			errs = append(errs, fmt.Errorf("balancer: two groups are named %q", g.Name))
		}
		groups[g.Name] = true
		switch g.Algorithm {
		case "", AlgorithmRoundRobin, AlgorithmLeastOutstanding, AlgorithmWeightedRandom, AlgorithmSourceHash:
		default:
			errs = append(errs, fmt.Errorf("balancer: group %s: unknown algorithm %q: use %s, %s, %s or %s", g.Name, g.Algorithm, AlgorithmRoundRobin, AlgorithmLeastOutstanding, AlgorithmWeightedRandom, AlgorithmSourceHash))
		}
		switch g.Protocol {
		case "", ProtocolHTTP, ProtocolHTTPS:
		default:
			errs = append(errs, fmt.Errorf("balancer: group %s: unknown protocol %q: use %s or %s", g.Name, g.Protocol, ProtocolHTTP, ProtocolHTTPS))
		}
		errs = append(errs, validateRamp(g)...)
	}
	return errors.Join(errs...)
}

// validateRamp checks slow start and anomaly mitigation against the group's
// algorithm.
func validateRamp(g GroupConfig) []error {
	var errs []error
	if g.SlowStart != 0 {
		if g.SlowStart < MinSlowStart || g.SlowStart > MaxSlowStart {
			errs = append(errs, fmt.Errorf("balancer: group %s: slow start %s: use %s..%s, or 0 for none", g.Name, g.SlowStart, MinSlowStart, MaxSlowStart))
		}
		if g.Algorithm == AlgorithmLeastOutstanding || g.Algorithm == AlgorithmSourceHash {
			errs = append(errs, fmt.Errorf("balancer: group %s: slow start does not work with %s: use %s or %s", g.Name, g.Algorithm, AlgorithmRoundRobin, AlgorithmWeightedRandom))
		}
	}
	if g.AnomalyMitigation && g.Algorithm != AlgorithmWeightedRandom {
		errs = append(errs, fmt.Errorf("balancer: group %s: anomaly mitigation needs algorithm %s", g.Name, AlgorithmWeightedRandom))
	}
	return errs
}

// validateL4 checks what the L4 protocols allow: they forward only, and only
// TLS listeners have rules (by SNI) and certificates.
func validateL4(l ListenerConfig) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("balancer: listener %s: "+format, append([]any{l.Name}, args...)...))
	}
	switch l.Protocol {
	case "", ProtocolHTTP:
		if len(l.Certificates) > 0 {
			fail("certificates need protocol https or tls")
		}
		if l.RedirectToHTTPS < 0 || l.RedirectToHTTPS > 65535 {
			fail("redirect-to-https port %d: use 1..65535", l.RedirectToHTTPS)
		}
		return errs
	case ProtocolHTTPS:
		if len(l.Certificates) == 0 {
			fail("an https listener needs at least one certificate")
		}
		if l.RedirectToHTTPS != 0 {
			fail("redirect-to-https belongs on an http listener")
		}
		return errs
	case ProtocolTCP, ProtocolUDP:
		if len(l.Rules) > 0 {
			fail("a %s listener has no rules: forward with its default action", l.Protocol)
		}
		if len(l.Certificates) > 0 {
			fail("certificates need protocol tls")
		}
	case ProtocolTLS:
		for _, r := range l.Rules {
			if len(r.Paths) > 0 || len(r.Hosts) == 0 {
				fail("rule %d: a tls listener's rules match hosts (SNI) only", r.Priority)
			}
			if r.Action.Fixed != nil {
				fail("rule %d: a tls listener's rules forward only", r.Priority)
			}
		}
	default:
		fail("unknown protocol %q: use %s, %s, %s, %s or %s", l.Protocol, ProtocolHTTP, ProtocolHTTPS, ProtocolTCP, ProtocolTLS, ProtocolUDP)
	}
	if l.Default.Fixed != nil {
		fail("the default action of a %s listener forwards only", l.Protocol)
	}
	return errs
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// openListeners opens a socket for every listener that is new or whose address
// changed; it returns them unstarted. On failure it closes what it opened.
func (b *Balancer) openListeners(cfgs []ListenerConfig) ([]*listener, error) {
	var opened []*listener
	for _, lc := range cfgs {
		protocol := lc.Protocol
		if protocol == "" {
			protocol = ProtocolHTTP
		}
		if l, ok := b.listeners[lc.Name]; ok && l.address == lc.Address && l.protocol == protocol {
			continue
		}
		var l *listener
		var err error
		if protocol == ProtocolUDP {
			l, err = newUDPListener(b, lc.Name, lc.Address)
		} else {
			var ln net.Listener
			if ln, err = b.listenTCP(lc.Name, lc.Address); err == nil {
				l = newListener(b, lc.Name, lc.Address, protocol, ln)
			}
		}
		if err != nil {
			for _, l := range opened {
				l.close()
			}
			return nil, fmt.Errorf("balancer: listener %s: %w", lc.Name, err)
		}
		opened = append(opened, l)
	}
	for _, l := range opened {
		if old, ok := b.listeners[l.name]; ok {
			old.close()
		}
		b.listeners[l.name] = l
	}
	return opened, nil
}

// Addr returns the bound address of a listener (useful with port 0), or "".
func (b *Balancer) Addr(listener string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.listeners[listener]; ok {
		return l.addr().String()
	}
	return ""
}

// Targets returns the live counters of every known target, sorted by ID.
func (b *Balancer) Targets() []TargetStats {
	b.mu.Lock()
	out := make([]TargetStats, 0, len(b.targets))
	now := time.Now().UnixNano()
	for _, t := range b.targets {
		out = append(out, TargetStats{ID: t.ID, InFlight: t.InFlight.Load(), Requests: t.Requests.Load(), Failures: t.Failures.Load(),
			Ejected: t.Passive.Ejected(now), Ejections: t.Passive.TotalEjected.Load(), Latency: t.Latency.Copy(),
			ActiveConnections: t.StreamsActive.Load(), Connections: t.StreamsTotal.Load(), BytesIn: t.BytesIn.Load(), BytesOut: t.BytesOut.Load()})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InFlight returns the number of requests in flight to a target (0 if unknown).
func (b *Balancer) InFlight(id string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.targets[id]; ok {
		return t.InFlight.Load()
	}
	return 0
}

// Routes returns the request counters of every listener and group pair.
func (b *Balancer) Routes() []stats.RouteStats {
	b.mu.Lock()
	out := make([]stats.RouteStats, 0, len(b.stats))
	for _, s := range b.stats {
		out = append(out, s.Copy())
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Listener != out[j].Listener {
			return out[i].Listener < out[j].Listener
		}
		return out[i].Group < out[j].Group
	})
	return out
}

// ListenerStats are the connection counters of one listener.
type ListenerStats struct {
	Name     string
	Protocol string
	Address  string
	// ActiveConnections and TotalConnections count client connections (UDP:
	// flows).
	ActiveConnections int64
	TotalConnections  uint64
	// Errors counts the balancer's own answers by reason; on L4 listeners,
	// connections closed because no target could take them (no_target,
	// connect_failed, connect_timeout).
	Errors map[stats.ErrorReason]uint64
	// BytesIn and BytesOut count L4 bytes from and to clients.
	BytesIn, BytesOut uint64
	// UDPFlowsDropped counts datagrams that would have opened a flow beyond
	// the listener's MaxConnections.
	UDPFlowsDropped uint64
	// Refused counts connections reset at accept because the listener had
	// MaxConnections open; Panics the panics recovered in its connections'
	// goroutines (each closed its connection, or dropped a datagram).
	Refused, Panics uint64
}

// Listeners returns the counters of every listener, sorted by name.
func (b *Balancer) Listeners() []ListenerStats {
	b.mu.Lock()
	out := make([]ListenerStats, 0, len(b.listeners))
	for _, l := range b.listeners {
		s := ListenerStats{Name: l.name, Protocol: l.protocol, Address: l.addr().String(), ActiveConnections: l.active.Load(), TotalConnections: l.total.Load(), Errors: map[stats.ErrorReason]uint64{},
			BytesIn: l.bytesIn.Load(), BytesOut: l.bytesOut.Load(), Refused: l.refused.Load(), Panics: l.panics.Load()}
		if l.udp != nil {
			s.UDPFlowsDropped = l.udp.Dropped.Load()
		}
		for r := stats.ErrorReason(0); r < stats.ReasonCount; r++ {
			s.Errors[r] = l.errors[r].Load()
		}
		out = append(out, s)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// accessLog writes r to the current access log, if any.
func (b *Balancer) accessLog(r *accesslog.Record) {
	if a := b.access.Load(); a != nil {
		a.Write(r)
	}
}

// AccessLogDropped returns how many access-log lines were dropped because
// the log's queue was full: its destination took them slower than they came.
func (b *Balancer) AccessLogDropped() uint64 { return b.accessDropped.Load() }

// IdleParkPanics is how many panics the loop that waits for parked idle
// connections recovered (balancer/idlepark; one loop for the process).
func (b *Balancer) IdleParkPanics() uint64 { return idlepark.Panics() }

// Shutdown stops accepting, lets requests in flight finish and closes idle
// client connections; when ctx ends first, it closes the rest and returns
// ctx's error.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.shuttingDown.Store(true)
	b.swapCertStores(nil)
	ls := make([]*listener, 0, len(b.listeners))
	for _, l := range b.listeners {
		ls = append(ls, l)
		l.close()
	}
	b.upstreams.CloseIdle()
	b.mu.Unlock()
	if err := drain(ctx, ls); err != nil {
		for _, l := range ls {
			l.closeAllConns()
		}
		return fmt.Errorf("balancer: shutdown: %w", err)
	}
	b.mu.Lock()
	for _, t := range b.targets {
		t.Serving.Store(false)
		t.CloseIdle()
	}
	b.mu.Unlock()
	if a := b.access.Swap(nil); a != nil {
		a.Close()
	}
	return nil
}

// drain waits until the closed listeners ls have no connection open,
// closing idle ones, or ctx ends. Their accept loops end first: a
// connection one had just accepted then counts as open.
func drain(ctx context.Context, ls []*listener) error {
	ended := make(chan struct{})
	go func() {
		for _, l := range ls {
			l.accepting.Wait()
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		open := 0
		for _, l := range ls {
			open += l.closeIdleConns()
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Terminate closes every open connection to a target: L4 connections and UDP
// flows, and HTTP connections carrying a request or a tunnel (those requests
// fail). It returns how many it closed. The agent calls it when a draining
// target's deregistration delay ends and its group asks for connection
// termination (NLB's deregistration_delay.connection_termination).
func (b *Balancer) Terminate(targetID string) int {
	b.mu.Lock()
	t, ok := b.targets[targetID]
	b.mu.Unlock()
	if !ok {
		return 0
	}
	return t.Terminate()
}

func portOf(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	return ""
}
