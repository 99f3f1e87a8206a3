// Package stats holds the data plane's counters that every room shares: the
// latency histograms, the reasons of the balancer's own answers and the
// counters of each listener and group pair. They are updated on the request
// path, so everything here is atomic adds on memory allocated once; nothing
// here blocks, allocates per request or imports another balancer package.
// Copies (Histogram, RouteStats) are what the admin API and metrics read.
package stats

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the request duration
// histograms: fine below a millisecond, where a balancer on one host lives.
var LatencyBuckets = latencyBounds[:]

// An array, so that a histogram's counters are an array too: no allocation,
// and no histogram without its buckets.
var latencyBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Latency counts durations in LatencyBuckets with atomic adds only.
type Latency struct {
	buckets  [len(latencyBounds) + 1]atomic.Uint64 // the last is +Inf
	sumNanos atomic.Uint64
	count    atomic.Uint64
}

// Observe counts one duration.
func (h *Latency) Observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(latencyBounds) && sec > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNanos.Add(uint64(d))
	h.count.Add(1)
}

// Histogram is a copy of a histogram's counters.
type Histogram struct {
	// Buckets are cumulative counts for LatencyBuckets, then +Inf.
	Buckets []uint64
	Sum     time.Duration
	Count   uint64
}

// Copy reads the counters into a Histogram.
func (h *Latency) Copy() Histogram {
	out := Histogram{Buckets: make([]uint64, len(h.buckets))}
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		out.Buckets[i] = cum
	}
	out.Sum = time.Duration(h.sumNanos.Load())
	out.Count = h.count.Load()
	return out
}

// ErrorReason names why the balancer answered a request itself.
type ErrorReason int

// Reasons of the balancer's own answers, the label values of berth_http_balancer_errors_total.
const (
	ReasonBadRequest ErrorReason = iota
	ReasonHeadersTooLarge
	ReasonClientTimeout
	ReasonNoTarget
	ReasonConnectFailed
	ReasonConnectTimeout
	ReasonResponseTimeout
	ReasonTargetReset
	ReasonBadResponse
	ReasonTargetUnreachable
	ReasonTooManyForwardedFor
	ReasonNotImplemented
	ReasonCount
)

// String is the metric label value.
func (r ErrorReason) String() string {
	return [...]string{"bad_request", "headers_too_large", "client_timeout", "no_target", "connect_failed", "connect_timeout", "response_timeout", "target_reset", "bad_response", "target_unreachable", "too_many_forwarded_for", "not_implemented"}[r]
}

// Route counts the requests of one listener and group pair. It lives
// outside the snapshot, keyed by the pair, so counters survive reloads; the
// request path updates it with atomic adds only.
type Route struct {
	listener, group string
	codes           [600]atomic.Uint64
	latency         Latency
	// L4: open connections (UDP flows), those opened since start, bytes from
	// and to clients.
	ConnsActive atomic.Int64
	ConnsTotal  atomic.Uint64
	BytesIn     atomic.Uint64
	BytesOut    atomic.Uint64
}

// NewRoute returns the zeroed counters of a listener and group pair.
func NewRoute(listener, group string) *Route {
	return &Route{listener: listener, group: group}
}

// Observe counts one answered request by status code and duration.
func (s *Route) Observe(code int, d time.Duration) {
	if code >= 0 && code < len(s.codes) {
		s.codes[code].Add(1)
	}
	s.latency.Observe(d)
}

// RouteStats is a copy of the counters of one listener and group pair; Group is
// empty for requests no rule forwarded (fixed responses, 404s, bad requests).
type RouteStats struct {
	Listener, Group string
	// Codes maps a status code to its request count.
	Codes map[int]uint64
	// Histogram is the requests' durations, from their first byte to their
	// answer's last.
	Histogram
	// ActiveConnections, Connections, BytesIn and BytesOut count the L4
	// connections (and UDP flows) of the pair and their bytes from and to
	// clients; zero for HTTP.
	ActiveConnections int64
	Connections       uint64
	BytesIn, BytesOut uint64
}

// Copy reads the counters into a RouteStats.
func (s *Route) Copy() RouteStats {
	out := RouteStats{Listener: s.listener, Group: s.group, Codes: map[int]uint64{}, Histogram: s.latency.Copy()}
	for code := range s.codes {
		if n := s.codes[code].Load(); n > 0 {
			out.Codes[code] = n
		}
	}
	out.ActiveConnections, out.Connections = s.ConnsActive.Load(), s.ConnsTotal.Load()
	out.BytesIn, out.BytesOut = s.BytesIn.Load(), s.BytesOut.Load()
	return out
}
