package balancer

import (
	"math/rand/v2"
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

// maxAttempts bounds how often one request is tried: the first try and at most
// two more, each only when the target cannot have seen the request.
const maxAttempts = 3

// group is the immutable view of a target group in one snapshot.
type group struct {
	name      string
	algorithm string
	// serving is the rotation: every serving target as often as its weight,
	// spread out evenly.
	serving []*targetState
	// distinct holds every serving target once, for least outstanding requests.
	distinct        []*targetState
	connectTimeout  time.Duration
	responseTimeout time.Duration
	proxyProtocol   bool
	// sticky keeps clients on a target by a cookie; nil: no stickiness.
	sticky *stickiness
	// slowStart ramps a target's share of new requests up over this window
	// after it starts serving; 0 gives full share at once.
	slowStart time.Duration
	// anomalyMitigation makes weighted_random pick targets with recent
	// failures less often (with at least anomalyMinTargets targets).
	anomalyMitigation bool
	// targetTLS makes the HTTP listeners speak TLS to the group's targets.
	targetTLS bool
	// suspects is true when a serving target is suspect: picks then look
	// past it.
	suspects bool
	// next is the round-robin cursor. It belongs to this snapshot's group and
	// restarts with a new snapshot, which only shifts where the rotation begins.
	next atomic.Uint64
}

// pick returns a serving target by the group's algorithm; sourceHash is the
// hash of the client's IP address, for source_hash. It avoids the targets a
// request already failed on and those passive health ejected, as long as
// another target serves; nil when none serves.
func (g *group) pick(tried []*targetState, sourceHash uint64) *targetState {
	n := uint64(len(g.serving))
	if n == 0 {
		return nil
	}
	var t *targetState
	switch g.algorithm {
	case AlgorithmLeastOutstanding:
		t = g.leastOutstanding(tried)
	case AlgorithmWeightedRandom:
		t = g.serving[rand.Uint64N(n)]
		if g.anomalyMitigation || g.slowStart > 0 {
			t = g.damp(t, func() *targetState { return g.serving[rand.Uint64N(n)] })
		}
	case AlgorithmSourceHash:
		t = g.serving[sourceHash%n]
	default:
		t = g.serving[g.next.Add(1)%n]
		if g.slowStart > 0 {
			t = g.damp(t, func() *targetState { return g.serving[g.next.Add(1)%n] })
		}
	}
	if len(tried) == 0 && ejectedTargets.Load() == 0 && !g.suspects {
		return t // the fast path: nothing to avoid
	}
	return g.avoid(t, tried)
}

// hasAlternative reports whether a request that tried the targets in tried
// (the current one included) could still go to another one.
func (g *group) hasAlternative(tried []*targetState) bool {
	return len(tried) < maxAttempts && len(g.distinct) > len(tried)
}

// avoid walks the rotation from t to the first target that was not tried and
// is neither ejected nor suspect; failing that, to one not tried; failing
// that, keeps t (fail open: a group never refuses because its targets look
// unwell).
func (g *group) avoid(t *targetState, tried []*targetState) *targetState {
	now := time.Now().UnixNano()
	if !slices.Contains(tried, t) && t.healthy(now) {
		return t
	}
	n := uint64(len(g.serving))
	start := g.next.Add(1)
	var untried *targetState
	for i := range n {
		c := g.serving[(start+i)%n]
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
func (g *group) leastOutstanding(tried []*targetState) *targetState {
	n := uint64(len(g.distinct))
	start := g.next.Add(1)
	var best *targetState
	var bestLoad int64
	for i := range n {
		t := g.distinct[(start+i)%n]
		if slices.Contains(tried, t) {
			continue
		}
		if load := t.inFlight.Load(); best == nil || load < bestLoad {
			best, bestLoad = t, load
		}
	}
	if best == nil {
		return g.distinct[start%n]
	}
	return best
}

// hashBytes is FNV-1a, for source_hash.
func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// stickiness is a group's compiled stickiness policy.
type stickiness struct {
	appCookie string // the application's cookie, for app_cookie
	cookie    string // BERTHLB or BERTHAPP
	duration  time.Duration
	// targets maps a cookie's token to the group's serving and draining
	// targets; a draining one keeps its sticky clients until the agent
	// removes it at the end of its deregistration delay.
	targets map[string]*targetState
	tokens  map[*targetState]string
}
