package l4

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

	"github.com/berth-lb/berth/balancer/accesslog"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
	"github.com/berth-lb/berth/internal/backstop"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 64 << 10

var datagramPool = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// UDP forwards datagrams by flow: all datagrams from one client
// address go to one target over one socket, and the target's replies on that
// socket go back to the client from the listener's address.
type UDP struct {
	l  Listener
	pc *net.UDPConn

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool

	Dropped atomic.Uint64
}

// NewUDP serves the UDP listener l on pc, a socket the kernel opened or
// took over from the agent before it (an upgrade).
func NewUDP(pc *net.UDPConn, l Listener) *UDP {
	return &UDP{l: l, pc: pc, flows: map[netip.AddrPort]*udpFlow{}}
}

// Addr is the bound address.
func (u *UDP) Addr() net.Addr { return u.pc.LocalAddr() }

// File duplicates the socket's descriptor, for the agent that takes over.
func (u *UDP) File() (*os.File, error) { return u.pc.File() }

// udpFlow is the traffic of one client address.
type udpFlow struct {
	u        *UDP
	client   netip.AddrPort
	upstream *net.UDPConn
	target   *pool.Target
	stats    *stats.Route
	rec      accesslog.Record
	// last is when a datagram last went either way, in unix nanoseconds.
	last      atomic.Int64
	in, out   atomic.Int64
	closeOnce sync.Once
	// reason says why the flow ended when not "ok"; the first reason stays.
	reason atomic.Pointer[string]
}

func (f *udpFlow) endBecause(reason string) { f.reason.CompareAndSwap(nil, &reason) }

// Serve forwards datagrams until the listener closes.
func (u *UDP) Serve() {
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
func (u *UDP) forward(b []byte, client netip.AddrPort) {
	defer backstop.Recover(u.l.Log(), u.l.Panics(), nil, "listener", u.l.Name())
	u.l.Hook("datagram")
	f := u.flow(client)
	if f == nil {
		return
	}
	f.last.Store(time.Now().UnixNano())
	if _, err := f.upstream.Write(b); err == nil {
		f.in.Add(int64(len(b)))
		u.l.CountBytes(true, uint64(len(b)))
		f.stats.BytesIn.Add(uint64(len(b)))
		f.target.BytesIn.Add(uint64(len(b)))
	}
}

// flow returns the flow of a client address, opening one to a target when it
// is new; nil when the datagram must be dropped.
func (u *UDP) flow(client netip.AddrPort) *udpFlow {
	rt := u.l.Route()
	u.mu.Lock()
	f, ok := u.flows[client]
	full := rt.MaxFlows > 0 && int64(len(u.flows)) >= rt.MaxFlows
	u.mu.Unlock()
	if ok {
		return f
	}
	if full {
		u.Dropped.Add(1)
		return nil
	}
	now := time.Now()
	rec := accesslog.Record{Time: now, Listener: u.l.Name(), Protocol: u.l.Protocol(), Client: client.String()}
	act := &rt.Fallback
	if act.Group == nil {
		u.l.CountError(stats.ReasonNoTarget)
		return nil
	}
	rec.Group = act.Group.Name
	up, t := dialUDP(act.Group, pool.HashBytes(client.Addr().AsSlice()))
	if up == nil {
		u.l.CountError(stats.ReasonNoTarget)
		return nil
	}
	rec.Target, rec.TargetAddress = t.ID, t.Address
	f = &udpFlow{u: u, client: client, upstream: up, target: t, stats: act.Stats, rec: rec}
	f.last.Store(now.UnixNano())
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		up.Close()
		return nil
	}
	u.flows[client] = f
	u.mu.Unlock()
	t.OpenStream(f)
	f.stats.ConnsActive.Add(1)
	f.stats.ConnsTotal.Add(1)
	u.l.CountFlow(1)
	go f.replies(rt.IdleTimeout)
	return f
}

// dialUDP opens a socket to a serving target. Nothing is sent yet, so a dead
// target is only found when its host answers with an ICMP error (see replies).
func dialUDP(g *pool.Group, hash uint64) (*net.UDPConn, *pool.Target) {
	var triedArray [pool.MaxAttempts]*pool.Target
	tried := triedArray[:0]
	for range pool.MaxAttempts {
		t := g.Pick(tried, hash)
		if t == nil {
			return nil, nil
		}
		tried = append(tried, t)
		conn, err := net.Dial("udp", t.Address)
		if err != nil {
			t.Failed(stats.ReasonConnectFailed)
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
	defer backstop.Recover(f.u.l.Log(), f.u.l.Panics(), f, "listener", f.u.l.Name())
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
			f.target.Failed(stats.ReasonConnectFailed)
			f.endBecause(stats.ReasonConnectFailed.String())
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
				f.target.Failed(stats.ReasonConnectFailed)
				f.endBecause(stats.ReasonConnectFailed.String())
			}
			return
		}
		f.target.Passive.Succeeded()
		f.last.Store(time.Now().UnixNano())
		f.out.Add(int64(n))
		f.u.l.CountBytes(false, uint64(n))
		f.stats.BytesOut.Add(uint64(n))
		f.target.BytesOut.Add(uint64(n))
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
		f.target.CloseStream(f)
		f.stats.ConnsActive.Add(-1)
		f.u.l.CountFlow(-1)
		f.rec.Duration = time.Since(f.rec.Time)
		f.rec.BytesIn, f.rec.BytesOut = f.in.Load(), f.out.Load()
		f.rec.Result = "ok"
		if r := f.reason.Load(); r != nil {
			f.rec.Result = *r
		}
		f.u.l.Access(&f.rec)
	})
	return nil
}

// Terminate ends the flow as the deregistration delay's end asks.
func (f *udpFlow) Terminate() {
	f.endBecause("terminated")
	f.Close()
}

// Close stops the listener and ends every flow.
func (u *UDP) Close() {
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
