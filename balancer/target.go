package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-lb/berth/balancer/stats"
	"golang.org/x/sys/unix"
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
	// tls makes the HTTP/1.1 engine speak TLS to the target (a group of
	// protocol https lists it); like the address, it never changes.
	tls bool

	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	// latency is the HTTP tries' durations, from the pick (dial included) to
	// the end of the answer's copy.
	latency stats.Latency
	// serving is false once the target drains or leaves: pooled connections
	// are closed instead of being reused.
	serving atomic.Bool
	// servingSince is when the target last started serving (unix
	// nanoseconds), for slow start.
	servingSince atomic.Int64
	// suspect is true while the fleet's failure detection cannot reach the
	// target's host (TargetConfig.Suspect): it gets requests only when no
	// other target of its group can take them. Only Apply writes it.
	suspect atomic.Bool
	passive passiveState
	// host groups the targets of one address for passive health; it is set
	// when the state is made and never changes (nor does the address).
	host *hostHealth

	// L4 counters: open connections and UDP flows (also counted in
	// inFlight, which least_outstanding_requests reads), and their bytes.
	streamsActive atomic.Int64
	streamsTotal  atomic.Uint64
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64

	mu   sync.Mutex
	idle []*upstreamConn // LIFO: the warmest connection first
	// busy holds the HTTP connections carrying a request (or a tunnel) now,
	// streams the open L4 connections and UDP flows: Terminate closes them.
	busy    map[*upstreamConn]struct{}
	streams map[stream]struct{}
}

// stream is an open L4 connection or UDP flow, or an HTTP/2 request in
// flight (h2Exchange).
type stream interface {
	io.Closer
	// terminate closes it because its target's deregistration delay ended.
	terminate()
}

// upstreamConn is a connection to a target with its buffers.
type upstreamConn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	target   *targetState
	reused   bool
	idleFrom time.Time
	// verifyBeforeReuse is set after a response that has no body by rule
	// (to HEAD, 204, 304): a target that sends a body anyway sends it
	// after the head, so the connection is checked for stray bytes before
	// it carries another request, however soon.
	verifyBeforeReuse bool
	// awaiting is awaitHead while a request that may go to another target
	// waits for the first byte of its answer: abandon may then close the
	// connection and the request is retried (awaitAbandoned).
	awaiting atomic.Int32
}

// The states of upstreamConn.awaiting.
const (
	awaitNone int32 = iota
	awaitHead
	awaitAbandoned
)

// get returns a pooled connection or nil.
func (t *targetState) get() *upstreamConn {
	now := time.Now()
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		idle := now.Sub(c.idleFrom)
		if idle < upstreamIdleTimeout && (idle < livenessCheckAfter && !c.verifyBeforeReuse || stillOpen(c.conn)) {
			t.markBusy(c)
			t.mu.Unlock()
			c.reused = true
			return c
		}
		c.conn.Close()
	}
	t.mu.Unlock()
	return nil
}

// livenessCheckAfter: a pooled connection idle this long is checked before
// reuse. Servers close idle keep-alive connections after a few seconds (Node
// 5 s, Go's ReadHeaderTimeout when no IdleTimeout is set); a request written
// into one that is already closed fails, and one that is not idempotent
// cannot be retried. Busier connections skip the check (a syscall).
const livenessCheckAfter = time.Second

// stillOpen peeks at a pooled connection without blocking: the peer's FIN
// (a read of 0), a reset, or bytes nobody asked for all mean it cannot
// carry a request.
func stillOpen(conn net.Conn) bool {
	// A TLS connection is peeked at below TLS: a close_notify alert counts
	// as bytes nobody asked for, which is right, since a FIN follows it.
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return true
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	raw.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		open = err == unix.EAGAIN // nothing to read: idle and open
		return true
	})
	return open
}

