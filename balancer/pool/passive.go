package pool

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/stats"
)

// Passive health: every node watches the answers of every target it sends to.
// A target that fails PassiveThreshold times in a row (connect errors, resets,
// timeouts, 5xx) leaves this node's rotation for a back-off that doubles with
// each ejection in a row, and returns when the back-off ends; its next
// success forgets the failures. When every target of a group is ejected, the
// group fails open and uses them all.
const (
	PassiveThreshold  = 2
	PassiveBackoff    = time.Second
	passiveMaxBackoff = 30 * time.Second
)

// PassiveHealth is the passive health of one target, part of Target.
type PassiveHealth struct {
	consecutive  atomic.Int32
	ejections    atomic.Int32 // in a row, for the back-off
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when never ejected
	TotalEjected atomic.Uint64
	// anomaly rises with every failure and falls with every success, 0 to
	// AnomalyMaxScore: anomaly mitigation divides the target's share by it.
	anomaly atomic.Int32
}

// EjectedTargets counts targets ejected now or recently, across balancers:
// while it is zero, picking a target needs no clock.
var EjectedTargets atomic.Int64

// Succeeded forgets the failures in a row and lowers the anomaly score.
func (p *PassiveHealth) Succeeded() {
	for a := p.anomaly.Load(); a > 0 && !p.anomaly.CompareAndSwap(a, a-1); a = p.anomaly.Load() {
	}
	if p.consecutive.Load() != 0 {
		p.consecutive.Store(0)
	}
	if p.ejections.Load() != 0 {
		p.ejections.Store(0)
	}
}

// Failed counts a failure and ejects the target at the threshold.
func (p *PassiveHealth) Failed(now time.Time) {
	p.RaiseAnomaly()
	if p.consecutive.Add(1) < PassiveThreshold {
		return
	}
	p.eject(now)
}

// eject takes the target out of the rotation for the next back-off.
func (p *PassiveHealth) eject(now time.Time) {
	p.consecutive.Store(0)
	n := p.ejections.Add(1)
	backoff := PassiveBackoff << min(n-1, 5)
	if backoff > passiveMaxBackoff {
		backoff = passiveMaxBackoff
	}
	if p.ejectedUntil.Swap(now.Add(backoff).UnixNano()) < now.UnixNano() {
		EjectedTargets.Add(1)
		time.AfterFunc(backoff, func() { EjectedTargets.Add(-1) })
	}
	p.TotalEjected.Add(1)
}

// Ejected reports whether the target is out of the rotation at now (unix nanoseconds).
func (p *PassiveHealth) Ejected(now int64) bool {
	return p.ejectedUntil.Load() > now
}

// healthy reports whether a pick may take t without looking further: it is
// neither ejected by passive health nor on a suspect host.
func (t *Target) healthy(now int64) bool {
	return !t.Passive.Ejected(now) && !t.Suspect.Load()
}

// Failed records a failed attempt on t. A failure that says the host is gone
// (a connect timeout or a connect given up as too slow, an unreachable host,
// data left unacknowledged) ejects every target of that host at once: one
// slow discovery is enough. A target ejected already stays so for the back-off
// it has: the requests that fail on a lost host all at once count as one
// ejection, so the host is back soon after it answers again.
func (t *Target) Failed(reason stats.ErrorReason) {
	t.Failures.Add(1)
	now := time.Now()
	if reason != stats.ReasonConnectTimeout && reason != stats.ReasonTargetUnreachable {
		t.Passive.Failed(now)
		return
	}
	t.Passive.RaiseAnomaly()
	for _, sibling := range t.Host.targets() {
		if !sibling.Passive.Ejected(now.UnixNano()) {
			sibling.Passive.eject(now)
		}
		sibling.Abandon() // their connections died with the host
	}
}

// Host groups the targets of one host address.
type Host struct {
	Mu      sync.Mutex
	Members []*Target
	// connect times the TCP connects to the host, for the adaptive connect
	// timeout; it lives as long as the host has targets here.
	connect connectTimes
}

func (h *Host) targets() []*Target {
	h.Mu.Lock()
	defer h.Mu.Unlock()
	return slices.Clone(h.Members)
}

// RaiseAnomaly counts a failure for anomaly mitigation: a few failures weigh
// more than one success, so a target that fails often loses most of its share.
func (p *PassiveHealth) RaiseAnomaly() {
	for a := p.anomaly.Load(); a < AnomalyMaxScore && !p.anomaly.CompareAndSwap(a, min(a+3, AnomalyMaxScore)); a = p.anomaly.Load() {
	}
}
