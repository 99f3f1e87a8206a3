// Package api holds the JSON documents of the admin API (/api/v1/...). The agent
// serves them and the CLI reads them; both sides share these types so they cannot drift.
package api

import "time"

// Status is GET /api/v1/status: the node, its listeners and a summary.
type Status struct {
	Node      string     `json:"node"`
	Version   string     `json:"version"`
	Started   time.Time  `json:"started"`
	Docker    Docker     `json:"docker"`
	Listeners []Listener `json:"listeners"`
	Groups    []Group    `json:"groups"`
	Skipped   []Skipped  `json:"skipped"`
	// LabelProblems are registered containers some of whose labels were left
	// out because their values are bad (docs/labels.md).
	LabelProblems []LabelProblem `json:"label_problems"`
	// Nodes are the fleet's agents, this one first; empty when cluster.enabled is false.
	Nodes []Node `json:"nodes"`
	// ClusterInsecure is true when gossip is reachable from other hosts without
	// a key (cluster.insecure): anyone who reaches it can join the fleet.
	ClusterInsecure bool `json:"cluster_insecure,omitempty"`
}

// Docker is the state of the connection to the Docker engine.
type Docker struct {
	// Disabled is true when the config turns Docker discovery off (docker.enabled: false).
	Disabled  bool      `json:"disabled,omitempty"`
	Connected bool      `json:"connected"`
	LastSync  time.Time `json:"last_sync"`
	Error     string    `json:"error,omitempty"`
}

// Listener is one port the balancer serves.
type Listener struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Rules    []Rule `json:"rules"`
	Default  string `json:"default"`
}

