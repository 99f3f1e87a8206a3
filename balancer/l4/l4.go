// Package l4 is the L4 front: it proxies whole TCP connections, TLS
// connections (passed through by the SNI of their ClientHello, or terminated
// with a listener's certificates) and UDP flows to a target group's targets,
// with the proxy protocol v2 header when the group asks for it. Bytes move
// with splice(2) between the two sockets once a connection streams.
//
// It sees the listener that accepted a connection only through Listener (its
// name, counters, the L4 part of its routing snapshot, the access log), and
// picks targets from balancer/pool. It must not know HTTP, compile routes or
// import the balancer package; the balancer's listener calls Serve for each
// TCP or TLS connection and runs a UDP listener's Serve loop.
package l4

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/balancer/stats"
	"github.com/berth-lb/berth/internal/backstop"
)

// HandshakeTimeout bounds reading a ClientHello (passthrough) or a whole TLS
// handshake (termination): a client that opens a connection and says nothing
// holds no target.
const HandshakeTimeout = 10 * time.Second

// l4Chunk is how much one splice call may move before the counters are
// updated and the idle deadline re-armed: metrics of a long transfer move
// while it runs, and splice still moves the bytes without copying them.
const l4Chunk = 4 << 20

// SmallCopyBuffer is the read size of a connection's first phase: reads that
// fill it switch the direction to splice.
const SmallCopyBuffer = 16 << 10

var smallCopyBuffers = sync.Pool{New: func() any { return new([SmallCopyBuffer]byte) }}

// errIdle ends a connection on which nothing flowed for the idle timeout.
var errIdle = errors.New("idle timeout")

// errRecovered ends a connection whose copy from the target panicked.
var errRecovered = errors.New("panic recovered")

// Listener is the listener a connection or UDP flow came in on, as the L4
// front needs it; the balancer's listener implements it. The counting
// methods run for every chunk copied and every datagram: they must not block.
type Listener interface {
	Name() string
	Protocol() string
	// Route is the L4 part of the listener's current routing snapshot.
	Route() *Route
	Log() *slog.Logger
	// Panics counts the panics recovered in the listener's goroutines.
	Panics() *atomic.Uint64
	CountError(reason stats.ErrorReason)
	CountBytes(fromClient bool, n uint64)
	// CountFlow counts a UDP flow opened (+1) or ended (-1) as a connection.
	CountFlow(delta int64)
	// Track records an open connection for shutdown until untrack is called.
	Track(c io.Closer) (untrack func())
	Access(r *accesslog.Record)
	// Hook runs the tests' hook at the start of a datagram; nothing in production.
	Hook(where string)
}

// Route is what an L4 listener's snapshot says: where connections go.
type Route struct {
	// TLS terminates TLS (a tls listener with certificates); nil passes it through.
	TLS *tls.Config
	// Passthrough reads the ClientHello of a tls listener without
	// certificates, for its SNI.
	Passthrough bool
	// Table matches the SNI to Actions; Fallback when no rule matches.
	Table       *rules.Table
	Actions     []Forward
	Fallback    Forward
	IdleTimeout time.Duration
	// MaxFlows bounds a UDP listener's flow table; 0: none.
	MaxFlows int64
}

// Forward sends connections to a group; a nil Group has no target.
type Forward struct {
	Group *pool.Group
	Stats *stats.Route
}

// l4Conn is one proxied TCP or TLS connection.
type l4Conn struct {
	l Listener
	// client is what the balancer reads from and writes to: the raw
	// *net.TCPConn, or a *tls.Conn over it when the listener terminates TLS.
	client    net.Conn
	clientTCP *net.TCPConn
	upstream  *net.TCPConn
	target    *pool.Target
	stats     *stats.Route
	// terminated is set when Terminate closed the connection.
	terminated atomic.Bool
	// closed is set when Close began.
	closed atomic.Bool
}

// aLongTimeAgo is a deadline that has passed: setting it ends a blocked
// read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// Terminate closes the connection because its target's deregistration delay ended.
func (c *l4Conn) Terminate() {
	c.terminated.Store(true)
	c.Close()
}

// Close closes both sockets; the copies in both directions end. It is how
// Terminate and shutdown end a connection, and is safe to call concurrently
// and more than once.
func (c *l4Conn) Close() error {
	c.closed.Store(true)
	// A relay writes to one socket while it holds the other's read, and
	// Close waits for the socket's readers: past deadlines end every wait
	// first, on both sockets, so that neither Close waits for the other.
	c.clientTCP.SetDeadline(aLongTimeAgo)
	if c.upstream != nil {
		c.upstream.SetDeadline(aLongTimeAgo)
	}
	c.clientTCP.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
	return nil
}

