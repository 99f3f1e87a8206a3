// Package deadline sets a connection's read and write deadlines coarsely,
// as HAProxy's timers are: a keep-alive connection that carries a request
// every millisecond would otherwise move its timers in the runtime's heap
// three times per request (about 650 instructions each, a fifth of the
// balancer's own work on a small request). A deadline that would move later
// by less than a sixty-fourth of its timeout (at most a second) stays where
// it is, so a timeout may fire that much early, never late.
//
// Every deadline set on a connection whose deadlines are Coarse must go
// through it (the exact setters record what they set): a deadline set
// behind its back would be trusted in its place.
package deadline

import (
	"sync/atomic"
	"time"
)

// Conn is what Coarse sets deadlines on: a net.Conn.
type Conn interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// maxSlack bounds how early a long timeout may fire.
const maxSlack = time.Second

// Coarse remembers the deadlines last set on one connection, as Unix
// nanoseconds (0: none or unknown, so the next set is exact). Atomic: a
// shutdown may wake the connection from another goroutine (SetRead).
type Coarse struct {
	read, write atomic.Int64
}

// ExtendRead makes conn's reads time out timeout after now, unless the
// deadline already set is earlier than that by less than the slack.
func (c *Coarse) ExtendRead(conn Conn, now time.Time, timeout time.Duration) {
	if at, ok := extended(&c.read, now, timeout); ok {
		conn.SetReadDeadline(at)
	}
}

// ExtendWrite is ExtendRead for writes.
func (c *Coarse) ExtendWrite(conn Conn, now time.Time, timeout time.Duration) {
	if at, ok := extended(&c.write, now, timeout); ok {
		conn.SetWriteDeadline(at)
	}
}

// SetRead sets conn's read deadline to t exactly (zero: none).
func (c *Coarse) SetRead(conn Conn, t time.Time) {
	c.read.Store(0) // a racing ExtendRead then sets its own exactly
	conn.SetReadDeadline(t)
	c.read.Store(unixNano(t))
}

// SetWrite sets conn's write deadline to t exactly (zero: none).
func (c *Coarse) SetWrite(conn Conn, t time.Time) {
	c.write.Store(0)
	conn.SetWriteDeadline(t)
	c.write.Store(unixNano(t))
}

// Set sets both of conn's deadlines to t exactly (zero: none).
func (c *Coarse) Set(conn Conn, t time.Time) {
	c.SetRead(conn, t)
	c.SetWrite(conn, t)
}

// extended returns the deadline to set, now+timeout, and whether it must be
// set: the one in *last is later, unknown, or earlier by the slack or more.
func extended(last *atomic.Int64, now time.Time, timeout time.Duration) (time.Time, bool) {
	at := now.Add(timeout)
	want := at.UnixNano()
	if set := last.Load(); set != 0 && set <= want && want-set < int64(min(timeout/64, maxSlack)) {
		return at, false
	}
	last.Store(want)
	return at, true
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
