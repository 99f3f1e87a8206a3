package balancer

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/httpfront/h2front"
	"github.com/berth-lb/berth/balancer/l4"
	"github.com/berth-lb/berth/balancer/stats"
	"github.com/berth-lb/berth/internal/backstop"
)

// listener accepts client connections on one socket. It outlives routing
// snapshots: Apply swaps its route, the socket and its connections stay.
type listener struct {
	b        *Balancer
	name     string
	address  string
	protocol string
	ln       net.Listener // nil for UDP
	udp      *l4.UDP      // UDP only
	port     []byte       // for X-Forwarded-Port
	// forwardedFields are the X-Forwarded-Proto and -Port field lines.
	forwardedFields []byte
	route           atomic.Pointer[route]
	// accepting counts its running accept loop (none while a hand-over
	// holds it): Shutdown waits for it to end, so that a connection it had
	// accepted is counted in active before Shutdown counts what is open.
	accepting sync.WaitGroup

	// active counts the client connections (UDP: flows) from their accept
	// to their end; max-connections bounds it.
	active atomic.Int64
	total  atomic.Uint64
	// refused counts connections closed at accept: the listener was at its
	// limit. panics counts the panics its connections' goroutines recovered.
	refused atomic.Uint64
	panics  atomic.Uint64
	errors  [stats.ReasonCount]atomic.Uint64
	// bytesIn and bytesOut count the L4 traffic from and to clients.
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	mu    sync.Mutex
	conns map[*httpfront.ClientConn]struct{}
	// streams are the open L4 connections, for shutdown.
	streams map[io.Closer]struct{}
	// h2conns are the open HTTP/2 client connections, for shutdown.
	h2conns map[*h2front.H2Conn]struct{}
}

func newListener(b *Balancer, name, address, protocol string, ln net.Listener) *listener {
	proto := "http"
	if protocol == ProtocolHTTPS {
		proto = "https"
	}
	port := portOf(ln.Addr())
	return &listener{b: b, name: name, address: address, protocol: protocol, ln: ln, port: []byte(port),
		forwardedFields: []byte("X-Forwarded-Proto: " + proto + "\r\nX-Forwarded-Port: " + port + "\r\n"),
		conns:           map[*httpfront.ClientConn]struct{}{}, streams: map[io.Closer]struct{}{}, h2conns: map[*h2front.H2Conn]struct{}{}}
}

// addr is the bound address.
func (l *listener) addr() net.Addr {
	if l.udp != nil {
		return l.udp.Addr()
	}
	return l.ln.Addr()
}

// startAccepting runs the accept loop on a goroutine of its own.
func (l *listener) startAccepting() {
	l.accepting.Add(1)
	go func() {
		defer l.accepting.Done()
		l.acceptLoop()
	}()
}

func (l *listener) acceptLoop() {
	if l.udp != nil {
		l.udp.Serve()
		return
	}
	serve := l.serveHTTP
	switch l.protocol {
	case ProtocolTCP, ProtocolTLS:
		serve = l.serveL4
	case ProtocolHTTPS:
		serve = l.serveHTTPS
	}
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and try again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.b.log.Warn("balancer: accept failed", "listener", l.name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		runTestHook(l, "accepted")
		if !l.admit() {
			l.refuse(conn)
			continue
		}
		go l.serveConn(serve, conn)
	}
}

// admit counts a new connection as active, unless the listener already
// serves its limit of them. A compare-and-swap, not an add and a check: the
// count never exceeds the limit, even for a moment.
func (l *listener) admit() bool {
	limit := l.route.Load().maxConns
	for {
		n := l.active.Load()
		if limit > 0 && n >= limit {
			return false
		}
		if l.active.CompareAndSwap(n, n+1) {
			l.total.Add(1)
			return true
		}
	}
}

// maxConns is the connection limit of lc's route: its MaxConnections, the
// protocol's default for 0, or 0 (none) for NoConnectionLimit.
func maxConns(lc ListenerConfig) int64 {
	switch {
	case lc.MaxConnections == NoConnectionLimit:
		return 0
	case lc.MaxConnections > 0:
		return int64(lc.MaxConnections)
	case lc.Protocol == ProtocolUDP:
		return DefaultMaxUDPFlows
	}
	return DefaultMaxConnections
}

// refuse closes a connection over the limit at once, with a reset: the
// accept queue keeps draining (clients over the limit fail fast instead of
// waiting in a full backlog, and a slot that frees goes to the next client in
// line), and the socket leaves no TIME_WAIT behind. No 503 on HTTP: writing
// one means reading the request first (closing with it unread resets the
// answer away), and on TLS a handshake, work a listener at its limit must
// not take on.
func (l *listener) refuse(conn net.Conn) {
	l.refused.Add(1)
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// serveConn is the goroutine of one admitted connection. A panic in it
// closes that connection only.
func (l *listener) serveConn(serve func(net.Conn), conn net.Conn) {
	defer l.active.Add(-1)
	defer backstop.Recover(l.b.log, &l.panics, conn, "listener", l.name)
	runTestHook(l, "conn")
	serve(conn)
}

// close stops accepting; open connections go on. UDP has no connection to
// go on with: its flows end with the socket.
func (l *listener) close() {
	if l.udp != nil {
		l.udp.Close()
		return
	}
	l.ln.Close()
}

// closeIdleConns wakes every idle connection so it closes, tells HTTP/2
// clients to go away, and returns how many connections are still open:
// all it has accepted and not ended, the sets' and those not in one yet
// (a new connection waits for its first bytes, or for its TLS handshake,
// before it is tracked; ended with the process instead, its request would
// be lost). A UDP listener's flows ended with its socket.
func (l *listener) closeIdleConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.WakeIfIdle()
	}
	for c := range l.h2conns {
		c.GoAway()
	}
	if l.udp != nil {
		return 0
	}
	return int(l.active.Load())
}

func (l *listener) closeAllConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	for s := range l.streams {
		s.Close()
	}
	for c := range l.h2conns {
		c.Close()
	}
}

// track keeps a client connection in set (for shutdown and Terminate) until
// the returned function is called.
func track[K comparable](l *listener, set map[K]struct{}, k K) (untrack func()) {
	l.mu.Lock()
	set[k] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(set, k)
		l.mu.Unlock()
	}
}
