package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/berth-lb/berth/balancer"
	"github.com/berth-lb/berth/discovery/gossip"
)

// Metric descriptions. docs/metrics.md lists them for users; keep both in step.
var (
	descRequests = prometheus.NewDesc("berth_http_requests_total",
		"HTTP requests answered, by listener, target group (empty: no group, e.g. fixed responses and 404s) and status code.",
		[]string{"listener", "group", "code"}, nil)
	descDuration = prometheus.NewDesc("berth_http_request_duration_seconds",
		"Time from the first byte of a request to the last byte of its response, by listener and group.",
		[]string{"listener", "group"}, nil)
	descBalancerErrors = prometheus.NewDesc("berth_http_balancer_errors_total",
		"Answers the balancer gave itself (400, 408, 431, 502, 503, 504), by listener and reason.",
		[]string{"listener", "reason"}, nil)
	descConnsActive = prometheus.NewDesc("berth_listener_connections_active",
		"Client connections open now, by listener.", []string{"listener"}, nil)
	descConnsTotal = prometheus.NewDesc("berth_listener_connections_total",
		"Client connections accepted, by listener.", []string{"listener"}, nil)
	descTargetInFlight = prometheus.NewDesc("berth_target_in_flight_requests",
		"Requests in flight to a target now.", []string{"target"}, nil)
	descTargetRequests = prometheus.NewDesc("berth_target_requests_total",
		"Requests sent to a target.", []string{"target"}, nil)
	descTargetFailures = prometheus.NewDesc("berth_target_failures_total",
		"Requests to a target that failed: connect errors, resets, timeouts, malformed responses.", []string{"target"}, nil)
	descTargetEjected = prometheus.NewDesc("berth_target_ejected",
		"1 while passive health keeps a target out of this node's rotation, else 0.", []string{"target"}, nil)
	descTargetEjections = prometheus.NewDesc("berth_target_ejections_total",
		"Times passive health took a target out of this node's rotation.", []string{"target"}, nil)
	descL4ConnsActive = prometheus.NewDesc("berth_l4_connections_active",
		"L4 connections (TCP, TLS) and UDP flows open now, by listener and group.", []string{"listener", "group"}, nil)
	descL4ConnsTotal = prometheus.NewDesc("berth_l4_connections_total",
		"L4 connections and UDP flows forwarded to a target, by listener and group.", []string{"listener", "group"}, nil)
	descL4Bytes = prometheus.NewDesc("berth_l4_bytes_total",
		"L4 bytes from clients (in) and to them (out), by listener and group.", []string{"listener", "group", "direction"}, nil)
	descListenerBytes = prometheus.NewDesc("berth_listener_bytes_total",
		"L4 bytes from clients (in) and to them (out), by listener.", []string{"listener", "direction"}, nil)
	descRefused = prometheus.NewDesc("berth_listener_connections_refused_total",
		"Client connections reset at accept, by listener and reason (limit: the listener had max-connections open).", []string{"listener", "reason"}, nil)
	descPanics = prometheus.NewDesc("berth_panics_total",
		"Panics recovered, by component (listener: a client connection's, UDP datagram's or HTTP/2 stream's goroutine, which ended that connection or stream only; health_check: a check, which failed; idle_park: the loop waiting for parked idle connections, which goes on) and listener. Each is a bug.",
		[]string{"component", "listener"}, nil)
	descAccessDropped = prometheus.NewDesc("berth_access_log_dropped_total",
		"Access-log lines dropped because the log's queue was full: its destination took lines slower than they came.", nil, nil)
	descUDPDropped = prometheus.NewDesc("berth_udp_flows_dropped_total",
		"Datagrams dropped because they would have opened a flow beyond the flow table's bound, by listener.", []string{"listener"}, nil)
	descTargetConnsActive = prometheus.NewDesc("berth_target_connections_active",
		"L4 connections and UDP flows open to a target now.", []string{"target"}, nil)
	descTargetConnsTotal = prometheus.NewDesc("berth_target_connections_total",
		"L4 connections and UDP flows opened to a target.", []string{"target"}, nil)
	descTargetBytes = prometheus.NewDesc("berth_target_bytes_total",
		"L4 bytes from clients to a target (in) and back (out).", []string{"target", "direction"}, nil)
	descTargets = prometheus.NewDesc("berth_targets",
		"Targets by group and state (healthy, initial, unhealthy, unused, draining).", []string{"group", "state"}, nil)
	descFailOpen = prometheus.NewDesc("berth_group_fail_open",
		"1 while a group has targets but none healthy and routes to all of them (fail open), else 0.", []string{"group"}, nil)
	descChecks = prometheus.NewDesc("berth_health_checks_total",
		"Active health checks this node ran on its own targets, by result (pass, fail).", []string{"result"}, nil)
	descSkipped = prometheus.NewDesc("berth_docker_skipped_containers",
		"Labelled containers that could not be registered; berth status shows why.", nil, nil)
	descLabelProblems = prometheus.NewDesc("berth_docker_label_problem_containers",
		"Registered containers with bad labels left out (a rule, or a group policy whose default applies); berth status shows which.", nil, nil)
	descDockerConnected = prometheus.NewDesc("berth_docker_connected",
		"1 while the agent follows the Docker events stream, else 0.", nil, nil)
	descDockerEvents = prometheus.NewDesc("berth_docker_events_total",
		"Docker container events received, by action.", []string{"action"}, nil)
	descDockerResyncs = prometheus.NewDesc("berth_docker_resyncs_total",
		"Periodic full re-lists of the containers.", nil, nil)
	descDockerReconnects = prometheus.NewDesc("berth_docker_reconnects_total",
		"Times the connection to Docker was established again after a loss.", nil, nil)

	descMembers = prometheus.NewDesc("berth_cluster_members",
		"Agents of the fleet by state (alive, left, dead), this one included.", []string{"state"}, nil)
	descMembersSuspect = prometheus.NewDesc("berth_cluster_members_suspect",
		"Alive agents this one suspects: they miss its pings, and its balancers avoid their targets.", nil, nil)
	descSuspicions = prometheus.NewDesc("berth_cluster_suspicions_total",
		"Times an agent became suspect here (missed pings in a row).", nil, nil)
	descConfigDrift = prometheus.NewDesc("berth_cluster_config_drift_nodes",
		"Alive agents whose listeners and groups config differs from this agent's.", nil, nil)
	descOwnersInSync = prometheus.NewDesc("berth_cluster_nodes_in_sync",
		"Alive agents whose every announced target change has arrived here.", nil, nil)
	descOwners = prometheus.NewDesc("berth_cluster_nodes_alive",
		"Alive agents other than this one.", nil, nil)
	descPropagation = prometheus.NewDesc("berth_gossip_propagation_seconds",
		"Delay from an owner's target change to its arrival here (the owner's clock against this one's).", nil, nil)
	descQueue = prometheus.NewDesc("berth_gossip_queued_broadcasts",
		"Messages waiting in the gossip queue.", nil, nil)
	descDropped = prometheus.NewDesc("berth_gossip_messages_dropped_total",
		"Received gossip messages not trusted, by reason: malformed, oversized, stale, foreign, queue_full, unknown_sender, bad_signature, not_owner.", []string{"reason"}, nil)
	descTargetsRefused = prometheus.NewDesc("berth_gossip_targets_refused_total",
		"Targets of other nodes refused on receipt, by reason: not_owner_address, special_address, own_port.", []string{"reason"}, nil)
	descMembersRefused = prometheus.NewDesc("berth_gossip_members_refused_total",
		"Alive messages of would-be members refused, by reason: not_berth, key_changed, too_many, address, name_taken, address_taken.", []string{"reason"}, nil)
	descDirect = prometheus.NewDesc("berth_gossip_direct_sends_total",
		"Drains and removals sent directly over TCP, by result (ok, failed).", []string{"result"}, nil)
	descPulls = prometheus.NewDesc("berth_gossip_pulls_total",
		"Full-state requests sent to repair a gap.", nil, nil)
	descPushPull = prometheus.NewDesc("berth_gossip_push_pull_bytes_total",
		"Bytes of full state exchanged in memberlist's push/pull, by direction (sent, received).", []string{"direction"}, nil)
	descHealthScore = prometheus.NewDesc("berth_gossip_health_score",
		"memberlist's awareness score: 0 is healthy; higher means this node is slow to answer probes.", nil, nil)
)

