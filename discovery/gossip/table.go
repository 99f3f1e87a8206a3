package gossip

import (
	"sort"
	"time"

	"github.com/berth-lb/berth/discovery"
)

// table is every remote owner's target state as this node knows it. Only the
// owner writes its state; versions (epoch per agent start, seq per change)
// decide what a copy may overwrite. It is not safe for concurrent use: the
// Cluster guards it.
type table struct {
	self   string
	owners map[string]*ownerState
}

// ownerState is one owner's targets as known here.
type ownerState struct {
	epoch int64
	// complete: every change up to this seq has been applied.
	complete uint64
	// ahead holds applied seqs above complete, waiting for the gap below to fill.
	ahead   map[uint64]bool
	records map[string]record
	// configHash is the owner's hash of its listeners and groups config.
	configHash string
	// membership: the owner's agent is alive, left (gracefully) or dead.
	member       memberState
	memberSince  time.Time
	needFullFrom time.Time // when a gap or a new epoch was first seen; zero: none
}

type memberState int

// Member states, best first. memberlist does not tell suspicion to its
// delegates; the balancer's passive checks cover a host that stops answering.
const (
	memberAlive memberState = iota
	memberLeft
	memberDead
)

func (m memberState) String() string {
	return [...]string{"alive", "left", "dead"}[m]
}

// record is the last change of one target: a target or a tombstone.
type record struct {
	seq     uint64
	removed bool
	target  discovery.Target
}

func newTable(self string) *table {
	return &table{self: self, owners: map[string]*ownerState{}}
}

func (t *table) owner(name string) *ownerState {
	o, ok := t.owners[name]
	if !ok {
		o = &ownerState{records: map[string]record{}, ahead: map[uint64]bool{}}
		t.owners[name] = o
	}
	return o
}

// applyDelta applies one change. It reports whether routing may have changed,
// or a dropError for a stale message.
func (t *table) applyDelta(d *delta, now time.Time) (bool, error) {
	if d.Owner == t.self {
		return false, nil // our own change, come back around
	}
	o := t.owner(d.Owner)
	switch {
	case d.Epoch < o.epoch:
		return false, drop(dropStale, "owner %s: epoch %d, known %d", d.Owner, d.Epoch, o.epoch)
	case d.Epoch > o.epoch:
		o.restart(d.Epoch, now)
	case d.Seq <= o.complete || o.ahead[d.Seq]:
		return false, nil // a duplicate: gossip delivers more than once
	}
	id := d.Removed
	if d.Target != nil {
		id = d.Target.ID
	}
	if _, ok := o.records[id]; !ok && (len(o.records) >= maxTargets || t.size() >= maxTotalTargets) || len(o.ahead) >= maxTargets {
		return false, drop(dropOversized, "owner %s: %d records, %d waiting, %d of every owner", d.Owner, len(o.records), len(o.ahead), t.size())
	}
	if d.ConfigHash != "" {
		o.configHash = d.ConfigHash
	}
	changed := false
	if cur, ok := o.records[id]; !ok || cur.seq < d.Seq {
		if d.Target != nil {
			o.records[id] = record{seq: d.Seq, target: fromWire(d.Owner, *d.Target)}
		} else {
			o.records[id] = record{seq: d.Seq, removed: true}
		}
		changed = true
	}
	o.ahead[d.Seq] = true
	o.advance()
	if len(o.ahead) > 0 && o.needFullFrom.IsZero() {
		o.needFullFrom = now // a gap: repaired by a pull if it does not fill soon
	}
	return changed, nil
}

// restart makes epoch, a new start of the owner's agent, the one whose
// changes apply: its seqs begin again. Records of the old epoch stay until
// its full state replaces them, so its still-running containers keep serving
// meanwhile.
func (o *ownerState) restart(epoch int64, now time.Time) {
	o.epoch, o.complete, o.ahead = epoch, 0, map[uint64]bool{}
	for id, r := range o.records {
		r.seq = 0
		o.records[id] = r
	}
	o.needFullFrom = now
}

// size counts every owner's records, the bound of maxTotalTargets.
func (t *table) size() int {
	n := 0
	for _, o := range t.owners {
		n += len(o.records)
	}
	return n
}

// advance moves complete over contiguous applied seqs and drops tombstones
// that no older change can contradict any more.
func (o *ownerState) advance() {
	for o.ahead[o.complete+1] {
		delete(o.ahead, o.complete+1)
		o.complete++
	}
	if len(o.ahead) == 0 && o.epochComplete() {
		o.needFullFrom = time.Time{}
	}
	for id, r := range o.records {
		if r.removed && r.seq != 0 && r.seq <= o.complete {
			delete(o.records, id)
		}
	}
}

// epochComplete: no record of an older epoch is left (their seq is 0).
func (o *ownerState) epochComplete() bool {
	for _, r := range o.records {
		if r.seq == 0 {
			return false
		}
	}
	return true
}

// applyFull replaces an owner's state with a full copy at least as new.
func (t *table) applyFull(f *full) (bool, error) {
	if f.Owner == t.self {
		return false, nil
	}
	o := t.owner(f.Owner)
	if f.Epoch < o.epoch || f.Epoch == o.epoch && f.Seq < o.complete {
		return false, drop(dropStale, "owner %s: full state (%d, %d), known (%d, %d)", f.Owner, f.Epoch, f.Seq, o.epoch, o.complete)
	}
	if f.Epoch == o.epoch && f.Seq == o.complete && o.epochComplete() && len(o.ahead) == 0 {
		return false, nil // nothing new
	}
	if others := t.size() - len(o.records); others+len(f.Targets) > maxTotalTargets {
		return false, drop(dropOversized, "owner %s: %d targets beside %d of other owners", f.Owner, len(f.Targets), others)
	}
	records := make(map[string]record, len(f.Targets))
	for _, w := range f.Targets {
		records[w.ID] = record{seq: f.Seq, target: fromWire(f.Owner, w)}
	}
	// Changes applied ahead of this copy are newer than it: keep them.
	if f.Epoch == o.epoch {
		for id, r := range o.records {
			if r.seq > f.Seq {
				records[id] = r
			}
		}
	} else {
		o.ahead = map[uint64]bool{}
	}
	for s := range o.ahead {
		if s <= f.Seq {
			delete(o.ahead, s)
		}
	}
	o.epoch, o.complete, o.records, o.configHash = f.Epoch, f.Seq, records, f.ConfigHash
	o.needFullFrom = time.Time{}
	o.advance()
	return true, nil
}

// routable returns the targets of remote owners that this node may route to:
// owners alive, or gone gracefully less than rejoinGrace ago (an agent
// restarting: its containers still run). LocalOnly targets are reachable only
// from their own host and never routed remotely.
func (t *table) routable(now time.Time, rejoinGrace time.Duration) []discovery.Target {
	var out []discovery.Target
	for _, name := range sortedOwners(t.owners) {
		o := t.owners[name]
		switch o.member {
		case memberDead:
			continue
		case memberLeft:
			if now.Sub(o.memberSince) > rejoinGrace {
				continue
			}
		}
		ids := make([]string, 0, len(o.records))
		for id, r := range o.records {
			if !r.removed && !r.target.LocalOnly {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, o.records[id].target)
		}
	}
	return out
}

func sortedOwners(m map[string]*ownerState) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
