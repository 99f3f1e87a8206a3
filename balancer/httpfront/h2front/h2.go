package h2front

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/berth-lb/berth/balancer/h2conn"
	"github.com/berth-lb/berth/balancer/h2server"
	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/l4"
	"github.com/berth-lb/berth/balancer/pool"
)

// HTTP/2 is served by berth's HTTP/2 server (balancer/h2server), not the HTTP/1.1 engine:
// its frames, streams and flow control are a protocol of their own. The
// handler routes with the listener's compiled route and forwards with the
// same target picks, retries, passive health, in-flight counts and metrics
// as the HTTP/1.1 path; toward targets it speaks HTTP/1.1, or h2c for gRPC,
// which needs HTTP/2 end to end for its trailers.

// Transports are the HTTP/2 clients toward targets for gRPC (other
// requests go over berth's own HTTP/1.1 connections), made on first use.
// They dial with the group's connect timeout, carried in the request's
// context. Toward an https group the connect includes the TLS handshake
// (pool.Connect), so they speak TLS whatever the scheme of the request's URL.
type Transports struct {
	once sync.Once
	// h2c and h2 speak to http and https groups: each pools connections by address.
	h2c, h2 *http2.Transport
}

type connectTimeoutKey struct{}

// DefaultConnectTimeout is the connect timeout of a group whose Config has
// none (the kernel's balancer.DefaultConnectTimeout).
const DefaultConnectTimeout = 10 * time.Second

func (u *Transports) init() {
	u.once.Do(func() {
		h2 := func(tlsConfig *tls.Config) *http2.Transport {
			return &http2.Transport{
				AllowHTTP: true,
				DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
					timeout, _ := ctx.Value(connectTimeoutKey{}).(time.Duration)
					if timeout == 0 {
						timeout = DefaultConnectTimeout
					}
					conn, _, err := pool.Connect(ctx, addr, timeout, timeout, tlsConfig)
					return conn, err
				},
				IdleConnTimeout: pool.IdleTimeout,
			}
		}
		u.h2c, u.h2 = h2(nil), h2(pool.TargetTLSH2)
	})
}

// Transport is the HTTP/2 client toward g's targets: over TLS when g is https.
func (u *Transports) Transport(g *pool.Group) http.RoundTripper {
	u.init()
	if g.TargetTLS {
		return u.h2
	}
	return u.h2c
}

// CloseIdle closes the pooled upstream connections, at shutdown.
func (u *Transports) CloseIdle() {
	if u.h2c != nil {
		u.h2c.CloseIdleConnections()
		u.h2.CloseIdleConnections()
	}
}

// H2Conn is one client HTTP/2 connection, tracked so shutdown can close it
// once no stream is active.
type H2Conn struct {
	conn   net.Conn
	active atomic.Int64
	// requestIDPrefix and requestIDs make the IDs of requests without a valid
	// X-Request-Id: streams run concurrently, so the counter is atomic.
	requestIDPrefix uint64
	requestIDs      atomic.Uint64
	// clientIP, its hash (for source_hash) and parsed form (for source-ip
	// conditions) are the client's, the same for every stream.
	clientIP   []byte
	sourceHash uint64
	source     netip.Addr
	// served is the connection once its serving began, for GoAway.
	served atomic.Pointer[h2server.Conn]
}

// GoAway sends GOAWAY; the connection closes a second after its last
// stream. Asked at every drain tick: a connection whose serving has not
// begun yet misses the first.
func (c *H2Conn) GoAway() {
	if s := c.served.Load(); s != nil {
		s.GoAway()
	}
}

// Close closes the connection under its streams.
func (c *H2Conn) Close() { c.conn.Close() }

// serveH2 serves one HTTP/2 connection (TLS with ALPN h2, or h2c with prior
// knowledge) until it ends.
func serveH2(l Listener, conn net.Conn) {
	hc := &H2Conn{conn: conn, requestIDPrefix: httpfront.NewRequestIDPrefix(), clientIP: pool.ClientIP(conn.RemoteAddr())}
	hc.sourceHash, hc.source = pool.HashBytes(hc.clientIP), httpfront.PeerAddr(hc.clientIP)
	defer l.TrackH2(hc)()
	// The HTTP/1.1 engine's limits: a header list of 64 KiB (431 above it);
	// a connection without streams for the idle timeout is closed, and so
	// is a client that takes no bytes for it.
	srv := &h2server.Server{Handler: streamBackstop{l, hc}, MaxHeaderListSize: http1.MaxHeadBytes,
		IdleTimeout: l.Route().IdleTimeout, Recovered: func(v any) { reportPanic(l, v) }}
	srv.ServeConn(context.Background(), conn, func(s *h2server.Conn) { hc.served.Store(s) })
}

// ServeHTTPS terminates TLS and serves HTTP/2 or HTTP/1.1, as the client
// chose by ALPN.
func ServeHTTPS(l Listener, conn net.Conn) {
	rt := l.Route()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	tc := tls.Server(conn, rt.TLS)
	until := time.Now().Add(l4.HandshakeTimeout)
	if _, err := awaitFirstBytes(l, conn, until, peeker(conn)); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(until)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		serveH2(l, tc)
		return
	}
	httpfront.Serve(l, tc)
}

