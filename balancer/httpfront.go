package balancer

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/httpfront/h2front"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// httpListener is a listener as the HTTP fronts (httpfront, h2front) see it.
type httpListener struct{ l *listener }

func (x httpListener) Name() string                              { return x.l.name }
func (x httpListener) Route() *httpfront.Route                   { return &x.l.route.Load().Route }
func (x httpListener) ForwardedPort() []byte                     { return x.l.port }
func (x httpListener) ForwardedFields() []byte                   { return x.l.forwardedFields }
func (x httpListener) Log() *slog.Logger                         { return x.l.b.log }
func (x httpListener) Panics() *atomic.Uint64                    { return &x.l.panics }
func (x httpListener) CountError(reason stats.ErrorReason)       { x.l.errors[reason].Add(1) }
func (x httpListener) AccessLog() *accesslog.Logger              { return x.l.b.access.Load() }
func (x httpListener) Draining() *atomic.Bool                    { return &x.l.b.shuttingDown }
func (x httpListener) TrackConn(c *httpfront.ClientConn) func()  { return track(x.l, x.l.conns, c) }
func (x httpListener) Detach() func()                            { return x.l.detach() }
func (x httpListener) TrackH2(c *h2front.H2Conn) func()          { return track(x.l, x.l.h2conns, c) }
func (x httpListener) Transport(g *pool.Group) http.RoundTripper { return x.l.b.upstreams.Transport(g) }
func (x httpListener) Hook(where string)                         { runTestHook(x.l, where) }

// detach counts a connection whose accepting goroutine is about to end as
// active again, until release: the accept loop's count ends with that
// goroutine (serveConn). Counted twice for a moment rather than not at all,
// the listener may refuse one connection too many then, never admit one.
func (l *listener) detach() (release func()) {
	l.active.Add(1)
	return func() { l.active.Add(-1) }
}

// serveHTTP serves a plain http listener's connection (the HTTP/2 front's ServeHTTP: it sniffs either protocol).
func (l *listener) serveHTTP(conn net.Conn) { h2front.ServeHTTP(httpListener{l}, conn) }

// serveHTTPS serves an https listener's connection (the HTTP/2 front's ServeHTTPS: ALPN picks the protocol).
func (l *listener) serveHTTPS(conn net.Conn) { h2front.ServeHTTPS(httpListener{l}, conn) }
