package balancer

import (
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// Config is the complete desired routing state. The agent builds one from the
// config file, the labels and the discovered targets and hands it to Apply; the
// balancer compiles it into an immutable snapshot and swaps it in atomically.
type Config struct {
	Listeners []ListenerConfig
	Groups    []GroupConfig
	// AccessLog is where the L4 listeners write one JSON line per connection
	// or UDP flow: AccessLogStdout, AccessLogOff (or "": none) or a file
	// path (appended to). The agent's default is stdout (log.access, docs/l4.md).
	AccessLog string
}

// Access log destinations besides a file path.
const (
	AccessLogStdout = accesslog.Stdout
	AccessLogOff    = accesslog.Off
)

// ListenerConfig is one port the balancer accepts connections on.
type ListenerConfig struct {
	Name string
	// Protocol is ProtocolHTTP (the default for ""), ProtocolTCP, ProtocolTLS or
	// ProtocolUDP. The L4 protocols forward whole connections (or UDP flows);
	// docs/l4.md.
	Protocol string
	// Address is "host:port" to listen on; ":80" listens on every address.
	Address string
	// Rules are evaluated lowest Priority first; the first match wins. On a
	// TLS listener a rule has Hosts only, matched against the ClientHello's
	// server name (SNI), and forwards; TCP and UDP listeners have no rules.
	Rules []Rule
	// Default is the action when no rule matches; the zero Action answers 404
	// on HTTP and closes the connection on the L4 protocols, which only forward.
	Default Action
	// IdleTimeout closes a client connection that sends nothing for this long
	// (ALB default 60s); on TCP and TLS, a connection where nothing flows
	// either way (NLB: 350s); on UDP, a flow (120s). Zero means the default.
	IdleTimeout time.Duration
	// XForwardedFor is what an HTTP listener does with the X-Forwarded-For
	// header: XFFAppend (the default for ""), XFFPreserve or XFFRemove.
	XForwardedFor string
	// RedirectToHTTPS, on an http listener, answers every request with a 301
	// to the same host, path and query on https at this port; 0 is off.
	RedirectToHTTPS int
	// Certificates make a TLS listener terminate TLS: the certificate is chosen
	// by SNI among them (the first is the fallback). Without them a TLS
	// listener passes TLS through, routed by SNI, never decrypting.
	Certificates []Certificate
	// MaxConnections bounds the client connections open at once (UDP: the
	// flows); a connection over it is reset as soon as it is accepted and
	// counted (ListenerStats.Refused; UDP: the datagram is dropped,
	// UDPFlowsDropped). Zero means the default, DefaultMaxConnections
	// (DefaultMaxUDPFlows on UDP); NoConnectionLimit means none.
	MaxConnections int
}

// DefaultMaxConnections is the connection limit of an http, https, tcp or
// tls listener whose MaxConnections is 0 (docs/config.md, max-connections).
const DefaultMaxConnections = 10000

// NoConnectionLimit, as ListenerConfig.MaxConnections, lets a listener take
// as many connections as the process can open.
const NoConnectionLimit = -1

// The X-Forwarded-For modes, as on ALB.
const (
	// XFFAppend adds the client's address to the header (or creates it).
	XFFAppend = "append"
	// XFFPreserve passes the header on as the client sent it.
	XFFPreserve = "preserve"
	// XFFRemove drops the header.
	XFFRemove = "remove"
)

// The listener protocols.
const (
	ProtocolHTTP = "http"
	ProtocolTCP  = "tcp"
	ProtocolTLS  = "tls"
	// ProtocolHTTPS terminates TLS (certificates by SNI) and serves HTTP/1.1
	// and HTTP/2 (ALPN) with the HTTP listener's routing.
	ProtocolHTTPS = "https"
	ProtocolUDP   = "udp"
)

// Rule matches requests and applies an action. Values within Hosts are OR'd, as
// are values within Paths; Hosts and Paths are AND'd. An empty list matches all.
type Rule struct {
	Priority int
	// Hosts are host-header patterns, case-insensitive, with * and ? wildcards.
	Hosts []string
	// Paths are path patterns, case-sensitive, without the query, with * and ?.
	Paths []string
	// Headers maps a header name (case-insensitive, no wildcard) to value
	// patterns (case-insensitive, * and ?); every named header must match.
	Headers map[string][]string
	// Methods are request methods, exact and case-sensitive.
	Methods []string
	// Queries are query-string key/value patterns (case-insensitive, * and
	// ?); an empty key matches any key.
	Queries []QueryCondition
	// SourceIPs are CIDRs that the TCP peer's address (never
	// X-Forwarded-For) must be in.
	SourceIPs []string
	// Source names where the rule came from (config or a container) for status.
	Source string
	Action Action
}

// Action is what a listener does with a request. Exactly one of Forward,
// WeightedForward, Redirect and Fixed is set; none means a 404 fixed response.
type Action struct {
	// Forward names the group to send the request to.
	Forward string
	// WeightedForward splits requests among up to MaxForwardGroups groups in
	// proportion to their weights (0..999), picked per request.
	WeightedForward []WeightedGroup
	// GroupStickiness, with WeightedForward, keeps a client on the group it
	// was first sent to for this long (1s..7d) by the cookie BERTHTG, as
	// ALB's target group stickiness (AWSALBTG); 0 is off.
	GroupStickiness time.Duration
	Redirect        *Redirect
	Fixed           *FixedResponse
}

// MaxForwardGroups is how many groups one forward action may split among, as on ALB.
const MaxForwardGroups = 5

// MaxForwardWeight is the largest weight of a group in a weighted forward.
const MaxForwardWeight = 999

// WeightedGroup is one group of a weighted forward.
type WeightedGroup struct {
	Group  string
	Weight int
}

// QueryCondition is one key/value pattern of a query-string condition.
type QueryCondition struct {
	Key   string // empty: any key
	Value string
}

// Redirect and FixedResponse are the HTTP front's: see there.
type (
	Redirect      = httpfront.Redirect
	FixedResponse = httpfront.FixedResponse
)

// MaxFixedBody and FixedContentTypes are ALB's limits of a fixed response.
const MaxFixedBody = httpfront.MaxFixedBody

var FixedContentTypes = httpfront.FixedContentTypes

// StickyCookieGroup is the cookie of a weighted forward's group stickiness.
const StickyCookieGroup = httpfront.StickyCookieGroup

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
	// Stickiness keeps a client on one target by a cookie; nil: none.
	Stickiness *Stickiness
	// ProxyProtocol makes TCP and TLS listeners open every connection to a
	// target of this group with a proxy protocol v2 header carrying the
	// client's and the listener's addresses.
	ProxyProtocol bool
	// SlowStart ramps a target's share of new requests linearly from 0 to
	// its full weight over this window after it starts serving (ALB: 30s to
	// 900s; 0 is off). Not with AlgorithmLeastOutstanding.
	SlowStart time.Duration
	// AnomalyMitigation makes AlgorithmWeightedRandom send less to targets
	// whose recent answers were 5xx or failed connects, and more again as
	// they recover; it acts in groups of at least three serving targets.
	AnomalyMitigation bool
	// Protocol is what http and https listeners speak to the group's
	// targets: ProtocolHTTP (the default for "") or ProtocolHTTPS, TLS whose
	// certificate is not verified, as ALB does. L4 listeners ignore it. A
	// target listed in an https group is spoken to with TLS by every group.
	Protocol string
}

