package balancer

import "time"

// Config is the complete desired routing state. The agent builds one from the
// config file, the labels and the discovered targets and hands it to Apply; the
// balancer compiles it into an immutable snapshot and swaps it in atomically.
type Config struct {
	Listeners []ListenerConfig
	Groups    []GroupConfig
}

// ListenerConfig is one port the balancer accepts connections on.
type ListenerConfig struct {
	Name string
	// Address is "host:port" to listen on; ":80" listens on every address.
	Address string
	// Rules are evaluated lowest Priority first; the first match wins.
	Rules []Rule
	// Default is the action when no rule matches; the zero Action answers 404.
	Default Action
	// IdleTimeout closes a client connection that sends nothing for this long
	// (ALB default 60s). Zero means the default.
	IdleTimeout time.Duration
}

// Rule matches requests and applies an action. Values within Hosts are OR'd, as
// are values within Paths; Hosts and Paths are AND'd. An empty list matches all.
type Rule struct {
	Priority int
	// Hosts are host-header patterns, case-insensitive, with * and ? wildcards.
	Hosts []string
	// Paths are path patterns, case-sensitive, without the query, with * and ?.
	Paths []string
	// Source names where the rule came from (config or a container) for status.
	Source string
	Action Action
}

// Action is what a listener does with a request. Exactly one of Forward and
// Fixed is set; neither means a 404 fixed response.
type Action struct {
	// Forward names the group to send the request to.
	Forward string
	Fixed   *FixedResponse
}

// FixedResponse is answered by the balancer itself.
type FixedResponse struct {
	Status      int
	ContentType string
	Body        string
}

// GroupConfig is a target group and its policies.
type GroupConfig struct {
	Name    string
	Targets []TargetConfig
	// Algorithm picks a target for each request: AlgorithmRoundRobin (the
	// default for ""), AlgorithmLeastOutstanding or AlgorithmWeightedRandom.
	Algorithm string
	// ConnectTimeout bounds dialling a target (default 10s).
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for a target's response head after the
	// request was sent (default 60s).
	ResponseTimeout time.Duration
}

// The algorithms a group can use, with ALB's names.
const (
	// AlgorithmRoundRobin takes the serving targets in turn, each as often as its weight.
	AlgorithmRoundRobin = "round_robin"
	// AlgorithmLeastOutstanding takes the target with the fewest requests in
	// flight from this node; ties go round robin.
	AlgorithmLeastOutstanding = "least_outstanding_requests"
	// AlgorithmWeightedRandom takes a target at random, in proportion to its weight.
	AlgorithmWeightedRandom = "weighted_random"
)

// TargetConfig is one target of a group.
type TargetConfig struct {
	// ID identifies the target across snapshots; its per-target state (in-flight
	// count, pooled connections, counters) is keyed by it.
	ID      string
	Address string
	// Serving is false for a draining, unhealthy or zero-weight target: it keeps
	// its in-flight requests but gets no new ones.
	Serving bool
	// Weight is the target's share of new requests relative to the others of
	// its group; 0 counts as 1 (a target that must get nothing is not Serving).
	Weight int
}

// TargetStats are the live counters of one target.
type TargetStats struct {
	ID       string
	InFlight int64
	Requests uint64
	Failures uint64
	// Ejected is true while passive health keeps the target out of this node's
	// rotation; Ejections counts how often that happened.
	Ejected   bool
	Ejections uint64
}
