package gossip

import (
	"math/rand/v2"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Suspicion. memberlist (v0.5.4) keeps its own suspicion to itself: no
// delegate hears of it (EventDelegate has join, leave and update only),
// Members() hands out Node values whose State it never updates, and it
// declares a member dead only after its suspicion timeout (5 to 9 s with the
// LAN settings). Routing needs to know sooner, on every node, so every agent
// pings each live member itself, about every probeEvery, with memberlist's
// Ping: its own ping and ack, on the gossip port, under the fleet key,
// bounded by its ProbeTimeout (500 ms). A member that misses suspectAfter
// acks in a row (a missed ack is followed by the next ping at once) is
// suspect here until it answers again: its targets stay routed, marked
// Suspect, and balancers prefer every other target. A host cut off is thus
// avoided on each node 1 to 1.6 s after the cut (p99 1.6 s at 50 members too),
// without any message having to reach the others; memberlist's own detection
// still removes it later.
const (
	probeEvery   = 500 * time.Millisecond
	suspectAfter = 2
	// maxPingRate bounds the pings one node starts per second: past 50
	// members each is pinged less often than every probeEvery (at 100, every
	// second), so the fleet's pings grow with its size, not its square. 50 a
	// second gave p99 2.1 s to suspect a host at 50 members, 100 gives 1.6 s
	// for 6 ms more CPU per agent and second (docs/benchmarks.md).
	maxPingRate = 100
	// pingTick is how often the prober looks for members due a ping;
	// pingJitter spreads their pings so that they do not come in bursts.
	pingTick   = 50 * time.Millisecond
	pingJitter = 100 * time.Millisecond
)

// pingInterval is how often each member is pinged in a fleet of n members
// besides this node.
func pingInterval(n int) time.Duration {
	return max(probeEvery, time.Duration(n)*time.Second/maxPingRate)
}

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
	tick := time.NewTicker(pingTick)
	defer tick.Stop()
	results := make(chan pingResult)
	members := map[string]memberlist.Node{} // the live members at the last tick
	pending := map[string]bool{}
	next := map[string]time.Time{} // when each member is pinged next
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
		case now := <-tick.C:
			clear(members)
			alive := c.alive()
			every := pingInterval(len(alive))
			for _, n := range alive {
				members[n.Name] = n
				if !pending[n.Name] && !now.Before(next[n.Name]) {
					next[n.Name] = now.Add(every - pingJitter + rand.N(2*pingJitter))
					ping(n)
				}
			}
			for name := range next {
				if _, ok := members[name]; !ok {
					delete(next, name)
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
		c.stats.suspicions.Add(1)
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
