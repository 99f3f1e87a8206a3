package balancer

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/l4"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// Defaults of the L4 listeners, NLB's.
const (
	DefaultTCPIdleTimeout = 350 * time.Second
	DefaultUDPIdleTimeout = 120 * time.Second
)

// DefaultMaxUDPFlows bounds the flow table of a UDP listener whose
// MaxConnections is 0: a datagram from a new client address beyond it is
// dropped and counted (ListenerStats.UDPFlowsDropped).
const DefaultMaxUDPFlows = 65536

// l4Listener is a listener as the L4 front (Serve, l4.UDP) sees it.
type l4Listener struct{ l *listener }

func (x l4Listener) Name() string                        { return x.l.name }
func (x l4Listener) Protocol() string                    { return x.l.protocol }
func (x l4Listener) Route() *l4.Route                    { return x.l.route.Load().l4 }
func (x l4Listener) Log() *slog.Logger                   { return x.l.b.log }
func (x l4Listener) Panics() *atomic.Uint64              { return &x.l.panics }
func (x l4Listener) CountError(reason stats.ErrorReason) { x.l.errors[reason].Add(1) }
func (x l4Listener) Track(c io.Closer) (untrack func())  { return track(x.l, x.l.streams, c) }
func (x l4Listener) Access(r *accesslog.Record)          { x.l.b.accessLog(r) }
func (x l4Listener) Hook(where string)                   { runTestHook(x.l, where) }

func (x l4Listener) CountBytes(fromClient bool, n uint64) {
	if fromClient {
		x.l.bytesIn.Add(n)
	} else {
		x.l.bytesOut.Add(n)
	}
}

func (x l4Listener) CountFlow(delta int64) {
	x.l.active.Add(delta)
	if delta > 0 {
		x.l.total.Add(1)
	}
}

// serveL4 proxies one TCP or TLS client connection (the L4 front's Serve).
func (l *listener) serveL4(conn net.Conn) {
	l4.Serve(l4Listener{l}, conn, pool.HashBytes(pool.ClientIP(conn.RemoteAddr())))
}

// newUDPListener opens a UDP listener; its flows are the L4 front's.
func newUDPListener(b *Balancer, name, address string) (*listener, error) {
	l := &listener{b: b, name: name, address: address, protocol: ProtocolUDP, conns: map[*httpfront.ClientConn]struct{}{}, streams: map[io.Closer]struct{}{}}
	pc, err := b.listenUDP(name, address)
	if err != nil {
		return nil, err
	}
	l.udp = l4.NewUDP(pc.(*net.UDPConn), l4Listener{l})
	return l, nil
}

// l4Route is the L4 front's part of rt, for a tcp, tls or udp listener.
func (rt *route) l4Route(protocol string) *l4.Route {
	forward := func(a httpfront.Action) l4.Forward { return l4.Forward{Group: a.Group, Stats: a.Stats} }
	r := &l4.Route{TLS: rt.TLS, Passthrough: protocol == ProtocolTLS, Table: rt.Table, Fallback: forward(rt.Fallback),
		IdleTimeout: rt.IdleTimeout, MaxFlows: rt.maxConns}
	for _, a := range rt.Actions {
		r.Actions = append(r.Actions, forward(a))
	}
	return r
}
