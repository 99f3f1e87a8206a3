package balancer

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/berth-lb/berth/balancer/http1"
)

// HTTP/2 is served with golang.org/x/net/http2, not berth's HTTP/1.1 engine:
// its frames, streams and flow control are a protocol of their own. The
// handler routes with the listener's compiled route and forwards with the
// same target picks, retries, passive health, in-flight counts and metrics
// as the HTTP/1.1 path; toward targets it speaks HTTP/1.1, or h2c for gRPC,
// which needs HTTP/2 end to end for its trailers.

// h2Preface is what an HTTP/2 client sends first (RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// upstreamTransports are the HTTP/2 clients toward targets for gRPC (other
// requests go over berth's own HTTP/1.1 connections), made on first use.
// They dial with the group's connect timeout, carried in the request's
// context. Toward an https group the connect includes the TLS handshake
// (connectTarget), so they speak TLS whatever the scheme of the request's URL.
type upstreamTransports struct {
	once sync.Once
	// h2c and h2 speak to http and https groups: each pools connections by address.
	h2c, h2 *http2.Transport
}

type connectTimeoutKey struct{}

func (u *upstreamTransports) init() {
	u.once.Do(func() {
		h2 := func(tlsConfig *tls.Config) *http2.Transport {
			return &http2.Transport{
				AllowHTTP: true,
				DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
					timeout, _ := ctx.Value(connectTimeoutKey{}).(time.Duration)
					return connectTarget(ctx, addr, orDefault(timeout, DefaultConnectTimeout), tlsConfig)
				},
				IdleConnTimeout: upstreamIdleTimeout,
			}
		}
		u.h2c, u.h2 = h2(nil), h2(targetTLSH2)
	})
}

// transport is the HTTP/2 client toward g's targets: over TLS when g is https.
func (u *upstreamTransports) transport(g *group) http.RoundTripper {
	u.init()
	if g.targetTLS {
		return u.h2
	}
	return u.h2c
}

// closeIdle closes the pooled upstream connections, at shutdown.
func (u *upstreamTransports) closeIdle() {
	if u.h2c != nil {
		u.h2c.CloseIdleConnections()
		u.h2.CloseIdleConnections()
	}
}

// h2Conn is one client HTTP/2 connection, tracked so shutdown can close it
// once no stream is active.
type h2Conn struct {
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
}

type h2ConnKey struct{}

// h2Limits gives HTTP/2 connections the HTTP/1.1 engine's limit on a
// request's header fields, 64 KiB: the server announces it
// (SETTINGS_MAX_HEADER_LIST_SIZE) and answers 431 above it.
var h2Limits = &http.Server{MaxHeaderBytes: http1.MaxHeadBytes}

// serveH2 serves one HTTP/2 connection (TLS with ALPN h2, or h2c with prior
// knowledge) until it ends.
func (l *listener) serveH2(conn net.Conn) {
	hc := &h2Conn{conn: conn, requestIDPrefix: newRequestIDPrefix(), clientIP: clientIP(conn.RemoteAddr())}
	hc.sourceHash, hc.source = hashBytes(hc.clientIP), peerAddr(hc.clientIP)
	defer conn.Close()
	defer track(l, l.h2conns, hc)()
	// A client that takes no bytes for the idle timeout is closed, as on
	// HTTP/1.1.
	idle := l.route.Load().idleTimeout
	srv := &http2.Server{IdleTimeout: idle, WriteByteTimeout: idle}
	srv.ServeConn(newCoalescingConn(conn, l), &http2.ServeConnOpts{
		Context:    context.WithValue(context.Background(), h2ConnKey{}, hc),
		Handler:    streamBackstop{l},
		BaseConfig: h2Limits,
	})
}

// serveHTTPS terminates TLS and serves HTTP/2 or HTTP/1.1, as the client
// chose by ALPN.
func (l *listener) serveHTTPS(conn net.Conn) {
	rt := l.route.Load()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	tc := tls.Server(conn, rt.tls)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		l.serveH2(tc)
		return
	}
	l.serve(tc)
}

// serveHTTP serves a plain connection: HTTP/2 when it starts with the
// HTTP/2 preface (h2c with prior knowledge), else HTTP/1.1.
func (l *listener) serveHTTP(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(l.route.Load().idleTimeout))
	var buf [len(h2Preface)]byte
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil || !strings.HasPrefix(h2Preface, string(buf[:n])) {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	if n == 0 {
		conn.Close()
		return
	}
	replay := &replayConn{Conn: conn, pending: buf[:n]}
	if n == len(h2Preface) && string(buf[:n]) == h2Preface {
		l.serveH2(replay)
		return
	}
	l.serve(replay)
}

// replayConn reads bytes already read from its connection first.
type replayConn struct {
	net.Conn
	pending []byte
}

// CloseWrite closes the sending side of the connection underneath, for a
// lingering close (clientConn.lingerBeforeClose).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