// put returns a connection to the pool, or closes it when the target no longer
// serves or the pool is full.
func (t *targetState) put(c *upstreamConn) {
	// Bytes after the response are nobody's answer: the next request's
	// client must never read them as its own.
	if !t.serving.Load() || c.br.Buffered() > 0 {
		c.discard()
		return
	}
	c.idleFrom = time.Now()
	t.mu.Lock()
	delete(t.busy, c)
	if len(t.idle) < maxIdlePerTarget {
		t.idle = append(t.idle, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.conn.Close()
}

// markBusy records c as carrying a request; t.mu is held.
func (t *targetState) markBusy(c *upstreamConn) {
	if t.busy == nil {
		t.busy = map[*upstreamConn]struct{}{}
	}
	t.busy[c] = struct{}{}
}

// track records a freshly dialled connection as busy.
func (t *targetState) track(c *upstreamConn) {
	t.mu.Lock()
	t.markBusy(c)
	t.mu.Unlock()
}

// discard closes a connection that is not to be reused and stops tracking
// it. A connection a request used ends either here or back in the pool
// (put): untracking it after put could drop the tracking of another request
// that took it from the pool meanwhile, hiding it from Terminate.
func (c *upstreamConn) discard() {
	c.conn.Close()
	c.target.untrack(c)
}

// untrack forgets a connection that is no longer busy.
func (t *targetState) untrack(c *upstreamConn) {
	t.mu.Lock()
	delete(t.busy, c)
	t.mu.Unlock()
}

// openStream records an L4 connection or UDP flow to the target.
func (t *targetState) openStream(s stream) {
	t.mu.Lock()
	if t.streams == nil {
		t.streams = map[stream]struct{}{}
	}
	t.streams[s] = struct{}{}
	t.mu.Unlock()
	t.inFlight.Add(1)
	t.streamsActive.Add(1)
	t.streamsTotal.Add(1)
}

// closeStream forgets an L4 connection or UDP flow.
func (t *targetState) closeStream(s stream) {
	t.mu.Lock()
	delete(t.streams, s)
	t.mu.Unlock()
	t.inFlight.Add(-1)
	t.streamsActive.Add(-1)
}

// terminate closes every connection to the target: pooled, busy HTTP ones
// (their requests fail) and L4 ones. It returns how many were busy or L4.
func (t *targetState) terminate() int {
	t.closeIdle()
	t.mu.Lock()
	busy := make([]net.Conn, 0, len(t.busy))
	for c := range t.busy {
		busy = append(busy, c.conn)
	}
	streams := make([]stream, 0, len(t.streams))
	for s := range t.streams {
		streams = append(streams, s)
	}
	t.mu.Unlock()
	for _, c := range busy {
		c.Close()
	}
	for _, s := range streams {
		s.terminate()
	}
	return len(busy) + len(streams)
}

// abandon closes the connections to a target whose host is lost: the pooled
// ones, and the busy ones whose request waits for an answer and may go to
// another target (awaitHead), so that it goes there now rather than after
// TCP_USER_TIMEOUT. A request whose answer began, or that cannot be retried,
// keeps its connection.
func (t *targetState) abandon() {
	t.closeIdle()
	var waiting []net.Conn
	t.mu.Lock()
	for c := range t.busy {
		if c.awaiting.CompareAndSwap(awaitHead, awaitAbandoned) {
			waiting = append(waiting, c.conn)
		}
	}
	t.mu.Unlock()
	for _, c := range waiting {
		c.Close()
	}
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

// dialTarget connects to a target. A peer that stops acknowledging for as long
// as the connect timeout is dead: TCP_USER_TIMEOUT ends a connection whose
// sent data stays unacknowledged that long, and keep-alive probes after that
// much silence catch one that waits for a response from a host that is gone.
// Both end in an error that the retry and passive health act on, in seconds
// rather than the kernel's default minutes. With alternatives (another target
// could take the request) a connect is given up after the host's adaptive
// limit (connectTimes) rather than the whole timeout.
func dialTarget(t *targetState, timeout time.Duration, alternatives bool) (*upstreamConn, error) {
	var tlsConfig *tls.Config
	if t.tls {
		tlsConfig = targetTLSHTTP1
	}
	giveUp := timeout
	if alternatives {
		giveUp = t.host.connect.giveUpAfter(timeout)
	}
	conn, took, err := connectTarget(context.Background(), t.address, giveUp, timeout, tlsConfig)
	if err != nil {
		return nil, err
	}
	t.host.connect.observe(took)
	uc := &upstreamConn{
		conn:   conn,
		br:     bufio.NewReaderSize(conn, connBufferSize),
		bw:     bufio.NewWriterSize(conn, connBufferSize),
		target: t,
	}
	t.track(uc)
	return uc, nil
}

// The TLS configurations toward targets, by the protocol offered by ALPN.
// Like ALB, berth does not verify a target's certificate: targets are
// addresses found by discovery, with no name a certificate could be issued
// for, and they commonly present self-signed ones; the TLS is for privacy
// on the network between hosts. Sessions are resumed, by target address,
// so a new connection to a target costs less than a full handshake.
var (
	targetSessions = tls.NewLRUClientSessionCache(1024)
	targetTLSHTTP1 = targetTLS("http/1.1")
	targetTLSH2    = targetTLS("h2")
)

func targetTLS(alpn string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, ClientSessionCache: targetSessions}
}

// connectTarget opens a TCP connection to addr within giveUp and, with
// tlsConfig, a TLS session over it within timeout; it returns how long the
// TCP connect took. A failed handshake is a failed connect (a *net.OpError of
// Op "dial"): nothing of the request was sent, so it may go to another target.
func connectTarget(ctx context.Context, addr string, giveUp, timeout time.Duration, tlsConfig *tls.Config) (net.Conn, time.Duration, error) {
	start := time.Now()
	d := targetDialer(timeout)
	d.Timeout = giveUp
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	took := time.Since(start)
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if tlsConfig == nil {
		return conn, took, nil
	}
	tc := tls.Client(conn, tlsConfig)
	conn.SetDeadline(start.Add(timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, 0, &net.OpError{Op: "dial", Net: "tcp", Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: err}
	}
	conn.SetDeadline(time.Time{})
	return tc, took, nil
}

// targetDialer dials targets with the dead-peer detection described at dialTarget.
func targetDialer(timeout time.Duration) net.Dialer {
	return net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: timeout, Interval: timeout, Count: 2},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(timeout.Milliseconds()))
			})
			return errors.Join(err, serr)
		},
	}
}
