// Package httpfront is berth's HTTP front: it serves the HTTP/1.1 client
// connections of http and https listeners with berth's own codec
// (balancer/http1), and proxies each request to a target that balancer/pool
// picks. It owns what a request meets on its way: rule matching on the
// listener's compiled Route, the actions (forward, weighted forward,
// redirect, fixed response), stickiness cookies, X-Forwarded-* headers,
// request IDs, retries, upgrades and tunnels, the balancer's own error pages
// and the access-log line.
//
// HTTP/2 is its subpackage h2front, which makes the same decisions through
// what this package exports for it (Exchange, AccessLine, the cookie and
// request-ID helpers, the error pages' Page bodies, the failure reasons), so
// that both protocols answer alike. h2front imports this package, never the
// other way.
//
// The kernel (package balancer) compiles a Config into a Route and swaps it
// in; this package reads it through its Listener and never compiles, opens,
// closes or counts listeners itself. It must not block outside a client's or
// a target's I/O, must not allocate per HTTP/1.1 request on the hot path
// (BenchmarkProxyKeepAlive: 0 allocs/op), and imports nothing of the kernel,
// agent/ or cmd/.
package httpfront

import (
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/balancer/stats"
)

// Listener is the kernel's listener as the front sees it. An HTTP/1.1
// connection reads Route twice per request and the rest once per connection
// or on an error: two indirect calls per request.
type Listener interface {
	Name() string
	// Route is the listener's current routing snapshot.
	Route() *Route
	// ForwardedPort is X-Forwarded-Port, the bound port; ForwardedFields
	// are the X-Forwarded-Proto (http or https) and X-Forwarded-Port field
	// lines, rendered once.
	ForwardedPort() []byte
	ForwardedFields() []byte
	Log() *slog.Logger
	// Panics counts the panics recovered in the listener's connections.
	Panics() *atomic.Uint64
	CountError(reason stats.ErrorReason)
	// AccessLog is the open access log, nil when off.
	AccessLog() *accesslog.Logger
	// Draining is set once the balancer shuts down or hands over: idle
	// connections close, answers say Connection: close. A flag, not a
	// method's answer: every request reads it, inlined.
	Draining() *atomic.Bool
	// TrackConn keeps a connection in the listener's sets, for shutdown and
	// draining, until untrack is called.
	TrackConn(c *ClientConn) (untrack func())
	// Detach keeps a connection counted in the listener (max-connections)
	// after the goroutine it was accepted on ends: an idle connection parks
	// with no goroutine (idlepark) and resumes on another. release ends the
	// count. Until that first goroutine ends, the connection counts twice.
	Detach() (release func())
}

// Route is the immutable HTTP routing of one listener, compiled by the
// kernel's Apply. The kernel's L4 routes are compiled from the same rules.
type Route struct {
	Table    *rules.Table
	Actions  []Action // indexed by rules.Rule.Target
	Fallback Action   // when no rule matches
	// IdleTimeout is how long a client connection may idle, and a read or
	// write of a request wait.
	IdleTimeout time.Duration
	// Scheme is the listener's protocol as clients see it: http or https.
	Scheme string
	XFF    XFFMode
	// TLS terminates TLS on an https listener and a tls listener with
	// certificates; nil passes TLS through.
	TLS *tls.Config
	// RedirectPort, when not 0, answers every request of an http listener
	// with a redirect to https on this port.
	RedirectPort int
}
