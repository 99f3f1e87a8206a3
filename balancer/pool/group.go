package pool

import (
	"math/rand/v2"
	"net"
	"slices"
	"sync/atomic"
	"time"
)

// The algorithms a group can use, with ALB's names.
const (
	// AlgorithmRoundRobin takes the serving targets in turn, each as often as its weight.
	AlgorithmRoundRobin = "round_robin"
	// AlgorithmLeastOutstanding takes the target with the fewest requests in
	// flight from this node; ties go round robin.
	AlgorithmLeastOutstanding = "least_outstanding_requests"
	// AlgorithmWeightedRandom takes a target at random, in proportion to its weight.
	AlgorithmWeightedRandom = "weighted_random"
	// AlgorithmSourceHash takes the target of a hash of the client's IP
	// address, so one client keeps reaching one target while the serving
	// targets stay the same (NLB's source_ip stickiness).
	AlgorithmSourceHash = "source_hash"
)

// MaxAttempts bounds how often one request is tried: the first try and at most
// two more, each only when the target cannot have seen the request.
const MaxAttempts = 3

// Group is the immutable view of a target group in one snapshot.
type Group struct {
	Name      string
	Algorithm string
	// Serving is the rotation: every serving target as often as its weight,
	// spread out evenly.
	Serving []*Target
	// Distinct holds every serving target once, for least outstanding requests.
	Distinct        []*Target
	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	ProxyProtocol   bool
	// Sticky keeps clients on a target by a cookie; nil: no stickiness.
	Sticky *Stickiness
	// SlowStart ramps a target's share of new requests up over this window
	// after it starts serving; 0 gives full share at once.
	SlowStart time.Duration
	// AnomalyMitigation makes weighted_random pick targets with recent
	// failures less often (with at least anomalyMinTargets targets).
	AnomalyMitigation bool
	// TargetTLS makes the HTTP listeners speak TLS to the group's targets.
	TargetTLS bool
	// Suspects is true when a serving target is suspect: picks then look
	// past it.
	Suspects bool
	// next is the round-robin cursor. It belongs to this snapshot's group and
	// restarts with a new snapshot, which only shifts where the rotation begins.
	next atomic.Uint64
}

// Pick returns a serving target by the group's algorithm; sourceHash is the
// hash of the client's IP address, for source_hash. It avoids the targets a
// request already failed on and those passive health ejected, as long as
// another target serves; nil when none serves.
func (g *Group) Pick(tried []*Target, sourceHash uint64) *Target {
	n := uint64(len(g.Serving))
	if n == 0 {
		return nil
	}
	var t *Target
	switch g.Algorithm {
	case AlgorithmLeastOutstanding:
		t = g.leastOutstanding(tried)
	case AlgorithmWeightedRandom:
		t = g.Serving[rand.Uint64N(n)]
		if g.AnomalyMitigation || g.SlowStart > 0 {
			t = g.damp(t, func() *Target { return g.Serving[rand.Uint64N(n)] })
		}
	case AlgorithmSourceHash:
		t = g.Serving[sourceHash%n]
	default:
		t = g.Serving[g.next.Add(1)%n]
		if g.SlowStart > 0 {
			t = g.damp(t, func() *Target { return g.Serving[g.next.Add(1)%n] })
		}
	}
	if len(tried) == 0 && EjectedTargets.Load() == 0 && !g.Suspects {
		return t // the fast path: nothing to avoid
	}
	return g.avoid(t, tried)
}

// HasAlternative reports whether a request that tried the targets in tried
// (the current one included) could still go to another one.
func (g *Group) HasAlternative(tried []*Target) bool {
	return len(tried) < MaxAttempts && len(g.Distinct) > len(tried)
}

// avoid walks the rotation from t to the first target that was not tried and
// is neither ejected nor suspect; failing that, to one not tried; failing
// that, keeps t (fail open: a group never refuses because its targets look
// unwell).
func (g *Group) avoid(t *Target, tried []*Target) *Target {
	now := time.Now().UnixNano()
	if !slices.Contains(tried, t) && t.healthy(now) {
		return t
	}
	n := uint64(len(g.Serving))
	start := g.next.Add(1)
	var untried *Target
	for i := range n {
		c := g.Serving[(start+i)%n]
		if slices.Contains(tried, c) {
			continue
		}
		if c.healthy(now) {
			return c
		}
		if untried == nil {
			untried = c
		}
	}
	if untried != nil {
		return untried
	}
	return t
}

// leastOutstanding scans the targets from a rotating start, so ties spread.
func (g *Group) leastOutstanding(tried []*Target) *Target {
	n := uint64(len(g.Distinct))
	start := g.next.Add(1)
	var best *Target
	var bestLoad int64
	for i := range n {
		t := g.Distinct[(start+i)%n]
		if slices.Contains(tried, t) {
			continue
		}
		if load := t.InFlight.Load(); best == nil || load < bestLoad {
			best, bestLoad = t, load
		}
	}
	if best == nil {
		return g.Distinct[start%n]
	}
	return best
}

// HashBytes is FNV-1a, for source_hash.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// ClientIP is the client's address without its port: what source_hash
// hashes, source-ip conditions match and the access log writes.
func ClientIP(a net.Addr) []byte {
	if t, ok := a.(*net.TCPAddr); ok {
		if v4 := t.IP.To4(); v4 != nil {
			return []byte(v4.String())
		}
		return []byte(t.IP.String())
	}
	return []byte(a.String())
}

// Stickiness is a group's compiled stickiness policy.
type Stickiness struct {
	AppCookie string // the application's cookie, for app_cookie
	Cookie    string // BERTHLB or BERTHAPP
	Duration  time.Duration
	// Targets maps a cookie's token to the group's serving and draining
	// targets; a draining one keeps its sticky clients until the agent
	// removes it at the end of its deregistration delay.
	Targets map[string]*Target
	Tokens  map[*Target]string
}

// Stuck returns the target a stickiness cookie's token names when that target
// may take the request: serving, or draining with its delay still running (the
// agent removes it from the group when the delay ends). nil (also for a nil
// token) picks anew.
func (s *Stickiness) Stuck(token []byte) *Target {
	if token == nil {
		return nil
	}
	t := s.Targets[string(token)]
	if t == nil || EjectedTargets.Load() > 0 && t.Passive.Ejected(time.Now().UnixNano()) {
		return nil
	}
	return t
}

// PickFor picks the target of a request's next try: on the first try the one
// its stickiness cookie names (stickyToken) when it may take it, else by the
// group's algorithm.
func (g *Group) PickFor(tried []*Target, sourceHash uint64, stickyToken []byte) *Target {
	if len(tried) == 0 && g.Sticky != nil {
		if t := g.Sticky.Stuck(stickyToken); t != nil {
			return t
		}
	}
	return g.Pick(tried, sourceHash)
}
