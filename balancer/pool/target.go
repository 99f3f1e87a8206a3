package pool

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

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/balancer/clock"
	"github.com/berth-lb/berth/balancer/deadline"
	"github.com/berth-lb/berth/balancer/stats"
)

// Sizes of the buffered reader and writer of every connection, on both sides.
const ConnBufferSize = 4 << 10

// maxIdlePerTarget bounds the pooled idle connections to one target.
const maxIdlePerTarget = 512

// IdleTimeout closes pooled connections unused for this long, below the
// keep-alive timeout of common servers (Go 3 min, nginx 75 s, Node 5 s is the
// exception that the retry on a stale connection covers).
const IdleTimeout = 60 * time.Second

// Target is the mutable state of one target. It lives outside the routing
// snapshot, keyed by target ID, so a new snapshot keeps counters and pooled
// connections.
type Target struct {
	ID      string
	Address string
	// TLS makes the HTTP/1.1 engine speak TLS to the target (a group of
	// protocol https lists it); like the address, it never changes.
	TLS bool

	InFlight atomic.Int64
	Requests atomic.Uint64
	Failures atomic.Uint64
	// Latency is the HTTP tries' durations, from the pick (dial included) to
	// the end of the answer's copy.
	Latency stats.Latency
	// Serving is false once the target drains or leaves: pooled connections
	// are closed instead of being reused.
	Serving atomic.Bool
	// ServingSince is when the target last started serving (unix
	// nanoseconds), for slow start.
	ServingSince atomic.Int64
	// Suspect is true while the fleet's failure detection cannot reach the
	// target's host (TargetConfig.Suspect): it gets requests only when no
	// other target of its group can take them. Only Apply writes it.
	Suspect atomic.Bool
	Passive PassiveHealth
	// Host groups the targets of one address for passive health; it is set
	// when the state is made and never changes (nor does the address).
	Host *Host

	// L4 counters: open connections and UDP flows (also counted in
	// inFlight, which least_outstanding_requests reads), and their bytes.
	StreamsActive atomic.Int64
	StreamsTotal  atomic.Uint64
	BytesIn       atomic.Uint64
	BytesOut      atomic.Uint64

	Mu   sync.Mutex
	idle []*Conn // LIFO: the warmest connection first
	// Busy holds the HTTP connections carrying a request (or a tunnel) now,
	// streams the open L4 connections and UDP flows: Terminate closes them.
	Busy    []*Conn
	Streams map[Stream]struct{}
}

// Stream is an open L4 connection or UDP flow, or an HTTP/2 request in
// flight (h2Exchange).
type Stream interface {
	io.Closer
	// Terminate closes it because its target's deregistration delay ended.
	Terminate()
}

// Conn is a connection to a target with its buffers.
type Conn struct {
	Conn   net.Conn
	Br     *bufio.Reader
	Bw     *bufio.Writer
	Target *Target
	reused bool
	// idleFrom is when the connection went back to the pool, a clock.Mono
	// reading.
	idleFrom time.Duration
	// VerifyBeforeReuse is set after a response that has no body by rule
	// (to HEAD, 204, 304): a target that sends a body anyway sends it
	// after the head, so the connection is checked for stray bytes before
	// it carries another request, however soon.
	VerifyBeforeReuse bool
	// busyAt is Conn's index in Target.Busy plus one, 0 when not busy: a
	// request takes it out of the set without hashing.
	busyAt int
	// Deadlines are Conn's, set only through it.
	Deadlines deadline.Coarse
	// Awaiting is AwaitHead while a request that may go to another target
	// waits for the first byte of its answer: abandon may then close the
	// connection and the request is retried (AwaitAbandoned).
	Awaiting atomic.Int32
}

// The states of Conn.awaiting.
const (
	AwaitNone int32 = iota
	AwaitHead
	AwaitAbandoned
)

