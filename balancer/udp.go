package balancer

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/internal/backstop"
)

// DefaultMaxUDPFlows bounds the flow table of a UDP listener whose
// MaxConnections is 0: a datagram from a new client address beyond it is
// dropped and counted (ListenerStats.UDPFlowsDropped).
const DefaultMaxUDPFlows = 65536

// maxDatagram is the largest UDP payload.
const maxDatagram = 64 << 10

var datagramPool = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// udpListener forwards datagrams by flow: all datagrams from one client
// address go to one target over one socket, and the target's replies on that
// socket go back to the client from the listener's address.
type udpListener struct {
	l  *listener
	pc *net.UDPConn

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool

	dropped atomic.Uint64
}

func newUDPListener(b *Balancer, name, address string) (*listener, error) {
	pc, err := b.listenUDP(name, address)
	if err != nil {
		return nil, err
	}
	l := &listener{b: b, name: name, address: address, protocol: ProtocolUDP, conns: map[*clientConn]struct{}{}, streams: map[*l4Conn]struct{}{}}
	l.udp = &udpListener{l: l, pc: pc.(*net.UDPConn), flows: map[netip.AddrPort]*udpFlow{}}
	return l, nil
}

// udpFlow is the traffic of one client address.
type udpFlow struct {
	u        *udpListener
	client   netip.AddrPort
	upstream *net.UDPConn
	target   *targetState
	stats    *routeStats
	rec      accessRecord
	// last is when a datagram last went either way, in unix nanoseconds.
	last      atomic.Int64
	in, out   atomic.Int64
	closeOnce sync.Once
	// reason says why the flow ended when not "ok"; the first reason stays.
	reason atomic.Pointer[string]
}

func (f *udpFlow) endBecause(reason string) { f.reason.CompareAndSwap(nil, &reason) }

func (u *udpListener) readLoop() {
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error reported on the listening socket: not fatal
		}
		u.forward(buf[:n], client)
	}
}

// forward sends a datagram from client to the target of its flow. The read
// loop serves every flow, so a panic here drops that datagram only.
func (u *udpListener) forward(b []byte, client netip.AddrPort) {
	defer backstop.Recover(u.l.b.log, &u.l.panics, nil, "listener", u.l.name)
	runTestHook(u.l, "datagram")
	f := u.flow(client)
	if f == nil {
		return
	}
	f.last.Store(time.Now().UnixNano())
	if _, err := f.upstream.Write(b); err == nil {
		f.in.Add(int64(len(b)))
		u.l.bytesIn.Add(uint64(len(b)))
		f.stats.bytesIn.Add(uint64(len(b)))
		f.target.bytesIn.Add(uint64(len(b)))
	}
}

// flow returns the flow of a client address, opening one to a target when it
// is new; nil when the datagram must be dropped.
func (u *udpListener) flow(client netip.AddrPort) *udpFlow {
	rt := u.l.route.Load()
	u.mu.Lock()
	f, ok := u.flows[client]
	full := rt.maxConns > 0 && int64(len(u.flows)) >= rt.maxConns
	u.mu.Unlock()
	if ok {
		return f
	}
	if full {
		u.dropped.Add(1)
		return nil
	}
	now := time.Now()
	rec := accessRecord{Time: now, Listener: u.l.name, Protocol: ProtocolUDP, Client: client.String()}
	act := &rt.fallback
	if act.group == nil {
		u.l.errors[ReasonNoTarget].Add(1)
		return nil
	}
	rec.Group = act.group.name
	up, t := act.group.dialUDP(hashBytes(client.Addr().AsSlice()))
	if up == nil {
		u.l.errors[ReasonNoTarget].Add(1)
		return nil
	}
	rec.Target, rec.TargetAddress = t.id, t.address
	f = &udpFlow{u: u, client: client, upstream: up, target: t, stats: act.stats, rec: rec}
	f.last.Store(now.UnixNano())
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		up.Close()
		return nil
	}
	u.flows[client] = f
	u.mu.Unlock()
	t.openStream(f)
	f.stats.connsActive.Add(1)
	f.stats.connsTotal.Add(1)
	u.l.active.Add(1)
	u.l.total.Add(1)
	go f.replies(rt.idleTimeout)
	return f
}

