package pool

import (
	"sync/atomic"
	"time"
)

// The adaptive connect timeout. A connect to a host that is gone (cut off,
// powered down, its SYNs black-holed) never fails by itself: it waits for the
// group's connect-timeout (10 s, ALB's), longer than clients wait. Nothing of
// the request was sent yet, so when another target can take it, a connect
// that takes much longer than this host's connects usually take is given up
// and the request tried there. The limit is TCP's retransmission timeout
// (RFC 6298) over the host's TCP connect times: the smoothed time plus four
// times its mean deviation, at least ConnectFloor, at most the group's
// connect-timeout, which stays the limit of a request's last try.
const (
	// ConnectFloor keeps a connect a moment even to a host that answers in
	// microseconds: a scheduler hiccup on a busy node is not a lost host.
	ConnectFloor = 200 * time.Millisecond
	// ConnectInitial is the limit while a host has no connect time yet:
	// RFC 6298's initial retransmission timeout.
	ConnectInitial = time.Second
)

// connectTimes are a host's smoothed TCP connect time and its mean deviation
// (RFC 6298's SRTT and RTTVAR), in nanoseconds; 0 before the first connect.
// Concurrent updates may lose a sample, never corrupt the estimate.
type connectTimes struct {
	srtt, rttvar atomic.Int64
}

// observe takes the duration of a successful TCP connect.
func (c *connectTimes) observe(d time.Duration) {
	r := max(int64(d), 1)
	s := c.srtt.Load()
	if s == 0 {
		c.rttvar.Store(r / 2)
		c.srtt.Store(r)
		return
	}
	dev := s - r
	if dev < 0 {
		dev = -dev
	}
	v := c.rttvar.Load()
	c.rttvar.Store(v - v/4 + dev/4)
	c.srtt.Store(s - s/8 + r/8)
}

// giveUpAfter is how long a connect to the host may take while another
// target could take the request instead; limit is the group's connect-timeout.
func (c *connectTimes) giveUpAfter(limit time.Duration) time.Duration {
	d := ConnectInitial
	if s := c.srtt.Load(); s > 0 {
		d = time.Duration(s + 4*c.rttvar.Load())
	}
	return min(max(d, ConnectFloor), limit)
}
