// Package discovery holds the plain data types that every discovery source emits:
// the targets a host offers and the containers it had to skip. Sources live in
// sub-packages (docker, gossip); the agent merges what they report.
package discovery

import "time"

// Target is one host:port that receives traffic for one or more groups, as
// discovered on its owner node. It is a value: sources build a fresh one on change.
type Target struct {
	// ID is "<node>/<container-id-12>/<container-port>", unique across the fleet.
	ID string
	// Node is the name of the node that owns (discovered) the target.
	Node string
	// Groups the target joins (berth.group, comma-separated), sorted, no duplicates.
	Groups []string
	// Address is "ip:port" where the balancer connects.
	Address string
	// LocalOnly is true when the port is published on a loopback address, so only
	// the owner node can reach it.
	LocalOnly bool
	// Weight is the relative weight (berth.weight), 1 by default, 0 for no new traffic.
	Weight int
	// ContainerID is the full Docker container ID; ContainerName without the leading "/".
	ContainerID   string
	ContainerName string
	// Created is when the container was created; the newest container's labels win
	// when containers of one group disagree on group settings.
	Created time.Time
	// Draining is set from the container's kill event on: no new requests.
	Draining bool
	// Suspect is set on another node's target while that node misses the
	// fleet's pings (discovery/gossip): balancers prefer other targets.
	Suspect bool
	// DockerHealth is the container's HEALTHCHECK status: "" (none), "starting",
	// "healthy" or "unhealthy". Only "" and "healthy" receive traffic.
	DockerHealth string
	// Health is the owner's active health check result: "" (not checked, or
	// checks disabled), "initial", "healthy" or "unhealthy", with an ALB-style
	// reason code (Elb.InitialHealthChecking, Target.Timeout,
	// Target.ResponseCodeMismatch, Target.FailedHealthChecks...).
	Health       string
	HealthReason string
	// Settings are the group policies declared by the container's labels.
	Settings GroupSettings
	// Rules are the routing rules declared by the container's labels; they forward
	// to the target's first group.
	Rules []Rule
}

// GroupSettings are group policies declared by labels. A nil or zero field was not set.
type GroupSettings struct {
	DeregistrationDelay *time.Duration
	Algorithm           string
	// SlowStart is the group's slow start window (berth.slow-start); 0: unset.
	SlowStart time.Duration
	Health    HealthSettings
	// Stickiness is the group's cookie stickiness (berth.stickiness,
	// berth.stickiness.duration); a zero Type: unset.
	Stickiness StickinessSettings
	// Protocol is what the balancer speaks to the group's targets
	// (berth.protocol): http or https; "": unset.
	Protocol string
	// ProxyProtocol is "v2" when the group's L4 connections to targets start
	// with a proxy protocol v2 header (berth.proxy-protocol). "" is both
	// unset and berth.proxy-protocol=none: off is the default, so containers
	// saying none and saying nothing agree.
	ProxyProtocol string
	// ConnectionTermination closes a draining target's connections when its
	// delay ends (berth.connection-termination); false is both unset and
	// false, for the same reason.
	ConnectionTermination bool
}

// IsZero reports whether no label set any group policy.
func (s GroupSettings) IsZero() bool {
	return s.DeregistrationDelay == nil && s.Algorithm == "" && s.SlowStart == 0 &&
		s.Health == (HealthSettings{}) && s.Stickiness == (StickinessSettings{}) && s.Protocol == "" &&
		s.ProxyProtocol == "" && !s.ConnectionTermination
}

// StickinessSettings are a group's stickiness as labels declare it.
type StickinessSettings struct {
	Type     string // lb_cookie or app_cookie
	Cookie   string // the application's cookie, for app_cookie
	Duration time.Duration
}

// HealthSettings are a group's active health check as labels declare it
// (berth.health.*). A zero field was not set.
type HealthSettings struct {
	Protocol  string // http, https or tcp
	Path      string
	Port      int
	Interval  time.Duration
	Timeout   time.Duration
	Healthy   int
	Unhealthy int
	Matcher   string
}

// Rule is a routing rule declared by labels (berth.rule.*).
type Rule struct {
	Listener string
	// Priority is berth.rule.priority, 1 to 50000; 0 when the labels give
	// none: the agent then places the rule after every rule with a priority
	// (agent.compile, docs/labels.md).
	Priority int
	Hosts    []string
	Paths    []string
	// Methods, Headers (name to value patterns), Queries and SourceIPs
	// (CIDRs) are further conditions, AND'd with the host and path.
	Methods   []string            `json:",omitempty"`
	Headers   map[string][]string `json:",omitempty"`
	Queries   []QueryPattern      `json:",omitempty"`
	SourceIPs []string            `json:",omitempty"`
	Group     string
}

// QueryPattern is one key/value pattern of a query-string condition; an
// empty Key matches any key.
type QueryPattern struct {
	Key, Value string
}

// Skipped is a container that carries the group label but cannot be registered.
type Skipped struct {
	ContainerID   string
	ContainerName string
	// Reason says what is wrong and what to do, e.g. "several published ports
	// (8080, 9090) and no berth.port label: set berth.port to the one to use".
	Reason string
}

// LabelProblem is a registered container some of whose labels were left out
// because their values are bad: a rule label leaves out the rule, a group
// policy label leaves the group's default.
type LabelProblem struct {
	ContainerID   string
	ContainerName string
	// Reason names each label left out, its value, what is expected and what
	// applies instead.
	Reason string
}

// State is everything one source knows at one moment.
type State struct {
	Targets       []Target
	Skipped       []Skipped
	LabelProblems []LabelProblem
}