// Stickiness keeps a client's requests on one target of a group.
type Stickiness struct {
	// Type is StickinessLBCookie or StickinessAppCookie.
	Type string
	// Cookie is the application's cookie for StickinessAppCookie.
	Cookie string
	// Duration is how long the balancer's cookie lasts (1s..7d; default 1d).
	Duration time.Duration
}

// The stickiness types, with ALB's names.
const (
	// StickinessLBCookie: the balancer's cookie BERTHLB names the target.
	StickinessLBCookie = "lb_cookie"
	// StickinessAppCookie: while the application's cookie is present, the
	// balancer's cookie BERTHAPP names the target.
	StickinessAppCookie = "app_cookie"
)

// The algorithms a group can use, with ALB's names (balancer/pool picks by them).
const (
	// AlgorithmRoundRobin takes the serving targets in turn, each as often as its weight.
	AlgorithmRoundRobin = pool.AlgorithmRoundRobin
	// AlgorithmLeastOutstanding takes the target with the fewest requests in
	// flight from this node; ties go round robin.
	AlgorithmLeastOutstanding = pool.AlgorithmLeastOutstanding
	// AlgorithmWeightedRandom takes a target at random, in proportion to its weight.
	AlgorithmWeightedRandom = pool.AlgorithmWeightedRandom
	// AlgorithmSourceHash takes the target of a hash of the client's IP
	// address, so one client keeps reaching one target while the serving
	// targets stay the same (NLB's source_ip stickiness).
	AlgorithmSourceHash = pool.AlgorithmSourceHash
)

// Slow start limits, as on ALB.
const (
	MinSlowStart = pool.MinSlowStart
	MaxSlowStart = pool.MaxSlowStart
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
	// Draining is true while the target's deregistration delay runs: a group
	// with stickiness keeps sending it the clients stuck to it, no new ones.
	Draining bool
	// Suspect is true while the fleet's failure detection cannot reach the
	// target's host: picks prefer every other target of the group, and
	// requests waiting on its connections for an answer they may get
	// elsewhere go elsewhere. It still serves when nothing else does.
	Suspect bool
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
	// Latency is the HTTP tries' durations, from the pick (the connect
	// included) to the end of the answer.
	Latency stats.Histogram
	// Open L4 connections (TCP, TLS) and UDP flows to the target now, those
	// opened since start, and their bytes from clients (In) and to them (Out).
	ActiveConnections int64
	Connections       uint64
	BytesIn, BytesOut uint64
}