// collector reads the balancer's and the watcher's counters at scrape time, so
// the request path only does atomic adds.
type collector struct{ a *Agent }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descBalancerErrors, descConnsActive, descConnsTotal,
		descFailOpen, descChecks,
		descRefused, descPanics, descAccessDropped,
		descL4ConnsActive, descL4ConnsTotal, descL4Bytes, descListenerBytes, descUDPDropped,
		descTargetConnsActive, descTargetConnsTotal, descTargetBytes,
		descTargetInFlight, descTargetRequests, descTargetFailures, descTargetEjected, descTargetEjections, descTargets, descSkipped, descLabelProblems,
		descDockerConnected, descDockerEvents, descDockerResyncs, descDockerReconnects,
		descMembers, descMembersSuspect, descSuspicions, descConfigDrift, descOwnersInSync, descOwners, descPropagation, descQueue, descDropped,
		descTargetsRefused, descMembersRefused,
		descDirect, descPulls, descPushPull, descHealthScore} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.a.lb.Routes() {
		for code, n := range r.Codes {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), r.Listener, r.Group, strconv.Itoa(code))
		}
		buckets := make(map[float64]uint64, len(balancer.LatencyBuckets))
		for i, le := range balancer.LatencyBuckets {
			buckets[le] = r.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, r.Count, r.Sum.Seconds(), buckets, r.Listener, r.Group)
		if r.Connections > 0 {
			ch <- prometheus.MustNewConstMetric(descL4ConnsActive, prometheus.GaugeValue, float64(r.ActiveConnections), r.Listener, r.Group)
			ch <- prometheus.MustNewConstMetric(descL4ConnsTotal, prometheus.CounterValue, float64(r.Connections), r.Listener, r.Group)
			ch <- prometheus.MustNewConstMetric(descL4Bytes, prometheus.CounterValue, float64(r.BytesIn), r.Listener, r.Group, "in")
			ch <- prometheus.MustNewConstMetric(descL4Bytes, prometheus.CounterValue, float64(r.BytesOut), r.Listener, r.Group, "out")
		}
	}
	for _, l := range c.a.lb.Listeners() {
		ch <- prometheus.MustNewConstMetric(descConnsActive, prometheus.GaugeValue, float64(l.ActiveConnections), l.Name)
		ch <- prometheus.MustNewConstMetric(descConnsTotal, prometheus.CounterValue, float64(l.TotalConnections), l.Name)
		for reason, n := range l.Errors {
			ch <- prometheus.MustNewConstMetric(descBalancerErrors, prometheus.CounterValue, float64(n), l.Name, reason.String())
		}
		if l.Protocol != balancer.ProtocolUDP { // a UDP listener's excess is counted in berth_udp_flows_dropped_total
			ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(l.Refused), l.Name, "limit")
		}
		ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(l.Panics), "listener", l.Name)
		if l.Protocol != balancer.ProtocolHTTP && l.Protocol != balancer.ProtocolHTTPS {
			ch <- prometheus.MustNewConstMetric(descListenerBytes, prometheus.CounterValue, float64(l.BytesIn), l.Name, "in")
			ch <- prometheus.MustNewConstMetric(descListenerBytes, prometheus.CounterValue, float64(l.BytesOut), l.Name, "out")
		}
		if l.Protocol == balancer.ProtocolUDP {
			ch <- prometheus.MustNewConstMetric(descUDPDropped, prometheus.CounterValue, float64(l.UDPFlowsDropped), l.Name)
		}
	}
	for _, t := range c.a.lb.Targets() {
		ch <- prometheus.MustNewConstMetric(descTargetInFlight, prometheus.GaugeValue, float64(t.InFlight), t.ID)
		ch <- prometheus.MustNewConstMetric(descTargetRequests, prometheus.CounterValue, float64(t.Requests), t.ID)
		ch <- prometheus.MustNewConstMetric(descTargetFailures, prometheus.CounterValue, float64(t.Failures), t.ID)
		ejected := 0.0
		if t.Ejected {
			ejected = 1
		}
		ch <- prometheus.MustNewConstMetric(descTargetEjected, prometheus.GaugeValue, ejected, t.ID)
		ch <- prometheus.MustNewConstMetric(descTargetEjections, prometheus.CounterValue, float64(t.Ejections), t.ID)
		if t.Connections > 0 {
			ch <- prometheus.MustNewConstMetric(descTargetConnsActive, prometheus.GaugeValue, float64(t.ActiveConnections), t.ID)
			ch <- prometheus.MustNewConstMetric(descTargetConnsTotal, prometheus.CounterValue, float64(t.Connections), t.ID)
			ch <- prometheus.MustNewConstMetric(descTargetBytes, prometheus.CounterValue, float64(t.BytesIn), t.ID, "in")
			ch <- prometheus.MustNewConstMetric(descTargetBytes, prometheus.CounterValue, float64(t.BytesOut), t.ID, "out")
		}
	}
	if v := c.a.view.Load(); v != nil {
		for _, g := range v.desired.groups {
			for _, state := range []string{"healthy", "initial", "unhealthy", "unused", "draining"} {
				ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(g.States[state]), g.Name, state)
			}
		}
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.GaugeValue, float64(len(v.skipped)))
		ch <- prometheus.MustNewConstMetric(descLabelProblems, prometheus.GaugeValue, float64(len(v.labelProblems)))
		for _, g := range v.desired.groups {
			open := 0.0
			if g.FailOpen {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(descFailOpen, prometheus.GaugeValue, open, g.Name)
		}
	}
	if c.a.watcher != nil {
		s := c.a.watcher.Stats()
		connected := 0.0
		if s.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(descDockerConnected, prometheus.GaugeValue, connected)
		for action, n := range s.Events {
			ch <- prometheus.MustNewConstMetric(descDockerEvents, prometheus.CounterValue, float64(n), action)
		}
		ch <- prometheus.MustNewConstMetric(descDockerResyncs, prometheus.CounterValue, float64(s.Resyncs))
		ch <- prometheus.MustNewConstMetric(descDockerReconnects, prometheus.CounterValue, float64(s.Reconnects))
	}
	passed, failed := c.a.checker.Counts()
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(passed), "pass")
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(failed), "fail")
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(c.a.checker.Panics()), "health_check", "")
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(c.a.lb.IdleParkPanics()), "idle_park", "")
	ch <- prometheus.MustNewConstMetric(descAccessDropped, prometheus.CounterValue, float64(c.a.lb.AccessLogDropped()))
	if c.a.cluster != nil {
		c.collectCluster(ch)
	}
}

