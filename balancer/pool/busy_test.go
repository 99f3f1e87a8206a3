package pool

import (
	"math/rand/v2"
	"testing"
)

// The busy set stays the set of marked connections through any order of
// marks and unmarks, twice-unmarked ones included.
func TestBusySetFollowsMarks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var target Target
	conns := make([]*Conn, 16)
	for i := range conns {
		conns[i] = &Conn{Target: &target}
	}
	want := map[*Conn]bool{}
	for range 10000 {
		c := conns[rng.IntN(len(conns))]
		if want[c] || rng.IntN(4) == 0 {
			target.unmarkBusy(c) // a second unmark must change nothing
			delete(want, c)
		} else {
			target.markBusy(c)
			want[c] = true
		}
		if len(target.Busy) != len(want) {
			t.Fatalf("%d busy, want %d", len(target.Busy), len(want))
		}
		for i, b := range target.Busy {
			if !want[b] || b.busyAt != i+1 {
				t.Fatalf("busy[%d] is wrong: marked %v, index %d", i, want[b], b.busyAt)
			}
		}
	}
}