// dialUDP opens a socket to a serving target. Nothing is sent yet, so a dead
// target is only found when its host answers with an ICMP error (see replies).
func (g *group) dialUDP(hash uint64) (*net.UDPConn, *targetState) {
	var triedArray [maxAttempts]*targetState
	tried := triedArray[:0]
	for range maxAttempts {
		t := g.pick(tried, hash)
		if t == nil {
			return nil, nil
		}
		tried = append(tried, t)
		conn, err := net.Dial("udp", t.address)
		if err != nil {
			t.failed(ReasonConnectFailed)
			continue
		}
		return conn.(*net.UDPConn), t
	}
	return nil, nil
}

// replies sends the target's datagrams back to the client until the flow is
// idle for idleTimeout or closed. It waits for a datagram without holding a
// buffer (65,536 waiting flows would otherwise hold 4 GiB).
func (f *udpFlow) replies(idle time.Duration) {
	defer backstop.Recover(f.u.l.b.log, &f.u.l.panics, f, "listener", f.u.l.name)
	defer f.Close()
	raw, err := f.upstream.SyscallConn()
	if err != nil {
		return
	}
	for {
		deadline := time.Unix(0, f.last.Load()).Add(idle)
		if !time.Now().Before(deadline) {
			f.endBecause("idle_timeout")
			return
		}
		f.upstream.SetReadDeadline(deadline)
		var peekErr error
		err := raw.Read(func(fd uintptr) bool {
			_, _, peekErr = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return !errors.Is(peekErr, unix.EAGAIN)
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the deadline moves when the client sent since
		}
		if err != nil {
			return
		}
		if errors.Is(peekErr, syscall.ECONNREFUSED) {
			// The target's host answered port unreachable.
			f.target.failed(ReasonConnectFailed)
			f.endBecause(ReasonConnectFailed.String())
			return
		}
		bp := datagramPool.Get().(*[]byte)
		n, err := f.upstream.Read(*bp)
		if err == nil {
			_, err = f.u.pc.WriteToUDPAddrPort((*bp)[:n], f.client)
		}
		datagramPool.Put(bp)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				f.target.failed(ReasonConnectFailed)
				f.endBecause(ReasonConnectFailed.String())
			}
			return
		}
		f.target.passive.succeeded()
		f.last.Store(time.Now().UnixNano())
		f.out.Add(int64(n))
		f.u.l.bytesOut.Add(uint64(n))
		f.stats.bytesOut.Add(uint64(n))
		f.target.bytesOut.Add(uint64(n))
	}
}

// Close ends the flow: it leaves the table (the client's next datagram opens
// a new one), its socket closes and its access-log line is written.
func (f *udpFlow) Close() error {
	f.closeOnce.Do(func() {
		f.u.mu.Lock()
		if f.u.flows[f.client] == f {
			delete(f.u.flows, f.client)
		}
		f.u.mu.Unlock()
		f.upstream.Close()
		f.target.closeStream(f)
		f.stats.connsActive.Add(-1)
		f.u.l.active.Add(-1)
		f.rec.Duration = time.Since(f.rec.Time)
		f.rec.BytesIn, f.rec.BytesOut = f.in.Load(), f.out.Load()
		f.rec.Result = "ok"
		if r := f.reason.Load(); r != nil {
			f.rec.Result = *r
		}
		f.u.l.b.accessLog(&f.rec)
	})
	return nil
}

// terminate ends the flow as the deregistration delay's end asks.
func (f *udpFlow) terminate() {
	f.endBecause("terminated")
	f.Close()
}

// close stops the listener and ends every flow.
func (u *udpListener) close() {
	u.mu.Lock()
	u.closed = true
	flows := make([]*udpFlow, 0, len(u.flows))
	for _, f := range u.flows {
		flows = append(flows, f)
	}
	u.mu.Unlock()
	u.pc.Close()
	for _, f := range flows {
		f.Close()
	}
}
