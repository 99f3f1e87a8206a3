// Package agent wires berth together: it loads the config, follows Docker,
// compiles config and targets into the balancer's routing, serves the admin API
// and metrics, and shuts down gracefully.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/berth-lb/berth/agent/admin"
	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/agent/config"
	"github.com/berth-lb/berth/balancer"
	"github.com/berth-lb/berth/balancer/health"
	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/discovery/docker"
	"github.com/berth-lb/berth/discovery/gossip"
)

// Options configure Run.
type Options struct {
	// Config is the loaded, valid configuration.
	Config *config.Config
	// ConfigPath is watched for changes when not empty; Flags are re-applied on reload.
	ConfigPath string
	Flags      *pflag.FlagSet
	Version    string
	Logger     *slog.Logger
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown (default 30s).
	ShutdownTimeout time.Duration
	// Ready, when not nil, is closed once the listeners and the admin API serve.
	Ready chan<- struct{}
}

// firstSyncWait is how long the agent waits for Docker's first list before it
// opens its listeners, so it does not answer 503 for targets that exist.
const firstSyncWait = 3 * time.Second

// drainPoll is how often draining targets are checked for completion.
const drainPoll = 50 * time.Millisecond

// Agent is a running agent. It implements admin.Source.
type Agent struct {
	opts    Options
	log     *slog.Logger
	lb      *balancer.Balancer
	watcher *docker.Watcher
	cluster *gossip.Cluster // nil when cluster.enabled is false
	// leftFleet: this agent left the fleet for its successor; lastRemote,
	// the fleet's targets as it last knew them, stay in force until it stops.
	leftFleet  bool
	lastRemote []discovery.Target
	own        *ownSockets
	// insecure: the cluster runs beyond loopback without a key (cluster.insecure).
	insecure  bool
	adminAddr string
	checker   *health.Checker
	started   time.Time
	registry  *prometheus.Registry
	reloads   *prometheus.CounterVec

	view atomic.Pointer[view]

	drainMu     sync.Mutex
	drainsSince map[string]time.Time
	// manualDrains are the targets `berth drain` drains while their container runs.
	manualDrains map[string]bool
	// kick asks the control loop to apply again (after a drain request).
	kick chan struct{}

	failOpenMu    sync.Mutex
	failingOpen   map[string]bool
	failOpenCount *prometheus.CounterVec
}

// view is what the admin API shows, replaced on every compilation.
type view struct {
	cfg           *config.Config
	desired       desired
	skipped       []discovery.Skipped
	labelProblems []discovery.LabelProblem
	// local are this node's targets as published, health and drains included.
	local []discovery.Target
}

// Run runs the agent until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, opts Options) error {
	return run(ctx, opts, nil)
}

