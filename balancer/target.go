package balancer

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the buffered reader and writer of every connection, on both sides.
const connBufferSize = 4 << 10

// maxIdlePerTarget bounds the pooled idle connections to one target.
const maxIdlePerTarget = 512

// upstreamIdleTimeout closes pooled connections unused for this long, below the
// keep-alive timeout of common servers (Go 3 min, nginx 75 s, Node 5 s is the
// exception that the retry on a stale connection covers).
const upstreamIdleTimeout = 60 * time.Second

// targetState is the mutable state of one target. It lives outside the routing
// snapshot, keyed by target ID, so a new snapshot keeps counters and pooled
// connections.
type targetState struct {
	id      string
	address string

	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	// serving is false once the target drains or leaves: pooled connections
	// are closed instead of being reused.
	serving atomic.Bool

	mu   sync.Mutex
	idle []*upstreamConn // LIFO: the warmest connection first
}

// upstreamConn is a connection to a target with its buffers.
type upstreamConn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	target   *targetState
	reused   bool
	idleFrom time.Time
}

// get returns a pooled connection or nil.
func (t *targetState) get() *upstreamConn {
	now := time.Now()
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		if now.Sub(c.idleFrom) < upstreamIdleTimeout {
			t.mu.Unlock()
			c.reused = true
			return c
		}
		c.conn.Close()
	}
	t.mu.Unlock()
	return nil
}

// put returns a connection to the pool, or closes it when the target no longer
// serves or the pool is full.
func (t *targetState) put(c *upstreamConn) {
	if !t.serving.Load() {
		c.conn.Close()
		return
	}
	c.idleFrom = time.Now()
	t.mu.Lock()
	if len(t.idle) < maxIdlePerTarget {
		t.idle = append(t.idle, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.conn.Close()
}

// closeIdle closes every pooled connection: a draining target keeps its busy
// connections until their requests end but gets no new request on idle ones.
func (t *targetState) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

func dialTarget(t *targetState, timeout time.Duration) (*upstreamConn, error) {
	conn, err := net.DialTimeout("tcp", t.address, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &upstreamConn{
		conn:   conn,
		br:     bufio.NewReaderSize(conn, connBufferSize),
		bw:     bufio.NewWriterSize(conn, connBufferSize),
		target: t,
	}, nil
}