// Serve proxies one TCP or TLS client connection to a target; sourceHash is
// the hash of the client's IP address, for source_hash.
func Serve(l Listener, conn net.Conn, sourceHash uint64) {
	start := time.Now()
	tcp := conn.(*net.TCPConn)
	tcp.SetNoDelay(true)
	rt := l.Route()
	c := &l4Conn{l: l, client: tcp, clientTCP: tcp}
	untrack := l.Track(c)
	rec := accesslog.Record{Time: start, Listener: l.Name(), Protocol: l.Protocol(), Client: tcp.RemoteAddr().String()}
	defer func() {
		c.Close()
		// Logged before the connection stops counting as open, so a
		// shutdown that waits for open connections also waits for the line.
		rec.Duration = time.Since(start)
		l.Access(&rec)
		untrack()
	}()

	var hello []byte
	switch {
	case rt.TLS != nil:
		tc := tls.Server(tcp, rt.TLS)
		tcp.SetDeadline(start.Add(HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			rec.Result = "tls_handshake_failed"
			return
		}
		tcp.SetDeadline(time.Time{})
		rec.SNI = tc.ConnectionState().ServerName
		c.client = tc
	case rt.Passthrough:
		var err error
		if hello, rec.SNI, err = readClientHello(tcp, start.Add(HandshakeTimeout)); err != nil {
			rec.Result = "bad_client_hello"
			return
		}
	}

	act := &rt.Fallback
	if i := rt.Table.Match(rec.SNI, ""); i >= 0 {
		act = &rt.Actions[i]
	}
	if act.Group == nil {
		l.CountError(stats.ReasonNoTarget)
		rec.Result = stats.ReasonNoTarget.String()
		tcp.SetLinger(0) // a reset, as NLB answers when no target can take the connection
		return
	}
	g := act.Group
	rec.Group = g.Name
	up, t, reason := connectL4(g, sourceHash)
	if up == nil {
		l.CountError(reason)
		rec.Result = reason.String()
		tcp.SetLinger(0)
		return
	}
	c.upstream, c.target, c.stats = up, t, act.Stats
	rec.Target, rec.TargetAddress = t.ID, t.Address
	t.OpenStream(c)
	act.Stats.ConnsActive.Add(1)
	act.Stats.ConnsTotal.Add(1)
	var in, out int64
	defer func() {
		act.Stats.ConnsActive.Add(-1)
		t.CloseStream(c)
		rec.BytesIn, rec.BytesOut = in, out
	}()

	if g.ProxyProtocol || len(hello) > 0 {
		var preamble []byte
		if g.ProxyProtocol {
			preamble = AppendProxyHeaderV2(nil, tcp.RemoteAddr(), tcp.LocalAddr())
		}
		if _, err := up.Write(append(preamble, hello...)); err != nil {
			rec.Result = stats.ReasonTargetReset.String()
			return
		}
		c.count(true, int64(len(hello)))
		in = int64(len(hello))
	}
	var err error
	var n int64
	n, out, err = c.pipe(rt.IdleTimeout)
	in += n
	switch {
	case c.terminated.Load():
		rec.Result = "terminated"
	case err == nil:
		rec.Result = "ok"
	case errors.Is(err, errIdle):
		rec.Result = "idle_timeout"
	default:
		rec.Result = "reset"
	}
}

// connectL4 dials a serving target of g, trying up to pool.MaxAttempts distinct
// targets when connecting fails; passive health learns from every attempt.
func connectL4(g *pool.Group, hash uint64) (*net.TCPConn, *pool.Target, stats.ErrorReason) {
	var triedArray [pool.MaxAttempts]*pool.Target
	tried := triedArray[:0]
	reason := stats.ReasonNoTarget
	for range pool.MaxAttempts {
		t := g.Pick(tried, hash)
		if t == nil {
			break
		}
		tried = append(tried, t)
		// In flight while connecting too, so a drain that sees zero cannot
		// miss a connection on its way; openStream takes over on success.
		t.InFlight.Add(1)
		d := pool.Dialer(g.ConnectTimeout)
		conn, err := d.Dial("tcp", t.Address)
		t.InFlight.Add(-1)
		if err != nil {
			reason = pool.DialFailure(err)
			t.Failed(reason)
			continue
		}
		t.Passive.Succeeded()
		up := conn.(*net.TCPConn)
		up.SetNoDelay(true)
		return up, t, 0
	}
	return nil, nil, reason
}

// pipe copies both ways until both directions ended. A direction ends at its
// source's EOF, which is passed on as a half-close (the other direction goes
// on); an error or the idle timeout ends both. It returns the bytes from the
// client (in) and to it (out), and why it ended when not by EOF both ways.
func (c *l4Conn) pipe(idle time.Duration) (in, out int64, err error) {
	type result struct {
		n   int64
		err error
	}
	back := make(chan result, 1)
	go func() {
		// A panic closes both sockets (the other direction ends) and still
		// reports, or the connection's goroutine would wait here for ever.
		r := result{err: errRecovered}
		defer func() { back <- r }()
		defer backstop.Recover(c.l.Log(), c.l.Panics(), c, "listener", c.l.Name())
		r.n, r.err = c.copyHalf(c.client, c.upstream, false, idle)
	}()
	in, err = c.copyHalf(c.upstream, c.client, true, idle)
	r := <-back
	if err == nil {
		err = r.err
	}
	return in, r.n, err
}

// copyHalf copies src to dst in chunks. Small messages go by read and
// write (a relay when src is a TCP socket); a read that fills the buffer
// means a stream, and from then on io.CopyN between two TCP sockets reaches
// (*net.TCPConn).ReadFrom, which moves the bytes with splice(2) inside the
// kernel: no wrapper may hide either connection's type here.
func (c *l4Conn) copyHalf(dst, src net.Conn, fromClient bool, idle time.Duration) (int64, error) {
	var total int64
	bulk := false
	buf := smallCopyBuffers.Get().(*[SmallCopyBuffer]byte)
	defer func() {
		if buf != nil {
			smallCopyBuffers.Put(buf)
		}
	}()
	var rel *relay
	if tcp, ok := src.(*net.TCPConn); ok {
		rel = newRelay(c, tcp, dst, fromClient, buf[:])
	}
	// The idle deadline is armed when the direction starts and again only
	// when it passes, not before every read: each arming is a timer
	// operation, and a read per message made it one per request.
	arm := func(wait time.Duration) {
		if at := time.Now().Add(wait); rel != nil {
			rel.arm(at)
		} else {
			src.SetReadDeadline(at)
		}
	}
	arm(idle)
	for {
		var n int64
		var err error
		switch {
		case bulk:
			n, err = io.CopyN(dst, src, l4Chunk)
			c.count(fromClient, n)
		case rel != nil:
			n, bulk, err = rel.run() // counted by the relay, write by write
		default:
			// One syscall each way, where splice takes two through its pipe.
			var r int
			r, err = src.Read(buf[:])
			if r > 0 {
				w, werr := dst.Write(buf[:r])
				n = int64(w)
				if werr != nil && (err == nil || errors.Is(err, io.EOF)) {
					err = werr
				}
			}
			bulk = r == len(buf)
			c.count(fromClient, n)
		}
		total += n
		if bulk && buf != nil {
			smallCopyBuffers.Put(buf)
			buf, rel = nil, nil
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			if hc, ok := dst.(interface{ CloseWrite() error }); ok {
				hc.CloseWrite()
			}
			return total, nil
		case c.closed.Load():
			return total, net.ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded):
			if rel != nil && rel.checked() {
				continue
			}
			// The idle timeout passed since the deadline was armed; the
			// connection is idle only if neither socket received anything
			// for that long, else the deadline waits for the rest.
			if quiet := c.quiet(); quiet < idle {
				arm(idle - quiet)
				continue
			}
			c.Close()
			return total, errIdle
		default:
			c.clientTCP.SetLinger(0) // pass a reset on as a reset
			c.Close()
			return total, err
		}
	}
}

// count adds n bytes to the listener's, the route's and the target's counters.
func (c *l4Conn) count(fromClient bool, n int64) {
	if n == 0 {
		return
	}
	c.l.CountBytes(fromClient, uint64(n))
	if fromClient {
		c.stats.BytesIn.Add(uint64(n))
		c.target.BytesIn.Add(uint64(n))
		return
	}
	c.stats.BytesOut.Add(uint64(n))
	c.target.BytesOut.Add(uint64(n))
}

// quiet is how long neither socket received data, from the kernel
// (TCP_INFO): splice gives no progress report, and reads re-arm no deadline.
func (c *l4Conn) quiet() time.Duration {
	return min(sinceReceived(c.clientTCP), sinceReceived(c.upstream))
}

// sinceReceived is how long ago c last received data; for ever when the
// kernel cannot say (the socket closed).
func sinceReceived(c *net.TCPConn) time.Duration {
	d := time.Duration(math.MaxInt64)
	raw, err := c.SyscallConn()
	if err != nil {
		return d
	}
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			d = time.Duration(info.Last_data_recv) * time.Millisecond
		}
	})
	return d
}
