package gossip

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// PropagationBuckets are the upper bounds, in seconds, of the propagation
// delay histogram: from an owner's change to its arrival here.
var PropagationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type stats struct {
	fanoutSends, fanoutFailures    atomic.Uint64
	pulls, joinFailures            atomic.Uint64
	suspicions                     atomic.Uint64
	pushPullSent, pushPullReceived atomic.Uint64
	mu                             sync.Mutex
	dropped                        map[string]uint64
	targetsRefused, membersRefused map[string]uint64
	propagation                    []uint64
	propagationSum                 time.Duration
	propagationCount               uint64
}

func (s *stats) init() {
	s.dropped = map[string]uint64{}
	s.targetsRefused, s.membersRefused = map[string]uint64{}, map[string]uint64{}
	s.propagation = make([]uint64, len(PropagationBuckets)+1)
}

func (s *stats) drop(reason string) {
	s.mu.Lock()
	s.dropped[reason]++
	s.mu.Unlock()
}

func (s *stats) refuseTarget(reason string) {
	s.mu.Lock()
	s.targetsRefused[reason]++
	s.mu.Unlock()
}

func (s *stats) refuseMember(reason string) {
	s.mu.Lock()
	s.membersRefused[reason]++
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
	// Members counts memberlist members by state (alive, left, dead), this node included.
	Members map[string]int
	// Suspect counts the alive members this node suspects (suspect.go):
	// they miss its pings, and their targets are avoided here.
	Suspect int
	// Suspicions counts the times a member became suspect here.
	Suspicions uint64
	// QueuedBroadcasts is the depth of the gossip queue.
	QueuedBroadcasts int
	// Dropped counts received messages that were not trusted, by reason:
	// malformed, oversized, stale, foreign, queue_full, unknown_sender,
	// bad_signature, not_owner.
	Dropped map[string]uint64
	// TargetsRefused counts targets of members refused on receipt, by reason:
	// not_owner_address, special_address, own_port.
	TargetsRefused map[string]uint64
	// MembersRefused counts alive messages memberlist was told to ignore, by
	// reason: not_berth, key_changed, too_many, address, name_taken, address_taken.
	MembersRefused map[string]uint64
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
		Members: map[string]int{}, QueuedBroadcasts: c.queue.NumQueued(),
		DirectSends: c.stats.fanoutSends.Load(), DirectFailures: c.stats.fanoutFailures.Load(), Pulls: c.stats.pulls.Load(),
		PushPullBytesSent: c.stats.pushPullSent.Load(), PushPullBytesReceived: c.stats.pushPullReceived.Load(),
		HealthScore: c.ml.GetHealthScore(), Suspicions: c.stats.suspicions.Load(),
	}
	c.stats.mu.Lock()
	st.Dropped, st.TargetsRefused, st.MembersRefused = maps.Clone(c.stats.dropped), maps.Clone(c.stats.targetsRefused), maps.Clone(c.stats.membersRefused)
	var cum uint64
	for _, n := range c.stats.propagation {
		cum += n
		st.Propagation = append(st.Propagation, cum)
	}
	st.PropagationSum, st.PropagationCount = c.stats.propagationSum, c.stats.propagationCount
	c.stats.mu.Unlock()
	st.Members[memberAlive.String()]++ // this node
	c.mu.Lock()
	for name, ns := range c.names {
		st.Members[ns.state.String()]++
		if ns.state != memberAlive {
			continue
		}
		st.Owners++
		if c.suspects[name] {
			st.Suspect++
		}
		if o := c.table.owners[ns.owner]; o != nil && o.epoch == ns.meta.Epoch && o.complete >= ns.meta.Seq {
			st.OwnersInSync++
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
	// State is memberlist's: alive, left or dead.
	State string
	// Suspect is true while this node suspects the member, alive for
	// memberlist: it misses this node's pings, and its targets are avoided
	// here (suspect.go). It is this node's view; other nodes may differ.
	Suspect bool
	// Epoch and Seq are the version of the node's state it announces; Known the
	// seq whose every change arrived here.
	Epoch      int64
	Seq, Known uint64
	Targets    int
	ConfigHash string
	// Version is the agent's version as it announces it; empty when unknown.
	Version string
	Self    bool
	// HasOurs is true when the member reported having every change of this
	// node's state: a change made here is in force there.
	HasOurs bool
}

// Members returns this node, then every member it knows of, alive or not, by name.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []Member{{Name: c.name, Node: c.opts.Node, Address: c.addr, State: memberAlive.String(), Epoch: c.epoch,
		Seq: c.seq, Known: c.seq, Targets: len(c.own), ConfigHash: c.ownHash, Version: c.opts.Version, Self: true}}
	names := make([]string, 0, len(c.names))
	for name := range c.names {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ns := c.names[name]
		known, acked := c.acks[name]
		m := Member{Name: name, Node: ns.owner, Address: ns.node.Address(), State: ns.state.String(), Epoch: ns.epoch, Seq: ns.meta.Seq, ConfigHash: ns.meta.ConfigHash,
			Version: ns.meta.Version, HasOurs: acked && known >= c.seq, Suspect: ns.state == memberAlive && c.suspects[name]}
		if o := c.table.owners[ns.owner]; o != nil && o.epoch == ns.epoch {
			m.Known = o.complete
			for _, r := range o.records {
				if !r.removed {
					m.Targets++
				}
			}
		}
		out = append(out, m)
	}
	return out
}