// run is Run that also hands the Agent to tests through created.
func run(ctx context.Context, opts Options, created chan<- *Agent) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	a := &Agent{opts: opts, log: opts.Logger, lb: balancer.New(opts.Logger), checker: health.New(opts.Logger), started: time.Now(), drainsSince: map[string]time.Time{},
		manualDrains: map[string]bool{}, kick: make(chan struct{}, 1), own: newOwnSockets()}
	defer a.checker.Close()
	cfg := opts.Config
	up := a.takeOver(ctx, cfg)
	defer up.abandon()
	if cfg.Docker.Enabled {
		w, err := docker.New(docker.Options{
			Host: cfg.Docker.Host, LabelPrefix: cfg.Docker.LabelPrefix, Node: cfg.Node.Name,
			Advertise: cfg.Node.Advertise, Resync: cfg.Docker.Resync, Logger: opts.Logger,
		})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.watcher = w
	}
	if cfg.Cluster.Enabled {
		if err := up.release(ctx); err != nil {
			return err
		}
		c, err := startCluster(cfg, opts.Version, opts.Logger, a.own)
		if err != nil {
			return err
		}
		a.cluster, a.insecure = c, insecureCluster(cfg)
		defer func() {
			if a.leftFleet {
				return
			}
			if err := c.Close(5 * time.Second); err != nil {
				a.log.Warn("agent: leaving the cluster", "err", err)
			}
		}()
	}
	a.registry = a.newRegistry()
	if created != nil {
		created <- a
	}

	access, err := a.adminAccess(cfg.Admin)
	if err != nil {
		return err
	}
	adminLn, err := up.listenAdmin(cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("agent: admin listener: %w; set admin.listen to a free address", err)
	}
	adminSrv := &http.Server{Handler: admin.Handler(a, a.registry, access), ReadHeaderTimeout: 10 * time.Second}
	a.adminAddr = adminLn.Addr().String()
	// An agent taking over answers its admin API once it serves: until then
	// its predecessor answers on the same socket, so a new answer (a later
	// started time in the status) tells berth rollout that it is ready.
	if up.pred == nil {
		go adminSrv.Serve(adminLn)
	}
	defer adminSrv.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := make(chan discovery.State, 1)
	dockerDone := make(chan error, 1)
	if a.watcher != nil {
		go func() { dockerDone <- a.watcher.Run(runCtx, latestOnly(updates)) }()
	}
	reloads := make(chan *config.Config, 1)
	if opts.ConfigPath != "" {
		go config.Watch(runCtx, opts.ConfigPath, opts.Flags,
			func(c *config.Config) { replaceLatest(reloads, c) },
			func(err error) {
				a.reloads.WithLabelValues("failure").Inc()
				a.log.Error("agent: config reload refused; the last good config stays in force", "err", err)
			})
	}

	var local discovery.State
	if a.watcher != nil {
		select {
		case local = <-updates:
		case <-time.After(firstSyncWait):
			a.log.Warn("agent: no answer from Docker yet; serving static targets until it answers", "docker", cfg.Docker.Host)
		case <-ctx.Done():
			return nil
		}
	}
	if err := a.apply(cfg, local); err != nil {
		return err
	}
	if up.pred != nil && a.cluster != nil {
		a.awaitFleet(ctx, cfg)
		if err := a.apply(cfg, local); err != nil {
			return err
		}
	}
	successor := &upgradeHandler{a: a, adminLn: adminLn, adminAddr: cfg.Admin.Listen, releases: make(chan chan error), handedOver: make(chan struct{}),
		stopping: runCtx.Done()}
	tookOver := up.pred != nil
	srv := a.ready(ctx, cfg, &up)
	if tookOver {
		go adminSrv.Serve(adminLn)
	}
	if srv != nil {
		defer srv.Close()
		go func() {
			if err := srv.Serve(successor); err != nil && !errors.Is(err, net.ErrClosed) {
				a.log.Warn("agent: upgrade socket", "err", err)
			}
		}()
	}
	a.log.Info("agent: serving", "node", cfg.Node.Name, "admin", adminLn.Addr().String(), "listeners", len(cfg.Listeners))
	if opts.Ready != nil {
		close(opts.Ready)
	}

	drainTick := time.NewTicker(drainPoll)
	defer drainTick.Stop()
	var remoteChanges <-chan struct{}
	if a.cluster != nil {
		remoteChanges = a.cluster.Changes()
	}
	for {
		select {
		case <-ctx.Done():
			return a.shutdown(adminSrv)
		case <-successor.handedOver:
			a.log.Info("agent: a new agent took over the listeners; finishing requests in flight, then exiting")
			adminLn.Close() // the admin API is the successor's now
			return a.shutdown(adminSrv)
		case done := <-successor.releases:
			a.leaveFleet()
			done <- nil
			continue
		case local = <-updates:
		case <-remoteChanges:
		case <-a.checker.Changes():
		case <-a.kick:
		case next := <-reloads:
			if reflect.DeepEqual(next, cfg) {
				continue // config.Watch reports the file once at start, and editors save unchanged files
			}
			if err := a.apply(next, local); err != nil {
				a.reloads.WithLabelValues("failure").Inc()
				a.log.Error("agent: config reload refused; the last good config stays in force", "err", err)
				continue
			}
			a.reloads.WithLabelValues("success").Inc()
			a.log.Info("agent: config reloaded", "file", opts.ConfigPath)
			cfg = next
			continue
		case err := <-dockerDone:
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			continue
		case <-drainTick.C:
			if len(a.view.Load().desired.draining) == 0 {
				continue
			}
		}
		if err := a.apply(cfg, local); err != nil {
			a.log.Error("agent: routing update failed", "err", err)
		}
	}
}

// apply shares this host's targets with the fleet, compiles them with the
// fleet's and hands the result to the balancer; on success it becomes the view.
func (a *Agent) apply(cfg *config.Config, local discovery.State) error {
	local.Targets = a.withDrains(a.withHealth(cfg, local.Targets))
	var remote []discovery.Target
	if a.cluster != nil {
		remote = a.lastRemote
		if !a.leftFleet {
			a.own.set(a.sockets(cfg))
			a.cluster.Publish(local.Targets, configHash(cfg))
			remote = a.cluster.Targets()
		}
	}
	a.trackDrains(local.Targets, remote)
	d := compile(cfg, local, remote, a, time.Now())
	for _, id := range d.terminate {
		// Before Apply drops the target: Terminate finds its connections by it.
		if n := a.lb.Terminate(id); n > 0 {
			a.log.Info("agent: deregistration delay ended; closed the target's remaining connections", "target", id, "connections", n)
		}
	}
	if err := a.lb.Apply(d.balancer); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.checker.Sync(d.checks)
	a.logFailOpen(d.failOpen)
	prev := a.view.Load()
	seen := map[string]bool{}
	if prev != nil {
		for _, c := range prev.desired.conflicts {
			seen[c] = true
		}
	}
	logConflicts(a.log, seen, d.conflicts)
	a.view.Store(&view{cfg: cfg, desired: d, skipped: local.Skipped, labelProblems: local.LabelProblems, local: local.Targets})
	return nil
}

