package balancer

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the request duration
// histogram: fine below a millisecond, where a balancer on one host lives.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

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
	reasonCount
)

// String is the metric label value.
func (r ErrorReason) String() string {
	return [...]string{"bad_request", "headers_too_large", "client_timeout", "no_target", "connect_failed", "connect_timeout", "response_timeout", "target_reset", "bad_response", "target_unreachable", "too_many_forwarded_for", "not_implemented"}[r]
}

// routeStats counts the requests of one listener and group pair. It lives
// outside the snapshot, keyed by the pair, so counters survive reloads; the
// request path updates it with atomic adds only.
type routeStats struct {
	listener, group string
	codes           [600]atomic.Uint64
	buckets         []atomic.Uint64 // len(LatencyBuckets)+1, the last is +Inf
	sumNanos        atomic.Uint64
	count           atomic.Uint64
	// L4: open connections (UDP flows), those opened since start, bytes from
	// and to clients.
	connsActive atomic.Int64
	connsTotal  atomic.Uint64
	bytesIn     atomic.Uint64
	bytesOut    atomic.Uint64
}

func newRouteStats(listener, group string) *routeStats {
	return &routeStats{listener: listener, group: group, buckets: make([]atomic.Uint64, len(LatencyBuckets)+1)}
}

func (s *routeStats) observe(code int, d time.Duration) {
	if code >= 0 && code < len(s.codes) {
		s.codes[code].Add(1)
	}
	sec := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && sec > LatencyBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sumNanos.Add(uint64(d))
	s.count.Add(1)
}

// RouteStats is a copy of the counters of one listener and group pair; Group is
// empty for requests no rule forwarded (fixed responses, 404s, bad requests).
type RouteStats struct {
	Listener, Group string
	// Codes maps a status code to its request count.
	Codes map[int]uint64
	// Buckets are cumulative counts for LatencyBuckets, then +Inf.
	Buckets []uint64
	Sum     time.Duration
	Count   uint64
	// ActiveConnections, Connections, BytesIn and BytesOut count the L4
	// connections (and UDP flows) of the pair and their bytes from and to
	// clients; zero for HTTP.
	ActiveConnections int64
	Connections       uint64
	BytesIn, BytesOut uint64
}

func (s *routeStats) copy() RouteStats {
	out := RouteStats{Listener: s.listener, Group: s.group, Codes: map[int]uint64{}, Buckets: make([]uint64, len(s.buckets))}
	for code := range s.codes {
		if n := s.codes[code].Load(); n > 0 {
			out.Codes[code] = n
		}
	}
	var cum uint64
	for i := range s.buckets {
		cum += s.buckets[i].Load()
		out.Buckets[i] = cum
	}
	out.Sum = time.Duration(s.sumNanos.Load())
	out.Count = s.count.Load()
	out.ActiveConnections, out.Connections = s.connsActive.Load(), s.connsTotal.Load()
	out.BytesIn, out.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	return out
}