// Get returns a pooled connection or nil; now is a clock.Mono reading.
func (t *Target) Get(now time.Duration) *Conn {
	t.Mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		idle := now - c.idleFrom
		if idle < IdleTimeout && (idle < LivenessCheckAfter && !c.VerifyBeforeReuse || StillOpen(c.Conn)) {
			t.markBusy(c)
			t.Mu.Unlock()
			c.reused = true
			return c
		}
		c.Conn.Close()
	}
	t.Mu.Unlock()
	return nil
}

// LivenessCheckAfter: a pooled connection idle this long is checked before
// reuse. Servers close idle keep-alive connections after a few seconds (Node
// 5 s, Go's ReadHeaderTimeout when no IdleTimeout is set); a request written
// into one that is already closed fails, and one that is not idempotent
// cannot be retried. Busier connections skip the check (a syscall).
const LivenessCheckAfter = time.Second

// StillOpen peeks at a pooled connection without blocking: the peer's FIN
// (a read of 0), a reset, or bytes nobody asked for all mean it cannot
// carry a request.
func StillOpen(conn net.Conn) bool {
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

// Put returns a connection to the pool, or closes it when the target no longer
// serves or the pool is full.
func (t *Target) Put(c *Conn) {
	// Bytes after the response are nobody's answer: the next request's
	// client must never read them as its own.
	if !t.Serving.Load() || c.Br.Buffered() > 0 {
		c.Discard()
		return
	}
	c.idleFrom = clock.Mono()
	t.Mu.Lock()
	t.unmarkBusy(c)
	if len(t.idle) < maxIdlePerTarget {
		t.idle = append(t.idle, c)
		t.Mu.Unlock()
		return
	}
	t.Mu.Unlock()
	c.Conn.Close()
}

// markBusy records c as carrying a request; t.mu is held.
func (t *Target) markBusy(c *Conn) {
	t.Busy = append(t.Busy, c)
	c.busyAt = len(t.Busy)
}

// unmarkBusy forgets c as busy, if it was; t.mu is held.
func (t *Target) unmarkBusy(c *Conn) {
	if c.busyAt == 0 {
		return
	}
	last := len(t.Busy) - 1
	moved := t.Busy[last]
	t.Busy[c.busyAt-1], moved.busyAt = moved, c.busyAt
	t.Busy[last] = nil
	t.Busy = t.Busy[:last]
	c.busyAt = 0
}

// track records a freshly dialled connection as busy.
func (t *Target) track(c *Conn) {
	t.Mu.Lock()
	t.markBusy(c)
	t.Mu.Unlock()
}

// Discard closes a connection that is not to be reused and stops tracking
// it. A connection a request used ends either here or back in the pool
// (put): untracking it after put could drop the tracking of another request
// that took it from the pool meanwhile, hiding it from Terminate.
func (c *Conn) Discard() {
	c.Conn.Close()
	c.Target.untrack(c)
}

// untrack forgets a connection that is no longer busy.
func (t *Target) untrack(c *Conn) {
	t.Mu.Lock()
	t.unmarkBusy(c)
	t.Mu.Unlock()
}

// OpenStream records an L4 connection or UDP flow to the target.
func (t *Target) OpenStream(s Stream) {
	t.AddStream(s)
	t.InFlight.Add(1)
	t.StreamsActive.Add(1)
	t.StreamsTotal.Add(1)
}

// CloseStream forgets an L4 connection or UDP flow.
func (t *Target) CloseStream(s Stream) {
	t.RemoveStream(s)
	t.InFlight.Add(-1)
	t.StreamsActive.Add(-1)
}

// AddStream records s among the streams Terminate closes, without the L4
// connection counters (an HTTP/2 request counts as a request).
func (t *Target) AddStream(s Stream) {
	t.Mu.Lock()
	if t.Streams == nil {
		t.Streams = map[Stream]struct{}{}
	}
	t.Streams[s] = struct{}{}
	t.Mu.Unlock()
}

// RemoveStream forgets s.
func (t *Target) RemoveStream(s Stream) {
	t.Mu.Lock()
	delete(t.Streams, s)
	t.Mu.Unlock()
}

// Terminate closes every connection to the target: pooled, busy HTTP ones
// (their requests fail) and L4 ones. It returns how many were busy or L4.
func (t *Target) Terminate() int {
	t.CloseIdle()
	t.Mu.Lock()
	busy := make([]net.Conn, 0, len(t.Busy))
	for _, c := range t.Busy {
		busy = append(busy, c.Conn)
	}
	streams := make([]Stream, 0, len(t.Streams))
	for s := range t.Streams {
		streams = append(streams, s)
	}
	t.Mu.Unlock()
	for _, c := range busy {
		c.Close()
	}
	for _, s := range streams {
		s.Terminate()
	}
	return len(busy) + len(streams)
}

// Abandon closes the connections to a target whose host is lost: the pooled
// ones, and the busy ones whose request waits for an answer and may go to
// another target (AwaitHead), so that it goes there now rather than after
// TCP_USER_TIMEOUT. A request whose answer began, or that cannot be retried,
// keeps its connection.
func (t *Target) Abandon() {
	t.CloseIdle()
	var waiting []net.Conn
	t.Mu.Lock()
	for _, c := range t.Busy {
		if c.Awaiting.CompareAndSwap(AwaitHead, AwaitAbandoned) {
			waiting = append(waiting, c.Conn)
		}
	}
	t.Mu.Unlock()
	for _, c := range waiting {
		c.Close()
	}
}

// CloseIdle closes every pooled connection: a draining target keeps its busy
// connections until their requests end but gets no new request on idle ones.
func (t *Target) CloseIdle() {
	t.Mu.Lock()
	idle := t.idle
	t.idle = nil
	t.Mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
}

// Dial connects to a target. A peer that stops acknowledging for as long
// as the connect timeout is dead: TCP_USER_TIMEOUT ends a connection whose
// sent data stays unacknowledged that long, and keep-alive probes after that
// much silence catch one that waits for a response from a host that is gone.
// Both end in an error that the retry and passive health act on, in seconds
// rather than the kernel's default minutes. With alternatives (another target
// could take the request) a connect is given up after the host's adaptive
// limit (connectTimes) rather than the whole timeout.
func Dial(t *Target, timeout time.Duration, alternatives bool) (*Conn, error) {
	var tlsConfig *tls.Config
	if t.TLS {
		tlsConfig = TargetTLSHTTP1
	}
	giveUp := timeout
	if alternatives {
		giveUp = t.Host.connect.giveUpAfter(timeout)
	}
	conn, took, err := Connect(context.Background(), t.Address, giveUp, timeout, tlsConfig)
	if err != nil {
		return nil, err
	}
	t.Host.connect.observe(took)
	uc := &Conn{
		Conn:   conn,
		Br:     bufio.NewReaderSize(conn, ConnBufferSize),
		Bw:     bufio.NewWriterSize(conn, ConnBufferSize),
		Target: t,
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
	TargetTLSHTTP1 = targetTLS("http/1.1")
	TargetTLSH2    = targetTLS("h2")
)

func targetTLS(alpn string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, ClientSessionCache: targetSessions}
}

// Connect opens a TCP connection to addr within giveUp and, with
// tlsConfig, a TLS session over it within timeout; it returns how long the
// TCP connect took. A failed handshake is a failed connect (a *net.OpError of
// Op "dial"): nothing of the request was sent, so it may go to another target.
func Connect(ctx context.Context, addr string, giveUp, timeout time.Duration, tlsConfig *tls.Config) (net.Conn, time.Duration, error) {
	start := time.Now()
	d := Dialer(timeout)
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

// Dialer dials targets with the dead-peer detection described at Dial.
func Dialer(timeout time.Duration) net.Dialer {
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

// DialFailure classifies a failed connect: a timeout or an unreachable
// host or network says the host is gone.
func DialFailure(err error) stats.ErrorReason {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return stats.ReasonConnectTimeout
	}
	return stats.ReasonConnectFailed
}