// sockets are the addresses this node listens on: the listeners of cfg (as
// bound, for those on port 0), the admin API and gossip.
func (a *Agent) sockets(cfg *config.Config) []string {
	out := []string{a.adminAddr, a.cluster.Addr()}
	for _, l := range cfg.Listeners {
		out = append(out, l.Address, a.lb.Addr(l.Name))
	}
	return out
}

// trackDrains remembers when each target started draining.
func (a *Agent) trackDrains(local, remote []discovery.Target) {
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	now := time.Now()
	current := map[string]bool{}
	for _, t := range append(slices.Clip(local), remote...) {
		if t.Draining {
			current[t.ID] = true
			if _, ok := a.drainsSince[t.ID]; !ok {
				a.drainsSince[t.ID] = now
				a.log.Info("agent: target draining", "target", t.ID, "container", t.ContainerName)
			}
		}
	}
	for id := range a.drainsSince {
		if !current[id] {
			delete(a.drainsSince, id)
		}
	}
}

func (a *Agent) drainDeadline(id string, delay time.Duration) time.Time {
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	return a.drainsSince[id].Add(delay)
}

func (a *Agent) inFlight(id string) int64 { return a.lb.InFlight(id) }

func (a *Agent) checked(id string) (health.Result, bool) { return a.checker.Result(id) }

// withHealth copies this node's health check verdicts into its targets, so
// the fleet routes by them too. A target whose group checks it but that has
// no verdict yet (it was just discovered) is initial: it gets traffic after
// its first passing check, not before.
func (a *Agent) withHealth(cfg *config.Config, targets []discovery.Target) []discovery.Target {
	out := slices.Clone(targets)
	specs := groupSpecs(cfg, out, &desired{})
	for i := range out {
		if r, ok := a.checker.Result(out[i].ID); ok {
			out[i].Health, out[i].HealthReason = r.State, r.Reason
		} else if len(out[i].Groups) > 0 && checked(out[i], specs[out[i].Groups[0]]) {
			out[i].Health, out[i].HealthReason = health.Initial, health.ReasonInitial
		}
	}
	return out
}

// logFailOpen says when a group starts and stops failing open.
func (a *Agent) logFailOpen(groups []string) {
	a.failOpenMu.Lock()
	defer a.failOpenMu.Unlock()
	for _, g := range groups {
		if !a.failingOpen[g] {
			a.failOpenCount.WithLabelValues(g).Inc()
			a.log.Warn("agent: no healthy target in group; routing to all of its targets (fail open)", "group", g)
		}
	}
	next := make(map[string]bool, len(groups))
	for _, g := range groups {
		next[g] = true
	}
	for g := range a.failingOpen {
		if !next[g] {
			a.log.Info("agent: group has healthy targets again; fail open ends", "group", g)
		}
	}
	a.failingOpen = next
}

// adminAccess reads the admin token and warns, at every start, of an admin API
// that anyone who reaches it may use (admin.insecure).
func (a *Agent) adminAccess(cfg config.Admin) (admin.Access, error) {
	access := admin.Access{MetricsPublic: cfg.MetricsPublic, Listen: cfg.Listen, AllowedHosts: cfg.AllowedHosts}
	if cfg.TokenFile == "" {
		if !cfg.LoopbackOnly() {
			a.log.Warn("agent: the admin API listens beyond loopback without a token (admin.insecure: true): anyone who reaches it can read this node's state and drain its targets; set admin.token-file", "admin", cfg.Listen)
		}
		return access, nil
	}
	token, err := admin.OpenToken(cfg.TokenFile, a.log)
	if err != nil {
		return admin.Access{}, fmt.Errorf("agent: admin.token-file: %w", err)
	}
	access.Token = token
	return access, nil
}

