package balancer

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listener accepts client connections on one socket. It outlives routing
// snapshots: Apply swaps its route, the socket and its connections stay.
type listener struct {
	b        *Balancer
	name     string
	address  string
	protocol string
	ln       net.Listener // nil for UDP
	udp      *udpListener // UDP only
	port     []byte       // for X-Forwarded-Port
	// forwardedProto is X-Forwarded-Proto: http, or https on https listeners.
	forwardedProto string
	route          atomic.Pointer[route]

	active atomic.Int64
	total  atomic.Uint64
	errors [reasonCount]atomic.Uint64
	// bytesIn and bytesOut count the L4 traffic from and to clients.
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	mu    sync.Mutex
	conns map[*clientConn]struct{}
	// streams are the open L4 connections, for shutdown.
	streams map[*l4Conn]struct{}
	// h2conns are the open HTTP/2 client connections, for shutdown.
	h2conns map[*h2Conn]struct{}
}

func newListener(b *Balancer, name, address, protocol string, ln net.Listener) *listener {
	proto := "http"
	if protocol == ProtocolHTTPS {
		proto = "https"
	}
	return &listener{b: b, name: name, address: address, protocol: protocol, ln: ln, port: []byte(portOf(ln.Addr())), forwardedProto: proto,
		conns: map[*clientConn]struct{}{}, streams: map[*l4Conn]struct{}{}, h2conns: map[*h2Conn]struct{}{}}
}

// addr is the bound address.
func (l *listener) addr() net.Addr {
	if l.udp != nil {
		return l.udp.pc.LocalAddr()
	}
	return l.ln.Addr()
}

func (l *listener) acceptLoop() {
	if l.udp != nil {
		l.udp.readLoop()
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
		go serve(conn)
	}
}

func (l *listener) serve(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &clientConn{l: l, conn: conn, clientIP: clientIP(conn.RemoteAddr())}
	c.sourceHash = hashBytes(c.clientIP)
	c.idle.Store(true)
	defer conn.Close()
	defer track(l, l.conns, c)()
	c.serve()
}

func clientIP(a net.Addr) []byte {
	if t, ok := a.(*net.TCPAddr); ok {
		if v4 := t.IP.To4(); v4 != nil {
			return []byte(v4.String())
		}
		return []byte(t.IP.String())
	}
	return []byte(a.String())
}

// close stops accepting; open connections go on. UDP has no connection to
// go on with: its flows end with the socket.
func (l *listener) close() {
	if l.udp != nil {
		l.udp.close()
		return
	}
	l.ln.Close()
}

// closeIdleConns wakes every idle connection so it closes, and returns how
// many connections are still open.
func (l *listener) closeIdleConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if c.idle.Load() {
			c.conn.SetReadDeadline(time.Now())
		}
	}
	for c := range l.h2conns {
		if c.active.Load() == 0 {
			c.conn.Close()
		}
	}
	return len(l.conns) + len(l.streams) + len(l.h2conns)
}

func (l *listener) closeAllConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.conn.Close()
	}
	for s := range l.streams {
		s.Close()
	}
	for c := range l.h2conns {
		c.conn.Close()
	}
}

// track counts a client connection as active and keeps it in set (for
// shutdown and Terminate) until the returned function is called.
func track[K comparable](l *listener, set map[K]struct{}, k K) (untrack func()) {
	l.mu.Lock()
	set[k] = struct{}{}
	l.mu.Unlock()
	l.active.Add(1)
	l.total.Add(1)
	return func() {
		l.active.Add(-1)
		l.mu.Lock()
		delete(set, k)
		l.mu.Unlock()
	}
}
