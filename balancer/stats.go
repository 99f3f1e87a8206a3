package balancer

import "github.com/berth-lb/berth/balancer/stats"

// The counters' types live in balancer/stats, beside the request path that
// updates them; these are the names the agent and the admin API use.
type (
	// Histogram is a copy of a latency histogram's counters.
	Histogram = stats.Histogram
	// RouteStats is a copy of the counters of one listener and group pair.
	RouteStats = stats.RouteStats
	// ErrorReason names why the balancer answered a request itself.
	ErrorReason = stats.ErrorReason
)

// LatencyBuckets are the upper bounds, in seconds, of the request duration
// histograms.
var LatencyBuckets = stats.LatencyBuckets
