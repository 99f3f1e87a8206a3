package gossip

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// PropagationBuckets are the upper bounds, in seconds, of the propagation
// delay histogram: from an owner's change to its arrival here.
var PropagationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type stats struct {
	fanoutSends, fanoutFailures    atomic.Uint64
	pulls, joinFailures            atomic.Uint64
	pushPullSent, pushPullReceived atomic.Uint64
	mu                             sync.Mutex
	dropped                        map[string]uint64
	propagation                    []uint64
	propagationSum                 time.Duration
	propagationCount               uint64
}

func (s *stats) init() {
	s.dropped = map[string]uint64{}
	s.propagation = make([]uint64, len(PropagationBuckets)+1)
}

func (s *stats) drop(reason string) {
	s.mu.Lock()
	s.dropped[reason]++
	s.mu.Unlock()
}

func (s *stats) observePropagation(d time.Duration) {
	d = max(d, 0) // clocks of two hosts may disagree a little
	i := sort.SearchFloat64s(PropagationBuckets, d.Seconds())
	s.mu.Lock()
	s.propagation[i]++
	s.propagationSum += d
	s.propagationCount++
	s.mu.Unlock()
}

// Stats describe the cluster for metrics and status.
type Stats struct {
	// Members counts memberlist members by state (alive, suspect, left, dead), this node included.
	Members map[string]int
	// QueuedBroadcasts is the depth of the gossip queue.
	QueuedBroadcasts int
	// Dropped counts received messages that were not trusted, by reason:
	// malformed, oversized, stale, foreign, queue_full.
	Dropped map[string]uint64
	// Propagation is the delay from an owner's change to its arrival here:
	// cumulative bucket counts for PropagationBuckets then +Inf, sum and count.
	Propagation      []uint64
	PropagationSum   time.Duration
	PropagationCount uint64
	// DirectSends and DirectFailures count the TCP fan-out of drains and removals.
	DirectSends, DirectFailures uint64
	// Pulls counts full-state requests sent to repair a gap.
	Pulls uint64
	// PushPullBytesSent and PushPullBytesReceived count push/pull state exchanges.
	PushPullBytesSent, PushPullBytesReceived uint64
	// OwnersInSync counts remote owners whose state here is as new as their meta says.
	OwnersInSync, Owners int
	// HealthScore is memberlist's awareness score: 0 is healthy.
	HealthScore int
}

// Stats returns a copy of the counters.
func (c *Cluster) Stats() Stats {
	st := Stats{
		Members: map[string]int{}, QueuedBroadcasts: c.queue.NumQueued(), Dropped: map[string]uint64{},
		DirectSends: c.stats.fanoutSends.Load(), DirectFailures: c.stats.fanoutFailures.Load(), Pulls: c.stats.pulls.Load(),
		PushPullBytesSent: c.stats.pushPullSent.Load(), PushPullBytesReceived: c.stats.pushPullReceived.Load(),
		HealthScore: c.ml.GetHealthScore(),
	}
	c.stats.mu.Lock()
	for k, v := range c.stats.dropped {
		st.Dropped[k] = v
	}
	var cum uint64
	for _, n := range c.stats.propagation {
		cum += n
		st.Propagation = append(st.Propagation, cum)
	}
	st.PropagationSum, st.PropagationCount = c.stats.propagationSum, c.stats.propagationCount
	c.stats.mu.Unlock()
	members := c.ml.Members()
	for _, n := range members {
		st.Members[stateOf(n.State).String()]++
	}
	c.mu.Lock()
	for _, n := range members {
		owner, _, ok := parseName(n.Name)
		if !ok || n.Name == c.name || n.State != memberlist.StateAlive {
			continue
		}
		st.Owners++
		if m, ok := decodeMeta(n.Meta); ok {
			if o := c.table.owners[owner]; o != nil && o.epoch == m.Epoch && o.complete >= m.Seq {
				st.OwnersInSync++
			}
		}
	}
	c.mu.Unlock()
	return st
}

// Member is one node of the cluster as this node sees it.
type Member struct {
	// Name is the memberlist name, "node@epoch"; Node the host name.
	Name, Node string
	Address    string
	// State is alive, suspect, left or dead.
	State string
	// Epoch and Seq are the version of the node's state it announces; Known the
	// seq whose every change arrived here.
	Epoch      int64
	Seq, Known uint64
	Targets    int
	ConfigHash string
	Self       bool
}

// Members returns every memberlist member, this node first, then by name.
func (c *Cluster) Members() []Member {
	nodes := c.ml.Members()
	out := make([]Member, 0, len(nodes))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		owner, epoch, _ := parseName(n.Name)
		m := Member{Name: n.Name, Node: owner, Address: n.Address(), State: stateOf(n.State).String(), Epoch: epoch, Self: n.Name == c.name}
		if md, ok := decodeMeta(n.Meta); ok {
			m.Seq, m.ConfigHash = md.Seq, md.ConfigHash
		}
		if m.Self {
			m.Known, m.Targets, m.ConfigHash = c.seq, len(c.own), c.ownHash
		} else if o := c.table.owners[owner]; o != nil && o.epoch == epoch {
			m.Known = o.complete
			for _, r := range o.records {
				if !r.removed {
					m.Targets++
				}
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Self != out[j].Self {
			return out[i].Self
		}
		return out[i].Name < out[j].Name
	})
	return out
}