// Rule is a compiled routing rule, for display.
type Rule struct {
	Priority int      `json:"priority"`
	Hosts    []string `json:"hosts,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Action   string   `json:"action"`
	Source   string   `json:"source"`
}

// Group is GET /api/v1/groups: one target group and its target counts by state.
type Group struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	// Protocol is what berth speaks to the group's targets: http or https.
	Protocol            string         `json:"protocol"`
	DeregistrationDelay string         `json:"deregistration_delay"`
	Targets             int            `json:"targets"`
	States              map[string]int `json:"states"`
	InFlight            int64          `json:"in_flight"`
	Requests            uint64         `json:"requests"`
	// Failures are the requests to its targets that failed (connect errors,
	// resets, timeouts, malformed answers), as in Target.Failures; absent
	// when none.
	Failures uint64 `json:"failures,omitempty"`
	// Latency is the histogram of the group's HTTP requests, every listener
	// that forwards to it summed: the time from a request's first byte to its
	// answer's last. A reader takes percentiles from the difference of two
	// readings, as Prometheus does from berth_http_request_duration_seconds.
	Latency Latency `json:"latency,omitzero"`
	// FailOpen is true while the group has targets but none healthy: it then
	// routes to all of them (ALB's fail open).
	FailOpen bool `json:"fail_open,omitempty"`
}

// Latency is a cumulative histogram of request durations since the agent started.
type Latency struct {
	// Bounds are the buckets' upper bounds in seconds; Counts has one more
	// entry than Bounds: Counts[i] requests took at most Bounds[i], and the
	// last is every request (+Inf).
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	// Sum is the seconds all of them took together.
	Sum float64 `json:"sum"`
}

// Target is GET /api/v1/targets: one target in one group.
type Target struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	Node      string `json:"node"`
	Address   string `json:"address"`
	LocalOnly bool   `json:"local_only"`
	// State is healthy, draining or unhealthy (Docker HEALTHCHECK starting or
	// unhealthy), or unused (weight 0).
	State string `json:"state"`
	// Reason says why a target gets no new traffic, with ALB's codes where ALB
	// has one: Elb.InitialHealthChecking, Target.ResponseCodeMismatch,
	// Target.Timeout, Target.FailedHealthChecks, Target.DeregistrationInProgress,
	// Docker.HealthStarting, Docker.Unhealthy, Target.WeightZero.
	Reason string `json:"reason,omitempty"`
	// Ejected is true while this node's passive health check keeps the target
	// out of its rotation (consecutive failures; it returns after a back-off).
	Ejected bool `json:"ejected,omitempty"`
	// Suspect is true while this node suspects the target's node (it misses
	// pings): this node's balancers prefer every other target to it.
	Suspect   bool   `json:"suspect,omitempty"`
	Container string `json:"container,omitempty"`
	Source    string `json:"source"`
	InFlight  int64  `json:"in_flight"`
	Requests  uint64 `json:"requests"`
	Failures  uint64 `json:"failures"`
	// Latency is the histogram of this node's HTTP tries on the target, from
	// the pick (the connect included) to the end of the answer.
	Latency Latency `json:"latency,omitzero"`
}

// Skipped is a labelled container that could not be registered, with the reason.
type Skipped struct {
	Container string `json:"container"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// LabelProblem is a registered container with labels left out: a bad rule
// label leaves out the rule, a bad group policy label the policy. Reason
// names each label, its value and what is expected.
type LabelProblem struct {
	Container string `json:"container"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// Node is GET /api/v1/nodes: one agent of the fleet as this agent sees it.
type Node struct {
	// Name is the agent's memberlist name, "<node>@<epoch>": unique per agent start.
	Name string `json:"name"`
	Node string `json:"node"`
	// Address is where its gossip listens.
	Address string `json:"address"`
	// State is alive, left (said goodbye: its targets stay routable for
	// cluster.rejoin-grace) or dead (unreachable: its targets are not routed).
	State string `json:"state"`
	// Suspect is true while this agent suspects the node: alive for
	// memberlist, but it misses this agent's pings, so this agent's balancers
	// prefer every other node's targets to its own (docs/fleet.md). Each
	// agent has its own view.
	Suspect bool `json:"suspect,omitempty"`
	// Seq is the version of its targets it announces; Known the version whose
	// every change arrived here. Known < Seq for long means updates are lost.
	Seq   uint64 `json:"seq"`
	Known uint64 `json:"known"`
	// Targets is how many targets it owns, as known here.
	Targets int `json:"targets"`
	// ConfigHash identifies its listeners and groups config; ConfigDrift is true
	// when it differs from this agent's.
	ConfigHash  string `json:"config_hash"`
	ConfigDrift bool   `json:"config_drift"`
	// Version is the agent's version; empty for an agent too old to tell it.
	Version string `json:"version,omitempty"`
	Self    bool   `json:"self"`
	// HasOurs is true when the node reported having every change of this
	// agent's targets: a change made here (a new healthy container, a drain)
	// is in force there.
	HasOurs bool `json:"has_ours"`
}

// DrainRequest is the body of POST /api/v1/drains.
type DrainRequest struct {
	// Target is a target ID, or a container of this node by ID (or a prefix of
	// at least 4 characters) or name: all its targets drain.
	Target string `json:"target"`
}

// Drain is GET /api/v1/drains: one of this node's draining targets and how
// far its drain has come across the fleet.
type Drain struct {
	Target    string    `json:"target"`
	Container string    `json:"container,omitempty"`
	Started   time.Time `json:"started"`
	// Deadline is when the group's deregistration delay ends.
	Deadline time.Time `json:"deadline"`
	// InFlight is the requests in flight to the target: this node's plus those
	// the other nodes reported.
	InFlight int64 `json:"in_flight"`
	// Nodes is how many nodes may route to it (this one included); Reported
	// how many of them told their count within the last second.
	Nodes    int `json:"nodes"`
	Reported int `json:"reported"`
	// Done is true when every node reported zero (Outcome "drained") or the
	// deregistration delay ended (Outcome "delay_ended").
	Done    bool   `json:"done"`
	Outcome string `json:"outcome,omitempty"`
	// Requested is true for a drain POST /api/v1/drains started (berth
	// drain), which DELETE ends; false for a stopping container's.
	Requested bool `json:"requested,omitempty"`
}

// Error is the body of every non-2xx admin API answer.
type Error struct {
	Error string `json:"error"`
}
