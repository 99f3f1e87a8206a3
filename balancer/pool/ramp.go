package pool

import (
	"math/rand/v2"
	"time"
)

// Slow start limits, as on ALB.
const (
	MinSlowStart = 30 * time.Second
	MaxSlowStart = 900 * time.Second
)

// anomalyMinTargets is the smallest group in which anomaly mitigation acts:
// with two targets, shifting weight away from one doubles the other's load.
const anomalyMinTargets = 3

// AnomalyMaxScore caps a target's anomaly score: at most, it is picked about
// one time in AnomalyMaxScore+1 of its normal share.
const AnomalyMaxScore = 15

// damp applies slow start and anomaly mitigation to a picked target: it keeps
// t with a probability of its current share (the elapsed fraction of its
// slow start window, divided by one plus its anomaly score) and otherwise
// lets again pick another candidate, a few times at most, then keeps the last
// one. Rejection sampling keeps the rotation intact and allocates nothing.
func (g *Group) damp(t *Target, again func() *Target) *Target {
	now := time.Now().UnixNano()
	mitigate := g.AnomalyMitigation && len(g.Distinct) >= anomalyMinTargets
	for range 2 * len(g.Distinct) {
		if rand.Float64() < g.share(t, now, mitigate) {
			return t
		}
		t = again()
	}
	return t
}

// share is the fraction of its weight a target gets now, 0..1.
func (g *Group) share(t *Target, now int64, mitigate bool) float64 {
	s := 1.0
	if g.SlowStart > 0 {
		if elapsed := now - t.ServingSince.Load(); elapsed < int64(g.SlowStart) {
			// A floor keeps a fresh target from being starved to exactly
			// zero, which would also stall the rejection loop.
			s = max(float64(elapsed)/float64(g.SlowStart), 0.01)
		}
	}
	if mitigate {
		s /= 1 + float64(t.Passive.anomaly.Load())
	}
	return s
}

// MarkJoined records when the group's newly serving targets joined, for slow
// start. As on ALB, targets that join a group with no serving target start
// at their full share: there is nobody to shift load from.
func MarkJoined(serving []WeightedTarget, warm bool) {
	now := time.Now().UnixNano()
	for _, w := range serving {
		if w.T.Serving.Load() {
			continue
		}
		if warm {
			w.T.ServingSince.Store(now)
		} else {
			w.T.ServingSince.Store(0)
		}
	}
}
