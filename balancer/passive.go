package balancer

import (
	"github.com/berth-lb/berth/balancer/stats"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Passive health: every node watches the answers of every target it sends to.
// A target that fails passiveThreshold times in a row (connect errors, resets,
// timeouts, 5xx) leaves this node's rotation for a back-off that doubles with
// each ejection in a row, and returns when the back-off ends; its next
// success forgets the failures. When every target of a group is ejected, the
// group fails open and uses them all.
const (
	passiveThreshold  = 2
	passiveBackoff    = time.Second
	passiveMaxBackoff = 30 * time.Second
)

// passiveState is the passive health of one target, part of targetState.
type passiveState struct {
	consecutive  atomic.Int32
	ejections    atomic.Int32 // in a row, for the back-off
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when never ejected
	totalEjected atomic.Uint64
	// anomaly rises with every failure and falls with every success, 0 to
	// anomalyMaxScore: anomaly mitigation divides the target's share by it.
	anomaly atomic.Int32
}

// ejectedTargets counts targets ejected now or recently, across balancers:
// while it is zero, picking a target needs no clock.
var ejectedTargets atomic.Int64

func (p *passiveState) succeeded() {
	for a := p.anomaly.Load(); a > 0 && !p.anomaly.CompareAndSwap(a, a-1); a = p.anomaly.Load() {
	}
	if p.consecutive.Load() != 0 {
		p.consecutive.Store(0)
	}
	if p.ejections.Load() != 0 {
		p.ejections.Store(0)
	}
}

// failed counts a failure and ejects the target at the threshold.
func (p *passiveState) failed(now time.Time) {
	p.raiseAnomaly()
	if p.consecutive.Add(1) < passiveThreshold {
		return
	}
	p.eject(now)
}

// eject takes the target out of the rotation for the next back-off.
func (p *passiveState) eject(now time.Time) {
	p.consecutive.Store(0)
	n := p.ejections.Add(1)
	backoff := passiveBackoff << min(n-1, 5)
	if backoff > passiveMaxBackoff {
		backoff = passiveMaxBackoff
	}
	if p.ejectedUntil.Swap(now.Add(backoff).UnixNano()) < now.UnixNano() {
		ejectedTargets.Add(1)
		time.AfterFunc(backoff, func() { ejectedTargets.Add(-1) })
	}
	p.totalEjected.Add(1)
}

func (p *passiveState) ejected(now int64) bool {
	return p.ejectedUntil.Load() > now
}

// healthy reports whether a pick may take t without looking further: it is
// neither ejected by passive health nor on a suspect host.
func (t *targetState) healthy(now int64) bool {
	return !t.passive.ejected(now) && !t.suspect.Load()
}

// failed records a failed attempt on t. A failure that says the host is gone
// (a connect timeout or a connect given up as too slow, an unreachable host,
// data left unacknowledged) ejects every target of that host at once: one
// slow discovery is enough. A target ejected already stays so for the back-off
// it has: the requests that fail on a lost host all at once count as one
// ejection, so the host is back soon after it answers again.
func (t *targetState) failed(reason stats.ErrorReason) {
	t.failures.Add(1)
	now := time.Now()
	if reason != stats.ReasonConnectTimeout && reason != stats.ReasonTargetUnreachable {
		t.passive.failed(now)
		return
	}
	t.passive.raiseAnomaly()
	for _, sibling := range t.host.targets() {
		if !sibling.passive.ejected(now.UnixNano()) {
			sibling.passive.eject(now)
		}
		sibling.abandon() // their connections died with the host
	}
}

// hostHealth groups the targets of one host address.
type hostHealth struct {
	mu      sync.Mutex
	members []*targetState
	// connect times the TCP connects to the host, for the adaptive connect
	// timeout; it lives as long as the host has targets here.
	connect connectTimes
}

func (h *hostHealth) targets() []*targetState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.members)
}

// raiseAnomaly counts a failure for anomaly mitigation: a few failures weigh
// more than one success, so a target that fails often loses most of its share.
func (p *passiveState) raiseAnomaly() {
	for a := p.anomaly.Load(); a < anomalyMaxScore && !p.anomaly.CompareAndSwap(a, min(a+3, anomalyMaxScore)); a = p.anomaly.Load() {
	}
}
