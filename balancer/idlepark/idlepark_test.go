package idlepark

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/tcppair"
)

func rawOf(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// resumed is a resume function that reports its call on a channel.
type resumed chan bool

func (r resumed) resume(readable bool) { r <- readable }

// within waits for the one call of r, for at most d.
func (r resumed) within(t *testing.T, d time.Duration) bool {
	t.Helper()
	select {
	case readable := <-r:
		return readable
	case <-time.After(d):
		t.Fatalf("not resumed within %v", d)
		return false
	}
}

func TestParkedConnectionResumes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		act      func(client, server *net.TCPConn, s *Spot)
		readable bool
		// after is how long the resume must not come before.
		after time.Duration
	}{
		{"readable", time.Minute, func(client, _ *net.TCPConn, _ *Spot) { client.Write([]byte("G")) }, true, 0},
		{"closed by the client", time.Minute, func(client, _ *net.TCPConn, _ *Spot) { client.Close() }, true, 0},
		{"deadline", 300 * time.Millisecond, func(*net.TCPConn, *net.TCPConn, *Spot) {}, false, 300 * time.Millisecond},
		{"woken", time.Minute, func(_, _ *net.TCPConn, s *Spot) { Wake(s) }, false, 0},
		{"closed under it, then woken", time.Minute, func(_, server *net.TCPConn, s *Spot) { server.Close(); Wake(s) }, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcppair.Loopback(t)
			var s Spot
			r := make(resumed, 1)
			start := time.Now()
			if err := Park(&s, rawOf(t, server), start.Add(tc.deadline), r.resume); err != nil {
				t.Fatal(err)
			}
			tc.act(client, server, &s)
			if got := r.within(t, 5*time.Second); got != tc.readable {
				t.Fatalf("resumed readable=%v, want %v", got, tc.readable)
			}
			if took := time.Since(start); took < tc.after {
				t.Fatalf("resumed after %v, before the deadline %v", took, tc.after)
			}
			Wake(&s) // resumed already: nothing more happens
			select {
			case <-r:
				t.Fatal("resumed twice")
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}

// TestDeadlinesInAnyOrder parks connections whose deadlines come in another
// order than their parking, and one that turns readable first: each is
// resumed once, at its own deadline, and the set is left empty.
func TestDeadlinesInAnyOrder(t *testing.T) {
	start := time.Now()
	deadlines := []time.Duration{400 * time.Millisecond, 100 * time.Millisecond, time.Minute, 250 * time.Millisecond}
	spots := make([]Spot, len(deadlines))
	order := make(chan int, len(deadlines))
	var clients []*net.TCPConn
	for i, d := range deadlines {
		client, server := tcppair.Loopback(t)
		clients = append(clients, client)
		if err := Park(&spots[i], rawOf(t, server), start.Add(d), func(bool) { order <- i }); err != nil {
			t.Fatal(err)
		}
	}
	clients[2].Write([]byte("G")) // the one-minute deadline turns readable now
	want := []int{2, 1, 3, 0}
	for _, w := range want {
		select {
		case i := <-order:
			if i != w {
				t.Fatalf("connection %d resumed, want %d (order %v)", i, w, want)
			}
			if i != 2 && time.Since(start) < deadlines[i] {
				t.Fatalf("connection %d resumed before its deadline", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d not resumed", w)
		}
	}
	the.mu.Lock()
	defer the.mu.Unlock()
	if len(the.due) != 0 {
		t.Fatalf("%d connections still due", len(the.due))
	}
}

// TestConcurrentParksResumeOnceEach parks many connections at once, in
// rounds that reuse the slots: a third turn readable, a third are woken, a
// third reach their deadlines, all at the same time; each is resumed once,
// as what happened to it.
func TestConcurrentParksResumeOnceEach(t *testing.T) {
	const n = 150
	type parkedConn struct {
		client, server *net.TCPConn
		spot           Spot
	}
	conns := make([]parkedConn, n)
	for i := range conns {
		conns[i].client, conns[i].server = tcppair.Loopback(t)
	}
	for round := range 3 {
		got := make(chan [2]int, n) // index, readable (1) or not (0)
		start := time.Now()
		for i := range conns {
			deadline := start.Add(time.Minute)
			if i%3 == 2 {
				deadline = start.Add(time.Duration(i) * time.Millisecond)
			}
			if err := Park(&conns[i].spot, rawOf(t, conns[i].server), deadline, func(readable bool) {
				r := 0
				if readable {
					r = 1
				}
				got <- [2]int{i, r}
			}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range conns {
			switch i % 3 {
			case 0:
				go conns[i].client.Write([]byte("G"))
			case 1:
				go Wake(&conns[i].spot)
			}
		}
		seen := make([]bool, n)
		for range n {
			select {
			case g := <-got:
				i, readable := g[0], g[1] == 1
				if seen[i] {
					t.Fatalf("round %d: connection %d resumed twice", round, i)
				}
				seen[i] = true
				if readable != (i%3 == 0) {
					t.Fatalf("round %d: connection %d resumed readable=%v", round, i, readable)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: not every connection resumed", round)
			}
		}
		for i := 0; i < n; i += 3 { // drain what made them readable, for the next round
			conns[i].server.Read(make([]byte, 1))
		}
	}
	the.mu.Lock()
	defer the.mu.Unlock()
	if len(the.due) != 0 {
		t.Fatalf("%d connections still due", len(the.due))
	}
}

// TestLoopPanicIsRecoveredAndCounted: a panic in the parker's loop (here a
// parker with no epoll set to wait on) is recovered, counted in Panics and
// leaves the process running.
func TestLoopPanicIsRecoveredAndCounted(t *testing.T) {
	before := Panics()
	(&parker{}).resumeReady(nil)
	if got := Panics() - before; got != 1 {
		t.Fatalf("Panics went up by %d, want 1", got)
	}
}