func (c collector) collectCluster(ch chan<- prometheus.Metric) {
	s := c.a.cluster.Stats()
	for _, state := range []string{"alive", "left", "dead"} {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(s.Members[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(descMembersSuspect, prometheus.GaugeValue, float64(s.Suspect))
	ch <- prometheus.MustNewConstMetric(descSuspicions, prometheus.CounterValue, float64(s.Suspicions))
	drift := 0
	for _, n := range c.a.Nodes() {
		if n.ConfigDrift {
			drift++
		}
	}
	ch <- prometheus.MustNewConstMetric(descConfigDrift, prometheus.GaugeValue, float64(drift))
	ch <- prometheus.MustNewConstMetric(descOwnersInSync, prometheus.GaugeValue, float64(s.OwnersInSync))
	ch <- prometheus.MustNewConstMetric(descOwners, prometheus.GaugeValue, float64(s.Owners))
	buckets := make(map[float64]uint64, len(gossip.PropagationBuckets))
	for i, le := range gossip.PropagationBuckets {
		buckets[le] = s.Propagation[i]
	}
	ch <- prometheus.MustNewConstHistogram(descPropagation, s.PropagationCount, s.PropagationSum.Seconds(), buckets)
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.QueuedBroadcasts))
	for desc, counts := range map[*prometheus.Desc]map[string]uint64{descDropped: s.Dropped, descTargetsRefused: s.TargetsRefused, descMembersRefused: s.MembersRefused} {
		for reason, n := range counts {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n), reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(descDirect, prometheus.CounterValue, float64(s.DirectSends), "ok")
	ch <- prometheus.MustNewConstMetric(descDirect, prometheus.CounterValue, float64(s.DirectFailures), "failed")
	ch <- prometheus.MustNewConstMetric(descPulls, prometheus.CounterValue, float64(s.Pulls))
	ch <- prometheus.MustNewConstMetric(descPushPull, prometheus.CounterValue, float64(s.PushPullBytesSent), "sent")
	ch <- prometheus.MustNewConstMetric(descPushPull, prometheus.CounterValue, float64(s.PushPullBytesReceived), "received")
	ch <- prometheus.MustNewConstMetric(descHealthScore, prometheus.GaugeValue, float64(s.HealthScore))
}

// buildInfo is berth_build_info: 1, labelled with version.
func buildInfo(version string) *prometheus.GaugeVec {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_build_info", Help: "1, labelled with the running version."}, []string{"version"})
	info.WithLabelValues(version).Set(1)
	return info
}

func (a *Agent) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_config_reloads_total",
		Help: "Config file reloads, by result (success, failure: the last good config stayed in force).",
	}, []string{"result"})
	a.failOpenCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_group_fail_open_total",
		Help: "Times a group found no healthy target and routed to all of its targets (fail open).",
	}, []string{"group"})
	reg.MustRegister(collector{a}, a.reloads, a.failOpenCount, buildInfo(a.opts.Version), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
