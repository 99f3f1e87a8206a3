package gossip

import (
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Suspicion. memberlist (v0.5.4) keeps its own suspicion to itself: no
// delegate hears of it (EventDelegate has join, leave and update only),
// Members() hands out Node values whose State it never updates, and it
// declares a member dead only after its suspicion timeout (5 to 9 s with the
// LAN settings). Routing needs to know sooner, on every node, so every agent
// pings each live member itself, every probeEvery, with memberlist's Ping: its
// own ping and ack, on the gossip port, under the fleet key, bounded by its
// ProbeTimeout (500 ms). A member that misses suspectAfter acks in a row is
// suspect here until it answers again: its targets stay routed, marked
// Suspect, and balancers prefer every other target. A host cut off is thus
// avoided 1 to 1.5 s after the cut on each node (two missed pings
// of 500 ms each, the first starting within probeEvery), without any message having
// to reach the others; memberlist's own detection still removes it later.
const (
	probeEvery   = 500 * time.Millisecond
	suspectAfter = 2
)

// pingResult is how one ping of a member ended.
type pingResult struct {
	name     string
	answered bool
}

// probeLoop pings every live member, at most one ping in flight per member;
// a missed ack is followed by the next ping at once, so that a member cut off
// is suspect ProbeTimeout x suspectAfter after its first missed ping.
func (c *Cluster) probeLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	results := make(chan pingResult)
	members := map[string]memberlist.Node{} // the live members at the last tick
	pending := map[string]bool{}
	misses := map[string]int{}
	ping := func(n memberlist.Node) {
		pending[n.Name] = true
		go func() {
			_, err := c.ml.Ping(n.Name, &net.UDPAddr{IP: n.Addr, Port: int(n.Port)})
			select {
			case results <- pingResult{n.Name, err == nil}:
			case <-c.done:
			}
		}()
	}
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
			clear(members)
			for _, n := range c.alive() {
				members[n.Name] = n
				if !pending[n.Name] {
					ping(n)
				}
			}
			for name := range misses {
				if _, ok := members[name]; !ok {
					delete(misses, name) // left or dead: memberlist's state rules
					c.setSuspect(name, false)
				}
			}
		case r := <-results:
			delete(pending, r.name)
			if r.answered {
				misses[r.name] = 0
			} else {
				misses[r.name]++
				if n, ok := members[r.name]; ok {
					ping(n)
				}
			}
			c.setSuspect(r.name, misses[r.name] >= suspectAfter)
		}
	}
}

// setSuspect records whether a member is suspect here and wakes the agent
// when that changed.
func (c *Cluster) setSuspect(name string, suspect bool) {
	c.mu.Lock()
	changed := c.suspects[name] != suspect
	if suspect {
		c.suspects[name] = true
	} else {
		delete(c.suspects, name)
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	if suspect {
		c.log.Warn("gossip: member suspect: it misses pings; its targets are avoided", "member", name, "missed", suspectAfter)
	} else {
		c.log.Info("gossip: member answers pings again", "member", name)
	}
	c.notify()
}

// suspectOwners returns the owners whose every live start is suspect; c.mu
// is held.
func (c *Cluster) suspectOwners() map[string]bool {
	suspect, answering := map[string]bool{}, map[string]bool{}
	for name, ns := range c.names {
		if ns.state != memberAlive {
			continue
		}
		if c.suspects[name] {
			suspect[ns.owner] = true
		} else {
			answering[ns.owner] = true
		}
	}
	for owner := range answering {
		delete(suspect, owner)
	}
	return suspect
}