// ServeHTTP serves a plain connection: HTTP/2 when it starts with the
// HTTP/2 preface (h2c with prior knowledge), else HTTP/1.1. A connection
// whose first line is not an HTTP request line is neither: it is closed
// without an answer (h2spec 3.5 sends such an invalid preface), as an
// HTTP/1.1 error page would be noise to it.
func ServeHTTP(l Listener, conn net.Conn) {
	var first [len(h2conn.Preface)]byte
	n, err := awaitFirstBytes(l, conn, time.Now().Add(l.Route().IdleTimeout), func() (int, error) { return conn.Read(first[:]) })
	for err == nil && n < len(first) && strings.HasPrefix(h2conn.Preface, string(first[:n])) {
		var m int
		m, err = conn.Read(first[n:])
		n += m
	}
	replay := &replayConn{Conn: conn, pending: first[:n]}
	if n == len(h2conn.Preface) && string(first[:]) == h2conn.Preface {
		conn.SetReadDeadline(time.Time{})
		serveH2(l, replay)
		return
	}
	// The rest of the first line, as far as it came: a client waiting for a
	// request line holds no more than the bytes above.
	if _, whole := firstLine(first[:n]); n > 0 && !whole {
		replay.buf = sniffBuffers.Get().(*[sniffBytes]byte)
		copy(replay.buf[:], first[:n])
		m, _ := conn.Read(replay.buf[n:])
		replay.pending = replay.buf[:n+m]
	}
	conn.SetReadDeadline(time.Time{})
	if len(replay.pending) == 0 || !firstLineIsHTTP(replay.pending) {
		replay.release()
		conn.Close()
		return
	}
	httpfront.Serve(l, replay)
}

// awaitFirstBytes waits for a new connection's first bytes with read (the
// first read, or a peek), until until, in slices of IdleBufferRelease, and
// leaves the read deadline at until. The connection is not a tracked
// ClientConn yet, which a draining listener would wake; instead, at the end
// of a slice, a connection of a draining listener (Shutdown, a successor
// took the sockets over) that has sent nothing ends: a browser's
// preconnection holds the shutdown up for one slice, not an idle timeout.
func awaitFirstBytes(l Listener, conn net.Conn, until time.Time, read func() (int, error)) (int, error) {
	for {
		slice := time.Now().Add(httpfront.IdleBufferRelease)
		if slice.After(until) {
			slice = until
		}
		conn.SetReadDeadline(slice)
		n, err := read()
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || slice.Equal(until) || l.Draining().Load() {
			if !slice.Equal(until) {
				conn.SetReadDeadline(until)
			}
			return n, err
		}
	}
}

// peeker waits, in awaitFirstBytes, for a TLS connection's first bytes
// without taking them from the handshake: a peek at the socket. A
// connection that is no socket is not waited for.
func peeker(conn net.Conn) func() (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() (int, error) { return 1, nil }
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() (int, error) { return 0, err }
	}
	return func() (int, error) {
		var n int
		var peekErr error
		err := rc.Read(func(fd uintptr) bool {
			var b [1]byte
			n, _, peekErr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return peekErr != syscall.EAGAIN
		})
		switch {
		case err != nil:
			return 0, err
		case peekErr != nil:
			return 0, peekErr
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// sniffBytes is how much of a first line ServeHTTP reads: most whole.
const sniffBytes = 4 << 10

var sniffBuffers = sync.Pool{New: func() any { return new([sniffBytes]byte) }}

// firstLineIsHTTP reports whether b, the first bytes of a plain connection,
// may start an HTTP request: false only when it holds a whole first line
// (after the empty lines RFC 9112 2.2 lets come before it) that does not
// end with an HTTP version (RFC 9112 2.3). The HTTP/2 preface's does.
func firstLineIsHTTP(b []byte) bool {
	line, whole := firstLine(b)
	if !whole {
		return true
	}
	v := len(line) - len(" HTTP/1.1")
	return v >= 0 && string(line[v:v+6]) == " HTTP/" && isDigit(line[v+6]) && line[v+7] == '.' && isDigit(line[v+8])
}

// firstLine is the first line of b after empty lines, without its end, and
// whether b holds it whole.
func firstLine(b []byte) ([]byte, bool) {
	line, _, whole := bytes.Cut(bytes.TrimLeft(b, "\r\n"), []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), whole
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// replayConn reads bytes already read from its connection first; their
// buffer, when from sniffBuffers, goes back once they are.
type replayConn struct {
	net.Conn
	pending []byte
	buf     *[sniffBytes]byte
}

func (c *replayConn) release() {
	if c.buf != nil {
		sniffBuffers.Put(c.buf)
		c.buf = nil
	}
}

// CloseWrite closes the sending side of the connection underneath, for a
// lingering close (ClientConn.lingerBeforeClose).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn is the client socket's, for a wait on it (idlepark), which
// Buffered tells the bytes it would not see.
func (c *replayConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// Buffered is how many bytes of the client's were read ahead and not yet
// replayed.
func (c *replayConn) Buffered() int { return len(c.pending) }

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		if c.pending = c.pending[n:]; len(c.pending) == 0 {
			c.release()
		}
		return n, nil
	}
	return c.Conn.Read(b)
}