func (a *Agent) shutdown(adminSrv *http.Server) error {
	a.log.Info("agent: shutting down; finishing requests in flight", "bound", a.opts.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
	defer cancel()
	err := a.lb.Shutdown(ctx)
	adminSrv.Shutdown(ctx)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// latestOnly returns a channel whose every send replaces an unread value in
// out: the agent only ever needs the newest state.
func latestOnly(out chan discovery.State) chan<- discovery.State {
	in := make(chan discovery.State)
	go func() {
		for s := range in {
			replaceLatest(out, s)
		}
	}()
	return in
}

func replaceLatest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

// Status implements admin.Source.
func (a *Agent) Status() api.Status {
	v := a.view.Load()
	st := api.Status{Node: v.cfg.Node.Name, Version: a.opts.Version, Started: a.started, Groups: a.Groups(), Nodes: a.Nodes(),
		ClusterInsecure: a.insecure}
	if a.watcher != nil {
		ws := a.watcher.Stats()
		st.Docker = api.Docker{Connected: ws.Connected, LastSync: ws.LastSync, Error: ws.LastError}
	} else {
		st.Docker.Disabled = true
	}
	for _, l := range v.cfg.Listeners {
		def := "fixed-response 404"
		if l.Default != nil {
			def = describeAction(action(*l.Default))
		}
		addr := a.lb.Addr(l.Name)
		if addr == "" {
			addr = l.Address
		}
		st.Listeners = append(st.Listeners, api.Listener{Name: l.Name, Protocol: l.Protocol, Address: addr, Rules: v.desired.rules[l.Name], Default: def})
	}
	for _, s := range v.skipped {
		st.Skipped = append(st.Skipped, api.Skipped{Container: s.ContainerID, Name: s.ContainerName, Reason: s.Reason})
	}
	// An empty list, not null, as for the lists the admin API normalizes.
	st.LabelProblems = make([]api.LabelProblem, 0, len(v.labelProblems))
	for _, p := range v.labelProblems {
		st.LabelProblems = append(st.LabelProblems, api.LabelProblem{Container: p.ContainerID, Name: p.ContainerName, Reason: p.Reason})
	}
	return st
}

// Nodes implements admin.Source.
func (a *Agent) Nodes() []api.Node {
	if a.cluster == nil {
		return nil
	}
	members := a.cluster.Members()
	out := make([]api.Node, len(members))
	own := members[0].ConfigHash
	for i, m := range members {
		out[i] = api.Node{Name: m.Name, Node: m.Node, Address: m.Address, State: m.State, Seq: m.Seq, Known: m.Known,
			Targets: m.Targets, ConfigHash: m.ConfigHash, Version: m.Version, Self: m.Self, HasOurs: m.HasOurs, Suspect: m.Suspect,
			ConfigDrift: !m.Self && m.State == "alive" && m.ConfigHash != "" && m.ConfigHash != own}
	}
	return out
}

// Groups implements admin.Source.
func (a *Agent) Groups() []api.Group {
	v := a.view.Load()
	targets := a.Targets()
	routes := a.lb.Routes()
	out := make([]api.Group, len(v.desired.groups))
	for i, g := range v.desired.groups {
		for _, t := range targets {
			if t.Group == g.Name {
				g.InFlight += t.InFlight
				g.Requests += t.Requests
				g.Failures += t.Failures
			}
		}
		g.Latency = groupLatency(g.Name, routes)
		out[i] = g
	}
	return out
}

// groupLatency sums the histograms of every listener's route to group.
func groupLatency(group string, routes []balancer.RouteStats) api.Latency {
	var of []balancer.Histogram
	for _, r := range routes {
		if r.Group == group {
			of = append(of, r.Histogram)
		}
	}
	return latency(of...)
}

// latency is the sum of histograms (none: every count zero).
func latency(histograms ...balancer.Histogram) api.Latency {
	l := api.Latency{Bounds: slices.Clone(balancer.LatencyBuckets), Counts: make([]uint64, len(balancer.LatencyBuckets)+1)}
	for _, h := range histograms {
		for i, n := range h.Buckets {
			l.Counts[i] += n
		}
		l.Sum += h.Sum.Seconds()
	}
	return l
}

// Targets implements admin.Source.
func (a *Agent) Targets() []api.Target {
	v := a.view.Load()
	live := map[string]balancer.TargetStats{}
	for _, s := range a.lb.Targets() {
		live[s.ID] = s
	}
	out := make([]api.Target, len(v.desired.targets))
	for i, t := range v.desired.targets {
		s := live[t.ID]
		t.InFlight, t.Requests, t.Failures, t.Ejected = s.InFlight, s.Requests, s.Failures, s.Ejected
		t.Latency = latency(s.Latency)
		out[i] = t
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
